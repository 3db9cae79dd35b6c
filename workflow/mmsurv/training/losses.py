"""Discrete-time survival loss (MCAT's negative log-likelihood), validated then computed."""

from __future__ import annotations

import torch

__all__ = ["nll_surv_loss"]


def _check(hazards: torch.Tensor, label: torch.Tensor, event: torch.Tensor) -> None:
    """Reject shapes and dtypes that would silently broadcast or index wrongly."""
    if not isinstance(hazards, torch.Tensor) or hazards.ndim != 2:
        raise ValueError(f"hazards must be a (B, T) tensor, got {getattr(hazards, 'shape', None)}")
    if not hazards.is_floating_point():
        raise TypeError(f"hazards must be floating point, got {hazards.dtype}")
    b, t = hazards.shape
    if label.shape != (b,):
        raise ValueError(f"label must have shape ({b},), got {tuple(label.shape)}")
    if label.dtype != torch.long:
        raise TypeError(f"label must be torch.long (bin index), got {label.dtype}")
    if event.shape != (b,):
        raise ValueError(f"event must have shape ({b},), got {tuple(event.shape)}")
    if event.dtype != torch.bool:
        raise TypeError(
            f"event must be torch.bool (True = death observed), got {event.dtype}; "
            "convert MCAT's censorship with `event = censorship == 0`"
        )
    if b and (label.min() < 0 or label.max() >= t):
        raise ValueError(f"label values must lie in [0, {t - 1}]")


def nll_surv_loss(
    hazards: torch.Tensor,
    label: torch.Tensor,
    event: torch.Tensor,
    alpha: float = 0.0,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Mean discrete-time NLL: −log S(y−1) − log h(y) if the event is observed, else −log S(y).

    As in MCAT's `nll_loss`: S = cumprod(1 − h), S_pad = [1, S];
    loss = (1 − alpha)·(censored + uncensored) + alpha·uncensored, averaged over the batch.
    """
    _check(hazards, label, event)
    y = label.view(-1, 1)
    unc = event.to(hazards.dtype).view(-1, 1)  # 1 = event observed (MCAT's 1 - c)
    surv = torch.cumprod(1.0 - hazards, dim=1)
    s_pad = torch.cat([torch.ones_like(unc), surv], dim=1)
    s_prev = torch.gather(s_pad, 1, y).clamp(min=eps)
    s_this = torch.gather(s_pad, 1, y + 1).clamp(min=eps)
    h_this = torch.gather(hazards, 1, y).clamp(min=eps)
    uncensored = -unc * (torch.log(s_prev) + torch.log(h_this))
    censored = -(1.0 - unc) * torch.log(s_this)
    loss = (1.0 - alpha) * (censored + uncensored) + alpha * uncensored
    return loss.mean()
