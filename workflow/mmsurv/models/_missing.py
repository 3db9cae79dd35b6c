"""Missing-modality inputs: a learned 'missing' token stands in for a withheld modality.

A multimodal model (`SurvModel.accepts_missing`) is called with ``path=None`` (pathology
withheld) or ``omics=None`` (genomics withheld), never both. Each model swaps in its own learned
tokens at the point named in its docstring: the bag becomes one token of the model's patch
embedding size after its input projection; the genomics become one token per family after the
family SNNs (or one token after the SNN of the concatenated families). Training learns them
under ``training.modality_dropout``; without it they keep their initial values, so scores with
a modality withheld show what an untrained stand-in gives.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MISSING_INIT_SEED", "missing_token"]

# The tokens draw from their own generator, so adding them leaves every other initial weight
# (drawn from the global, seeded RNG) as it was.
MISSING_INIT_SEED = 20250916


def missing_token(*shape: int, salt: int = 0) -> nn.Parameter:
    """A learned stand-in of ``shape`` (N(0, 0.02²), drawn without touching the global RNG)."""
    gen = torch.Generator().manual_seed(MISSING_INIT_SEED + salt)
    return nn.Parameter(0.02 * torch.randn(*shape, generator=gen))
