"""Per-job start-up: a train job imports only its own model, and a deep one no sklearn/scipy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mmsurv.model_catalog import MODEL_INPUTS
from mmsurv.models import FLOOR_MODULES, MODEL_MODULES

MODELS_DIR = Path(__file__).resolve().parents[1] / "workflow" / "mmsurv" / "models"


def test_registry_table_names_every_model_module() -> None:
    files = {p.stem for p in MODELS_DIR.glob("*.py") if not p.stem.startswith("_")}
    assert set(MODEL_MODULES.values()) | set(FLOOR_MODULES.values()) == files
    assert sorted({**MODEL_MODULES, **FLOOR_MODULES}) == sorted(MODEL_INPUTS)


def test_deep_train_job_imports_neither_sklearn_nor_other_models() -> None:
    code = (
        "import sys\n"
        "from mmsurv.training import train_fold\n"
        "from mmsurv.models import create_model\n"
        "create_model('snn', n_bins=4, omic_sizes=[3, 4])\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'scipy', 'sksurv', 'ot') or m.startswith('mmsurv.models.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["mmsurv.models._layers", "mmsurv.models._linear",
                                  "mmsurv.models._registry", "mmsurv.models.snn"]  # fmt: skip
