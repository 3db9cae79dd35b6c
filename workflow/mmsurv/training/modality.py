"""Missing modalities in training and scoring: modality dropout draws and withheld inputs.

``training.modality_dropout: p`` (multimodal models only): in every epoch each training case
independently loses its pathology with probability p/2 or its genomics with probability p/2,
never both, so the model learns its missing tokens (models/_missing.py). The draws come from
their own generator, seeded by the job's seed and the epoch, so they leave the sampler, bag
sub-sampling and dropout streams as they were and p = 0 trains exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "WITHHELD",
    "draw_withheld",
    "is_multimodal",
    "modalities_used",
    "withhold",
]

# `withheld` values of predictions_missing.parquet: none = both inputs (the normal scoring).
WITHHELD = ("none", "path", "omic")
_SALT = 0x6D6D  # separates this stream from anything else seeded with the job's seed


def is_multimodal(modalities: frozenset[str] | set[str]) -> bool:
    """Whether a model reads both pathology and genomics (so one of them can be withheld)."""
    return {"path", "omic"} <= set(modalities)


def draw_withheld(n: int, p: float, seed: int, epoch: int) -> list[str | None]:
    """For n training steps: 'path' with probability p/2, 'omic' with p/2, else None.

    p = 0 draws nothing and returns n Nones (training unchanged).
    """
    if not 0 <= p < 1:
        raise ValueError(f"modality_dropout must be in [0, 1), got {p}")
    if p == 0:
        return [None] * n
    u = np.random.default_rng([int(seed), int(epoch), _SALT]).random(n)
    return ["path" if x < p / 2 else "omic" if x < p else None for x in u]


def withhold(
    path: torch.Tensor | None, omics: Sequence[torch.Tensor] | None, which: str | None
) -> tuple[torch.Tensor | None, Sequence[torch.Tensor] | None]:
    """The model inputs with modality ``which`` ('path', 'omic' or None = neither) set to None."""
    if which is None or which == "none":
        return path, omics
    if which == "path":
        return None, omics
    if which == "omic":
        return path, None
    raise ValueError(f"withheld={which!r}; choose one of {WITHHELD}")


def modalities_used(modalities: frozenset[str] | set[str], withheld: str | None) -> str:
    """The inputs a scoring read: 'path+omic', 'path', 'omic' or 'clinical' (inputs − withheld)."""
    used = [m for m in ("path", "omic", "clinical") if m in modalities and m != withheld]
    return "+".join(used) if used else "none"
