"""Linear floor models: what a floor reads and which scikit-survival Cox estimator it fits.

A floor is not a torch module: `training/linear.py` fits it on the training folds (no epochs,
no time bins learnt) and writes the same four fold outputs as the deep models. Each floor is
one file (`coxnet_omic.py`, `coxnet_path.py`, `cox_clinical.py`) with a `@register_floor`
factory whose keyword arguments are the model's `training.model_kwargs`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

# sksurv (sklearn, scipy) is imported where an estimator is built: `mmsurv.models` imports this
# module, and a deep model's train job would otherwise pay seconds of start-up for it.
if TYPE_CHECKING:
    from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis

__all__ = ["FloorFeatures", "LinearFloor", "Penalty"]

FloorFeatures = Literal["omic", "path", "clinical"]
"""omic: the family genes, each column once; path: the mean of each case's patch features;
clinical: the clinical covariates the config names (`training.clinical_covariates`)."""
Penalty = Literal["elastic_net", "ridge"]
"""elastic_net: Coxnet with alpha chosen by an inner CV; ridge: CoxPH with a fixed alpha."""


@dataclass(frozen=True)
class LinearFloor:
    """A linear Cox floor: its input, its penalty and the settings of the estimator it fits.

    elastic_net: `CoxnetSurvivalAnalysis(l1_ratio)` path fitted once on the training cases
    (`n_alphas` alphas down to `alpha_min_ratio` x the largest), then alpha chosen by its mean
    c-index over `inner_folds` event-stratified folds of the training cases, repeated
    `inner_repeats` times with different shuffles (each inner fold fits the path on the others;
    one shuffle alone makes the chosen alpha, and the test c-index, depend on the seed).
    ridge: `CoxPHSurvivalAnalysis(alpha)`.
    """

    name: str
    features: FloorFeatures
    penalty: Penalty
    l1_ratio: float = 0.5
    n_alphas: int = 30
    alpha_min_ratio: float = 0.01
    inner_folds: int = 5
    inner_repeats: int = 3
    alpha: float = 1.0
    max_iter: int = 100_000

    def __post_init__(self) -> None:
        where = f"training.model_kwargs.{self.name}"
        if self.features not in ("omic", "path", "clinical"):
            raise ValueError(f"{self.name}: features must be omic, path or clinical")
        if self.penalty not in ("elastic_net", "ridge"):
            raise ValueError(f"{self.name}: penalty must be elastic_net or ridge")
        if not 0 < float(self.l1_ratio) <= 1:
            raise ValueError(f"{where}.l1_ratio must be in (0, 1], got {self.l1_ratio}")
        if int(self.n_alphas) < 2:
            raise ValueError(f"{where}.n_alphas must be >= 2, got {self.n_alphas}")
        if not 0 < float(self.alpha_min_ratio) < 1:
            raise ValueError(
                f"{where}.alpha_min_ratio must be in (0, 1), got {self.alpha_min_ratio}"
            )
        if int(self.inner_folds) < 2:
            raise ValueError(f"{where}.inner_folds must be >= 2, got {self.inner_folds}")
        if int(self.inner_repeats) < 1:
            raise ValueError(f"{where}.inner_repeats must be >= 1, got {self.inner_repeats}")
        if not (math.isfinite(float(self.alpha)) and float(self.alpha) >= 0):
            raise ValueError(f"{where}.alpha must be a number >= 0, got {self.alpha}")
        if int(self.max_iter) < 1:
            raise ValueError(f"{where}.max_iter must be >= 1, got {self.max_iter}")

    @property
    def modalities(self) -> frozenset[str]:
        """The input the floor reads, as `model_catalog.MODEL_INPUTS` names it."""
        return frozenset({self.features})

    def settings(self) -> dict[str, Any]:
        """The floor's settings as a JSON-friendly dict (meta.json, checkpoint)."""
        return asdict(self)

    def path_estimator(self) -> CoxnetSurvivalAnalysis:
        """Coxnet that fits the whole regularisation path once, to give the alpha grid."""
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        return CoxnetSurvivalAnalysis(
            l1_ratio=float(self.l1_ratio),
            n_alphas=int(self.n_alphas),
            alpha_min_ratio=float(self.alpha_min_ratio),
            max_iter=int(self.max_iter),
        )

    def grid_estimator(self, alphas: Any, *, baseline: bool = False) -> CoxnetSurvivalAnalysis:
        """Coxnet along the given alphas (largest first, warm starts); with `baseline`, it
        keeps the Breslow baseline of each alpha (for S(t))."""
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        return CoxnetSurvivalAnalysis(
            l1_ratio=float(self.l1_ratio),
            alphas=[float(a) for a in alphas],
            max_iter=int(self.max_iter),
            fit_baseline_model=baseline,
        )

    def ridge_estimator(self) -> CoxPHSurvivalAnalysis:
        """Cox proportional hazards with a fixed ridge penalty 0.5 * alpha * ||beta||^2."""
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        return CoxPHSurvivalAnalysis(alpha=float(self.alpha), ties="breslow")
