"""The training loop: one epoch at batch size 1, epoch selection, and held-out prediction."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from mmsurv.training.concordance import cindex
from mmsurv.training.dataset import SurvivalDataset
from mmsurv.training.losses import nll_surv_loss

# One logger for the stage's job log, named as before the stage was split into modules.
log = logging.getLogger("mmsurv.training.train")

__all__ = [
    "EpochResult",
    "Fit",
    "NonFiniteLossError",
    "Optimizer",
    "StepConfig",
    "check_finite_loss",
    "cindex",
    "evaluate_loss",
    "fit_epochs",
    "l1_parameters",
    "predict_case",
    "predict_fold",
    "select_weights",
    "train_one_epoch",
]


class Optimizer(Protocol):
    """What the loop asks of an optimizer: torch.optim's or setup.Adam (no torch._dynamo)."""

    def step(self) -> Any:
        """Update the parameters from their gradients."""

    def zero_grad(self) -> None:
        """Drop the gradients."""


@dataclass(frozen=True)
class StepConfig:
    """How a step feeds one case to the model and forms its loss (from the resolved params)."""

    dev: torch.device
    need_path: bool
    need_omic: bool
    takes_label: bool = False  # the model's forward takes `label=` in training (CLAM)
    grad_accum: int = 1
    l1_reg: float = 0.0
    alpha_surv: float = 0.0
    l1_scaling: str = "per_step"  # per_step: l1 / grad_accum per case; per_case: l1 per case
    l1_scope: str = "all"  # all parameters, or omic: the genomics branch only
    partial_step: bool = True  # step on the leftover group at epoch end (else carry it, MCAT)
    model_name: str = ""  # registry name, for messages (else looked up from the model's class)
    # training.modality_dropout (multimodal models; 0 otherwise) and the job seed its draws use
    modality_dropout: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class EpochResult:
    """Mean losses over an epoch's steps and each seen case's training risk."""

    loss: float
    loss_surv: float
    loss_aux: float
    risk: dict[int, float]  # dataset index -> -sum(surv) at its (last) step
    withheld: dict[str, int] = field(default_factory=dict)  # modality dropout: steps per modality


@dataclass
class Fit:
    """Per-epoch log rows, the inner_val choice (epoch, NLL, weights) and the training time.

    ``leaky``: best_test_epoch_leaky's choice (epoch, held-out c-index, weights), else None.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best: tuple[int, float, dict[str, torch.Tensor]] | None = None
    train_seconds: float = 0.0
    leaky: tuple[int, float, dict[str, torch.Tensor]] | None = None

    def leaky_summary(self) -> dict[str, float | int | None] | None:
        """best_test_epoch_leaky: selected epoch, its and the last epoch's held-out c-index, gap."""
        if self.leaky is None:
            return None
        last = self.history[-1]["heldout_cindex"] if self.history else math.nan
        chosen = self.leaky[1]

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "selected_epoch": int(self.leaky[0]),
            "selected_cindex": num(chosen),
            "last_epoch_cindex": num(last),
            "gap": num(chosen - last),
        }


def _inputs(
    item: dict[str, Any], need_path: bool, need_omic: bool, dev: torch.device
) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
    """Move one item's model inputs to the device."""
    path = item["path"].to(dev) if need_path else None
    omics = [o.to(dev) for o in item["omics"]] if need_omic else None
    return path, omics


def predict_case(
    model: torch.nn.Module,
    item: dict[str, Any],
    need_path: bool,
    need_omic: bool,
    dev: torch.device,
    fallbacks: list[str],
) -> Any:
    """Eval-mode forward on the whole bag; a GPU out-of-memory falls back to the CPU for this case.

    Training caps bags at max_patches; evaluation sees every patch, so one huge case (100k
    patches) may not fit on the GPU. That case is then scored on the CPU (same weights, same
    result up to float rounding) and listed, instead of the job failing after training.
    """
    try:
        return model(*_inputs(item, need_path, need_omic, dev))
    except torch.cuda.OutOfMemoryError:
        if dev.type == "cpu":
            raise
    case = item.get("case_id", "?")
    n = int(item["path"].shape[0]) if need_path else 0
    log.warning("case %s (%d patches): out of GPU memory at evaluation; scored on the CPU", case, n)
    fallbacks.append(str(case))
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    cpu = torch.device("cpu")
    model.to(cpu)
    try:
        res = model(*_inputs(item, need_path, need_omic, cpu))
    finally:
        model.to(dev)
    return res


def l1_parameters(model: torch.nn.Module, scope: str) -> list[torch.nn.Parameter]:
    """The parameters the L1 penalty covers: all, or (omic) the model's genomics branch."""
    if scope == "all":
        return list(model.parameters())
    if scope != "omic":
        raise ValueError(f"l1_scope={scope!r}; choose 'all' or 'omic'")
    omic_parameters = getattr(model, "omic_parameters", None)
    if omic_parameters is None:
        raise ValueError(
            f"l1_scope omic: {type(model).__name__} does not declare its genomics branch "
            "(SurvModel.omic_parameters)"
        )
    return list(omic_parameters())


class NonFiniteLossError(FloatingPointError):
    """A training loss that is NaN or infinite: the job stops instead of training on garbage."""


def _model_label(model: torch.nn.Module, cfg: StepConfig) -> str:
    """The model's registry name for messages (every name sharing its class, if not given)."""
    if cfg.model_name:
        return cfg.model_name
    from mmsurv.models import list_models, model_class

    names = [n for n in list_models() if model_class(n) is type(model)]
    return " / ".join(names) if names else type(model).__name__


def check_finite_loss(
    loss: torch.Tensor,
    model: torch.nn.Module,
    cfg: StepConfig,
    epoch: int,
    case_id: str,
    *,
    grads: bool = False,
) -> None:
    """Fail at once, naming the epoch, case and model, when a training loss is not finite.

    grads=True (after backward) checks the accumulated gradients too: a finite loss can still
    give NaN gradients (a saturated output on an extreme input), which the next step would
    write into every weight, so the case to blame is this one, not the next.
    """
    what = f"training loss is {float(loss.detach())}"
    if bool(torch.isfinite(loss.detach()).all()):
        if not grads:
            return
        g = [q.grad for q in model.parameters() if q.grad is not None]
        if not g or bool(torch.isfinite(torch.nn.utils.get_total_norm(g)).all()):
            return
        what = f"gradient is not finite (loss {float(loss.detach()):.4g})"
    raise NonFiniteLossError(
        f"model {_model_label(model, cfg)}: {what} at epoch {epoch + 1}, case {case_id}; "
        "check that case's omics and patch features for extreme values (the omics reader "
        "refuses inf), or lower training.lr"
    )


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: Optimizer,
    ds: SurvivalDataset,
    order: Sequence[int],
    cfg: StepConfig,
    epoch: int = 0,
) -> EpochResult:
    """One pass over `order` at batch size 1, accumulating gradients over grad_accum cases.

    Each case adds (NLL + aux) / grad_accum to the gradients, plus l1_reg * sum|w| over the
    l1_scope parameters, divided by grad_accum too (per_step) or not (per_case, MCAT). The
    optimizer steps every grad_accum cases, and once more for a partial group at the end of the
    epoch; without partial_step (MCAT) the leftover gradients are neither stepped nor zeroed,
    so they carry into the first step of the next epoch. A non-finite loss raises
    NonFiniteLossError naming `epoch` (0-based here, 1-based in the message) and the case.
    With cfg.modality_dropout > 0 a step may withhold one modality (training/modality.py).
    """
    from mmsurv.training.modality import draw_withheld, withhold

    drops = draw_withheld(len(order), cfg.modality_dropout, cfg.seed, epoch)
    model.train()
    if cfg.partial_step:
        optimizer.zero_grad()
    l1_params = l1_parameters(model, cfg.l1_scope) if cfg.l1_reg > 0 else []
    per_case = cfg.l1_scaling == "per_case"
    tot = surv_tot = aux_tot = 0.0
    risk: dict[int, float] = {}
    for step, i in enumerate(order, start=1):
        item = ds[i]
        path, omics = withhold(
            *_inputs(item, cfg.need_path, cfg.need_omic, cfg.dev), drops[step - 1]
        )
        label = item["label"].view(1).to(cfg.dev)
        res = model(path, omics, label=label) if cfg.takes_label else model(path, omics)
        loss_surv = nll_surv_loss(
            res.hazards,
            label,
            torch.tensor([item["event"]], device=cfg.dev),
            alpha=cfg.alpha_surv,
        )
        loss = loss_surv + res.aux_loss
        case_id = str(item.get("case_id", i))
        check_finite_loss(loss, model, cfg, epoch, case_id)
        if cfg.l1_reg > 0 and per_case:
            penalty = cfg.l1_reg * sum(q.abs().sum() for q in l1_params)
            (loss / cfg.grad_accum + penalty).backward()
            loss = loss + penalty
        else:
            if cfg.l1_reg > 0:
                loss = loss + cfg.l1_reg * sum(q.abs().sum() for q in l1_params)
            (loss / cfg.grad_accum).backward()
        check_finite_loss(loss, model, cfg, epoch, case_id, grads=True)
        if step % cfg.grad_accum == 0:
            optimizer.step()
            optimizer.zero_grad()
        tot += float(loss.detach())
        surv_tot += float(loss_surv.detach())
        aux_tot += float(res.aux_loss.detach())
        risk[int(i)] = float(-res.surv.detach().sum())
    if cfg.partial_step and len(order) % cfg.grad_accum != 0:
        optimizer.step()
        optimizer.zero_grad()
    n = len(order)
    withheld = {m: drops.count(m) for m in ("path", "omic")}
    return EpochResult(
        loss=tot / n, loss_surv=surv_tot / n, loss_aux=aux_tot / n, risk=risk, withheld=withheld
    )


def evaluate_loss(
    model: torch.nn.Module,
    ds: SurvivalDataset,
    cfg: StepConfig,
    fallbacks: list[str],
) -> tuple[float, float]:
    """Mean NLL survival loss and c-index of the model (eval mode) on a dataset."""
    model.eval()
    losses, risks = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            res = predict_case(model, item, cfg.need_path, cfg.need_omic, cfg.dev, fallbacks)
            label = item["label"].view(1).to(res.hazards.device)
            event = torch.tensor([item["event"]], device=res.hazards.device)
            losses.append(float(nll_surv_loss(res.hazards, label, event, alpha=cfg.alpha_surv)))
            risks.append(float(-res.surv.sum()))
    return float(np.mean(losses)), cindex(ds.events, ds.times, np.asarray(risks))


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's weights (to restore the selected epoch)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def fit_epochs(
    model: torch.nn.Module,
    optimizer: Optimizer,
    sampler: torch.utils.data.Sampler[int] | None,
    ds_train: SurvivalDataset,
    ds_val: SurvivalDataset | None,
    cfg: StepConfig,
    epochs: int,
    fallbacks: list[str],
    ds_leaky: SurvivalDataset | None = None,
) -> Fit:
    """Train `epochs` epochs (sampler order, else a random permutation), logging each one.

    With an inner-validation set, each epoch is scored on it and the lowest-NLL weights kept.
    ``ds_leaky`` (best_test_epoch_leaky only): the held-out fold, scored each epoch; the
    weights of the epoch with the best held-out c-index are kept (earliest on ties).
    """
    fit = Fit()
    t_start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = list(sampler) if sampler is not None else torch.randperm(len(ds_train)).tolist()
        ep = train_one_epoch(model, optimizer, ds_train, order, cfg, epoch=epoch)
        idx = np.array(sorted(ep.risk))
        train_ci = cindex(
            ds_train.events[idx], ds_train.times[idx], np.array([ep.risk[k] for k in idx])
        )
        row = {
            "epoch": epoch,
            "loss": ep.loss,
            "train_cindex": train_ci,
            "seconds": time.perf_counter() - t0,
            "loss_surv": ep.loss_surv,
            "loss_aux": ep.loss_aux,
        }
        if cfg.modality_dropout > 0:  # steps that withheld each modality (modality_dropout)
            row["withheld_path"] = ep.withheld["path"]
            row["withheld_omic"] = ep.withheld["omic"]
        if ds_val is not None:
            row["val_loss"], row["val_cindex"] = evaluate_loss(model, ds_val, cfg, fallbacks)
            if fit.best is None or row["val_loss"] < fit.best[1]:
                fit.best = (epoch, row["val_loss"], _state_copy(model))
        if ds_leaky is not None:
            _, row["heldout_cindex"] = evaluate_loss(model, ds_leaky, cfg, fallbacks)
            best = math.nan if fit.leaky is None else fit.leaky[1]
            if math.isnan(best) or row["heldout_cindex"] > best:  # NaN: no pair to compare
                fit.leaky = (epoch, row["heldout_cindex"], _state_copy(model))
        fit.history.append(row)
        log.info(
            "epoch %d/%d loss %.4f (surv %.4f aux %.4f) train c-index %.3f %.1fs",
            epoch + 1, epochs, row["loss"], row["loss_surv"], row["loss_aux"], train_ci,
            row["seconds"],
        )  # fmt: skip
    if not cfg.partial_step:
        optimizer.zero_grad()  # MCAT: the last epoch's leftover gradients are never stepped
    fit.train_seconds = time.perf_counter() - t_start
    return fit


def select_weights(model: torch.nn.Module, fit: Fit, epochs: int) -> int:
    """Load the weights model_selection chose (inner_val: the best epoch's); return the epoch."""
    summary = fit.leaky_summary()
    if summary is not None and fit.leaky is not None:
        model.load_state_dict(fit.leaky[2])
        log.warning(
            "best_test_epoch_leaky: epoch %d selected ON THE HELD-OUT FOLD (leaky): held-out "
            "c-index %s at the selected epoch, %s at the last epoch, gap %s",
            fit.leaky[0] + 1,
            *(_fmt(summary[k]) for k in ("selected_cindex", "last_epoch_cindex", "gap")),
        )
        return fit.leaky[0]
    if fit.best is None:
        return epochs - 1
    model.load_state_dict(fit.best[2])
    log.info("inner_val: epoch %d selected (validation NLL %.4f)", fit.best[0] + 1, fit.best[1])
    return fit.best[0]


def _fmt(x: float | int | None) -> str:
    """A c-index (or gap) for the job log: 4 decimals, 'undefined' for None."""
    return "undefined" if x is None else f"{x:+.4f}".lstrip("+")


def predict_fold(
    model: torch.nn.Module,
    ds: SurvivalDataset,
    cfg: StepConfig,
    n_bins: int,
    fallbacks: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode hazards and survival, (n_cases, n_bins) float64 each, of every case in `ds`."""
    model.eval()
    hazards, survs = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            res = predict_case(model, ds[i], cfg.need_path, cfg.need_omic, cfg.dev, fallbacks)
            hazards.append(res.hazards.squeeze(0).cpu().numpy())
            survs.append(res.surv.squeeze(0).cpu().numpy())
    haz = np.asarray(hazards, dtype=np.float64).reshape(-1, n_bins)
    sv = np.asarray(survs, dtype=np.float64).reshape(-1, n_bins)
    return haz, sv
