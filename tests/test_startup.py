"""Per-job start-up: a train job imports only its own model, a deep one no sklearn/scipy/dynamo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_train import make_cohort  # tests/ is on sys.path (rootdir imports)

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


def test_ours_job_imports_neither_pot_nor_sklearn() -> None:
    # ours solves its unbalanced OT with its own NumPy loop (equal to POT's, test_models.py):
    # importing POT pulled sklearn.cluster in as well (~2.5 CPU-s per job).
    code = (
        "import sys, torch\n"
        "from mmsurv.models import create_model\n"
        "m = create_model('ours', n_bins=4, path_dim=8, omic_sizes=[3, 4]).eval()\n"
        "m(torch.randn(5, 8), [torch.randn(3), torch.randn(4)])\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'ot', 'sklearn'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_deep_train_job_never_imports_torch_dynamo(tmp_path: Path) -> None:
    # torch.optim.Optimizer's methods import torch._dynamo (~2 CPU-s) on their first call; the
    # training loop's Adam (training/setup.py) calls the functional update instead.
    paths = make_cohort(tmp_path / "cohort", n=20)
    code = (
        "import json, sys\n"
        "from mmsurv.training import train_fold\n"
        f"s = train_fold(cohort='SYN', model_name='snn', fold=0, out_dir={str(tmp_path / 'out')!r},"
        " params={'epochs': 2, 'grad_accum': 2, 'num_threads': 1}, seed=0, device='cpu',"
        f" **{paths!r})\n"
        "print(json.dumps([s['n_test'], 'torch._dynamo' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n_test, dynamo = json.loads(out.stdout.splitlines()[-1])
    assert n_test > 0 and (tmp_path / "out" / "checkpoint.pt").is_file()  # it did train
    assert not dynamo


def test_tiling_job_imports_no_pandas() -> None:
    # 180 tiling jobs in the demo: pandas was ~half of each one's CPU time (via mmsurv.io).
    code = (
        "import sys\n"
        "from mmsurv.io import setup_logging\n"
        "from mmsurv.tiling import tile_and_save\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
