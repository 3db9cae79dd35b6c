"""MIL benchmark at real bag sizes: synthetic 1024-d bags where a rare phenotype carries the risk.

Writes a cohort in the training stage's input format (bags.h5, omics.parquet, families.json,
clinical.tsv, splits.tsv), then drives `mmsurv.training.train_fold` per model × seed × fold (no
Snakemake) and reports per model: fold c-index mean ± std, the pooled out-of-fold c-index with a
bootstrap CI, seconds per training case-step and peak RSS. See docs/mil_bags.md.

    python benchmarks/bench_mil_bags.py --models all                # GPU node: 13 models + floors
    python benchmarks/bench_mil_bags.py --models cpu --cases 150    # what a 2-core CPU can run
    python benchmarks/bench_mil_bags.py --tiny --out /tmp/x         # CI-sized (seconds)

A model spec is a registered name, or `name:grouping` for ours and its ablations
(`ours:kmeans` = ours with model_kwargs {grouping: kmeans}).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
GENE_FAMILIES = REPO / "resources" / "gene_families.csv"
SIGNAL_FAMILY = 1  # Oncogenes: the family whose latent factor interacts with the phenotype

DEEP_MODELS = [
    "snn", "snn_trans", "attn_mil", "clam_sb", "transmil", "porpoise", "hfbsurv", "mcat",
    "dualtrans", "ours", "ours_wo_simme", "ours_wo_bdca", "ours_wo_ot",
]  # fmt: skip
FLOORS = ["coxnet_omic", "coxnet_path", "cox_clinical"]
GROUPING_SPECS = ["ours:random_mean", "ours:random_attn", "ours:kmeans"]
MODEL_SETS = {
    # every model (ours' ablations at the default grouping) + each grouping of ours + floors
    "all": [m for m in DEEP_MODELS if m != "ours"] + GROUPING_SPECS + FLOORS,
    # what ran on 2 shared CPU cores (docs/mil_bags.md)
    "cpu": GROUPING_SPECS + ["attn_mil", "ours_wo_ot:kmeans", "ours_wo_bdca:kmeans"] + FLOORS,
}


@dataclass(frozen=True)
class GenConfig:
    """The synthetic cohort: sizes, the rare phenotype, nuisance and survival model."""

    n_cases: int = 300
    min_patches: int = 2_000
    max_patches: int = 20_000
    dim: int = 1024
    n_common: int = 4  # common tissue types (their mix varies per case: nuisance)
    rare_max: float = 0.05  # prevalence of the rare phenotype ~ U(0, rare_max)
    rare_shift: float = 1.0  # its offset from tissue type 0, per dimension (‖Δ‖ ≈ 32)
    n_factors: int = 16  # correlated patch features: low-rank factor noise
    factor_scale: float = 0.5
    stain_scale: float = 1.0  # per-case offset in the factor space (nuisance)
    n_sites: int = 4
    site_shift: float = 0.3  # per-site batch offset, per dimension (‖b‖ ≈ 10; nuisance)
    max_family_genes: int = 100
    beta_p: float = 0.6  # log-hazard per SD of prevalence
    beta_pg: float = 0.6  # prevalence × signal-family factor
    beta_g: float = 0.3
    seed: int = 0


def family_genes(max_genes: int) -> dict[str, list[str]]:
    """The project's six gene families (resources/gene_families.csv), each cut to max_genes."""
    table = pd.read_csv(GENE_FAMILIES)
    return {str(f): table[f].dropna().astype(str).tolist()[:max_genes] for f in table.columns}


def _omics(rng: np.random.Generator, families: dict[str, list[str]], n: int) -> tuple:
    """Omics: per family a latent factor; 30 % of its genes load on it. Return table, factors."""
    factors = rng.standard_normal((n, len(families)))
    columns: dict[str, np.ndarray] = {}
    for k, genes in enumerate(families.values()):
        for gene in genes:
            if f"{gene}_rnaseq" in columns:
                continue  # a gene in two families keeps its first family's loading
            load = 0.7 if rng.random() < 0.3 else 0.0
            columns[f"{gene}_rnaseq"] = load * factors[:, k] + rng.standard_normal(n)
    return pd.DataFrame(columns), factors


def _survival(
    rng: np.random.Generator, eta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weibull times with log-hazard eta, uniform censoring (~40 %): months, event, T."""
    t_event = 30.0 * (-np.log(rng.random(eta.size)) / np.exp(eta)) ** (1 / 1.5)
    t_cens = rng.uniform(5.0, 90.0, eta.size)
    return np.minimum(t_event, t_cens), t_event <= t_cens, t_event


def case_bag(
    rng: np.random.Generator, cfg: GenConfig, parts: dict, i: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Case i's (n, dim) bag (common tissue mix, rare patches, factor noise, site, stain), kinds.

    kind: the patch's tissue type, `cfg.n_common` for the rare phenotype.
    """
    comp = rng.dirichlet(np.full(cfg.n_common, 2.0))
    n_rare = int(round(parts["prevalence"][i] * n))
    kind = np.concatenate(
        [np.full(n_rare, cfg.n_common), rng.choice(cfg.n_common, n - n_rare, p=comp)]
    )
    bag = rng.standard_normal((n, cfg.dim), dtype=np.float32)
    bag += parts["centroids"][kind]
    u = rng.standard_normal((n, cfg.n_factors), dtype=np.float32) + parts["stain"][i]
    bag += u @ parts["loadings"].T
    bag += parts["sites"][parts["site"][i]]
    order = rng.permutation(n)
    return bag[order], kind[order]


def draw_parts(rng: np.random.Generator, cfg: GenConfig) -> dict[str, Any]:
    """Cohort-level draws: centroids, factor loadings, site offsets and per-case latents."""
    d, n = cfg.dim, cfg.n_cases
    common = rng.standard_normal((cfg.n_common, d))
    direction = rng.standard_normal(d)
    rare = common[0] + cfg.rare_shift * math.sqrt(d) * direction / np.linalg.norm(direction)
    log_n = rng.uniform(math.log(cfg.min_patches), math.log(cfg.max_patches), n)
    return {
        "centroids": np.vstack([common, rare]).astype(np.float32),
        "loadings": (cfg.factor_scale * rng.standard_normal((d, cfg.n_factors)) / 4).astype(
            np.float32
        ),
        "sites": (cfg.site_shift * rng.standard_normal((cfg.n_sites, d))).astype(np.float32),
        "site": rng.integers(0, cfg.n_sites, n),
        "stain": (cfg.stain_scale * rng.standard_normal((n, cfg.n_factors))).astype(np.float32),
        "prevalence": rng.uniform(0.0, cfg.rare_max, n),
        "n_patches": np.round(np.exp(log_n)).astype(int),
    }


def generate_cohort(cfg: GenConfig, out: Path, n_folds: int = 5) -> pd.DataFrame:
    """Write the cohort's training inputs under `out`; return the truth table (one row a case)."""
    from mmsurv.bags.data import make_folds, write_bags, write_splits

    rng = np.random.default_rng(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    parts = draw_parts(rng, cfg)
    families = family_genes(cfg.max_family_genes)
    omics, factors = _omics(rng, families, cfg.n_cases)
    ids = [f"CASE-{i:04d}" for i in range(cfg.n_cases)]
    p_std = (parts["prevalence"] - cfg.rare_max / 2) / (cfg.rare_max / math.sqrt(12))
    g = factors[:, SIGNAL_FAMILY]
    eta = cfg.beta_p * p_std + cfg.beta_pg * p_std * g + cfg.beta_g * g
    months, event, _ = _survival(rng, eta)
    truth = pd.DataFrame(
        {"case_id": ids, "eta": eta, "prevalence": parts["prevalence"], "signal_factor": g,
         "site": parts["site"], "n_patches": parts["n_patches"],
         "survival_months": months, "event": event},
    )  # fmt: skip
    clinical = pd.DataFrame(
        {"case_id": ids, "survival_months": np.round(months, 3), "event": event.astype(int),
         "age": np.round(rng.normal(65, 10, cfg.n_cases), 1),
         "sex": rng.choice(["female", "male"], cfg.n_cases), "site": parts["site"]},
    )  # fmt: skip
    clinical.to_csv(out / "clinical.tsv", sep="\t", index=False)
    omics.index = pd.Index(ids, name="case_id")
    omics.to_parquet(out / "omics.parquet")
    cols = {f: [f"{gene}_rnaseq" for gene in genes] for f, genes in families.items()}
    (out / "families.json").write_text(json.dumps({"families": cols}, indent=1))
    bag_rng = np.random.default_rng([cfg.seed, 1])

    class LazyBags(dict):
        """Case → [(slide, features)] generated on access, so the cohort never sits in memory."""

        def items(self):  # noqa: ANN202 - dict protocol
            for i, case in enumerate(ids):
                bag = case_bag(bag_rng, cfg, parts, i, int(parts["n_patches"][i]))[0]
                yield case, [(f"{case}-slide", bag)]

    attrs = {"encoder": "synthetic", "weights": "none", "feature_dim": cfg.dim}
    write_bags(out / "bags.h5", LazyBags(), attrs)
    clin = clinical.set_index("case_id").assign(event=event)
    write_splits(make_folds(clin, n_folds=n_folds, seed=cfg.seed), out / "splits.tsv")
    truth.to_csv(out / "truth.tsv", sep="\t", index=False)
    return truth


def split_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """`ours:kmeans` → ("ours", {"grouping": "kmeans"}); a plain name → (name, {})."""
    name, _, grouping = spec.partition(":")
    return name, ({"grouping": grouping} if grouping else {})


def _finished_fold(out: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """A fold a killed run finished with the same params (its meta.json), to resume from."""
    meta_file = out / "meta.json"
    if not (meta_file.is_file() and (out / "predictions.parquet").is_file()):
        return None
    meta = json.loads(meta_file.read_text())
    done = meta.get("params", {})
    if any(done.get(k) != v for k, v in params.items() if k != "num_threads"):
        return None
    print(f"reusing {out}", flush=True)
    return {**meta, "resumed": True}


def run_model(spec: str, seed: int, data: Path, work: Path, args: argparse.Namespace) -> dict:
    """Train and predict every fold of one model spec and seed in this process; return its rows."""
    from mmsurv.training.train import train_fold

    name, kwargs = split_spec(spec)
    params: dict[str, Any] = {"epochs": args.epochs, "num_threads": args.threads}
    if args.grad_accum:
        params["grad_accum"] = args.grad_accum
    if args.max_train_patches:
        params["max_patches"] = args.max_train_patches
    if kwargs:
        params["model_kwargs"] = kwargs
    folds = sorted(set(pd.read_csv(data / "splits.tsv", sep="\t")["fold"]))[: args.folds]
    rows = []
    for fold in folds:
        out = work / "train" / spec.replace(":", "-") / f"seed{seed}" / f"fold{fold}"
        t0 = time.perf_counter()
        summary = _finished_fold(out, params) or train_fold(
            cohort="milbags", model_name=name, fold=int(fold), bags_h5=str(data / "bags.h5"),
            omics_parquet=str(data / "omics.parquet"), families_json=str(data / "families.json"),
            clinical_tsv=str(data / "clinical.tsv"), splits_tsv=str(data / "splits.tsv"),
            out_dir=str(out), params=params, seed=seed, device=args.device,
        )  # fmt: skip
        wall = 0.0 if summary.get("resumed") else time.perf_counter() - t0
        pred = pd.read_parquet(out / "predictions.parquet")
        steps = args.epochs * summary["n_train"] if name not in FLOORS else 0
        rows.append({
            "spec": spec, "seed": seed, "fold": int(fold), "cindex": summary["test_cindex"],
            "n_train": summary["n_train"], "n_test": summary["n_test"], "wall_s": wall,
            "train_s": summary.get("train_seconds", math.nan),
            "s_per_step": summary.get("train_seconds", math.nan) / steps if steps else math.nan,
            "pred": pred[["case_id", "risk"]].to_dict("list"),
        })  # fmt: skip
    trained = any(r["wall_s"] > 0 for r in rows)  # else every fold was reused: no RSS to report
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if trained else math.nan
    return {"rows": rows, "peak_rss_mb": rss, "trained": trained}


def _launch(spec: str, seed: int, args: argparse.Namespace, work: Path) -> tuple:
    """Start one (spec, seed) worker process; it writes its rows to a JSON file."""
    result = work / "runs" / f"{spec.replace(':', '-')}_seed{seed}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    log = open(work / "runs" / f"{result.stem}.log", "w")  # noqa: SIM115 - closed by the caller
    cmd = [sys.executable, __file__, "--worker", spec, "--seed-one", str(seed), "--work", str(work),
           "--epochs", str(args.epochs), "--folds", str(args.folds), "--threads", str(args.threads),
           "--device", args.device, "--grad-accum", str(args.grad_accum or 0),
           "--max-train-patches", str(args.max_train_patches or 0)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return proc, result, log


def run_all(specs: list[str], seeds: list[int], work: Path, args: argparse.Namespace) -> list:
    """Run every (spec, seed) in `args.jobs` parallel worker processes (0: in this process)."""
    todo = [(s, seed) for seed in seeds for s in specs]
    done: list[dict] = []
    if args.jobs == 0:
        for spec, seed in todo:
            t0 = time.perf_counter()
            res = run_model(spec, seed, work / "data", work, args)
            done.append({**res, "spec": spec, "seed": seed, "wall_s": time.perf_counter() - t0})
        return done
    running: dict[int, tuple] = {}
    while todo or running:
        while todo and len(running) < args.jobs:
            spec, seed = todo.pop(0)
            proc, result, log = _launch(spec, seed, args, work)
            running[proc.pid] = (proc, result, log, spec, seed, time.perf_counter())
            print(f"started {spec} seed {seed}", flush=True)
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        proc, result, log, spec, seed, t0 = running.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        if proc.returncode != 0 or not result.is_file():
            print(f"FAILED {spec} seed {seed} (exit {proc.returncode}); see {log.name}", flush=True)
            done.append({"spec": spec, "seed": seed, "rows": [], "error": log.name})
            continue
        res = json.loads(result.read_text())
        rss = usage.ru_maxrss / 1024 if res.get("trained", True) else math.nan
        res.update(spec=spec, seed=seed, wall_s=time.perf_counter() - t0, peak_rss_mb=rss)
        done.append(res)
        print(f"finished {spec} seed {seed} in {res['wall_s']:.0f} s", flush=True)
    return done


def summarise(done: list[dict], truth: pd.DataFrame, n_boot: int) -> list[dict]:
    """Per spec: fold c-index mean ± std (folds × seeds), pooled c-index + CI (seed 0), cost."""
    from mmsurv.evaluate.metrics import bootstrap_cindex

    t = truth.set_index("case_id")
    table = []
    for spec in dict.fromkeys(d["spec"] for d in done):
        runs = [d for d in done if d["spec"] == spec and d["rows"]]
        rows = [r for d in runs for r in d["rows"]]
        if not rows:
            table.append({"spec": spec, "error": "no run finished"})
            continue
        ci = np.array([r["cindex"] for r in rows], dtype=float)
        pooled = []
        for d in runs:
            risk = pd.concat(
                [pd.Series(r["pred"]["risk"], index=r["pred"]["case_id"]) for r in d["rows"]]
            )
            sub = t.loc[risk.index]
            b = bootstrap_cindex(
                sub["survival_months"], sub["event"].to_numpy(bool), risk.to_numpy(),
                n_bootstrap=n_boot,
            )  # fmt: skip
            pooled.append({"seed": d["seed"], "estimate": b.estimate, "low": b.low, "high": b.high})
        steps = [r["s_per_step"] for r in rows if not math.isnan(r["s_per_step"])]
        table.append({
            "spec": spec, "n_runs": len(rows), "n_seeds": len(runs),
            "cindex_mean": float(ci.mean()),
            "cindex_std": float(ci.std(ddof=1)) if ci.size > 1 else math.nan,
            "pooled": pooled, "s_per_step": float(np.median(steps)) if steps else math.nan,
            "peak_rss_mb": max((d["peak_rss_mb"] for d in runs if d.get("peak_rss_mb", 0) > 0),
                               default=math.nan),
            "wall_s": sum(d.get("wall_s", 0.0) for d in runs),
        })  # fmt: skip
    return table


def oracles(truth: pd.DataFrame) -> dict[str, float]:
    """c-index ceilings on all cases: the true log-hazard, prevalence alone, the factor alone."""
    from mmsurv.evaluate.stats import concordance_index

    t, e = truth["survival_months"], truth["event"].to_numpy(bool)
    return {
        "eta (true log-hazard)": concordance_index(t, e, truth["eta"]),
        "prevalence only": concordance_index(t, e, truth["prevalence"]),
        "signal family factor only": concordance_index(t, e, truth["signal_factor"]),
    }


def token_probe(data: Path, dim: int, n_boot: int) -> dict[str, dict[str, float]]:
    """What ours' pathology tokens expose before training, per grouping, on the cohort's bags.

    ours at initialisation (seed 0, eval mode, all patches): spread = mean pairwise distance of
    the C_p tokens over that of the patch embeddings (path_fc); probe = out-of-fold c-index of a
    ridge Cox (alpha 1) on the top 16 training-fold principal components of the tokens' mean
    and max, on the cohort's splits.
    """
    import torch
    from sklearn.decomposition import PCA
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    from mmsurv.bags.data import BagStore
    from mmsurv.bags.omics import read_families_json
    from mmsurv.evaluate.metrics import bootstrap_cindex
    from mmsurv.models import create_model
    from mmsurv.models.ours import GROUPINGS

    truth = pd.read_csv(data / "truth.tsv", sep="\t", dtype={"case_id": str})
    fold = pd.read_csv(data / "splits.tsv", sep="\t", dtype={"case_id": str}).set_index("case_id")
    fold = fold.loc[truth["case_id"], "fold"].to_numpy()
    sizes = [len(c) for c in read_families_json(data / "families.json").values()]
    y = Surv.from_arrays(truth["event"].to_numpy(bool), truth["survival_months"].to_numpy())
    out = {}
    with BagStore(data / "bags.h5") as store:
        for grouping in GROUPINGS:
            torch.manual_seed(0)
            model = create_model("ours", path_dim=dim, omic_sizes=sizes, grouping=grouping).eval()
            feats, spread = [], []
            with torch.no_grad():
                for case in truth["case_id"]:
                    path = torch.from_numpy(store[case])
                    tok = model.path_tokens(path)
                    ref = torch.pdist(model.path_fc(path[:512])).mean()
                    spread.append(float(torch.pdist(tok).mean() / ref))
                    feats.append(torch.cat([tok.mean(0), tok.max(0).values]).numpy())
            x, risk = np.asarray(feats, dtype=np.float64), np.zeros(len(feats))
            for k in np.unique(fold):
                tr, te = fold != k, fold == k
                mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8
                pca = PCA(16, random_state=0).fit((x[tr] - mu) / sd)
                cox = CoxPHSurvivalAnalysis(alpha=1.0).fit(pca.transform((x[tr] - mu) / sd), y[tr])
                risk[te] = cox.predict(pca.transform((x[te] - mu) / sd))
            b = bootstrap_cindex(y["time"], y["event"], risk, n_bootstrap=n_boot)
            out[grouping] = {"spread_median": float(np.median(spread)), "probe_cindex": b.estimate,
                             "probe_low": b.low, "probe_high": b.high}  # fmt: skip
    return out


def markdown(doc: dict) -> str:
    """The results as Markdown: header (date, machine, load, command, what did not run), table."""
    g = doc["generator"]
    lines = [
        "# MIL benchmark at real bag sizes (`bench_mil_bags.py`)", "",
        f"{doc['date']} · {doc['machine']} · load average at start {doc['load_start']} · at end "
        f"{doc['load_end']} · torch {doc['torch']} · {doc['threads']} thread(s) per job, "
        f"{doc['jobs']} job(s) in parallel · wall {doc['wall_min']:.1f} min", "",
        f"Command: `{doc['command']}`", "",
        f"Cohort: {g['n_cases']} cases, {g['min_patches']:,}–{g['max_patches']:,} patches "
        f"(log-uniform; {doc['patches_total']:,} in all), {g['dim']}-d; rare phenotype "
        f"prevalence U(0, {g['rare_max']}); {doc['folds']} folds, seeds {doc['seeds']}, "
        f"{doc['epochs']} epochs, grad_accum {doc['grad_accum']}, training max_patches "
        f"{doc['max_train_patches']} (all patches at evaluation), path_norm "
        f"{doc.get('path_norm', 'none (before the option existed)')}, other training params at "
        "the project's defaults.", "",
        f"Not run: {doc['not_run']}", "",
        "| model | c-index folds mean ± std | pooled c-index [95 % CI] | s / case-step "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in doc["summary"]:
        if "error" in r:
            lines.append(f"| {r['spec']} | {r['error']} | | | |")
            continue
        pooled = "; ".join(
            f"{p['estimate']:.3f} [{p['low']:.3f}, {p['high']:.3f}]" for p in r["pooled"]
        )
        std = "" if math.isnan(r["cindex_std"]) else f" ± {r['cindex_std']:.3f}"
        sps = "–" if math.isnan(r["s_per_step"]) else f"{r['s_per_step']:.3f}"
        rss = "–" if math.isnan(r["peak_rss_mb"]) else f"{r['peak_rss_mb']:.0f}"
        lines.append(f"| {r['spec']} | {r['cindex_mean']:.3f}{std} (n={r['n_runs']}) | {pooled} | "
                     f"{sps} | {rss} |")  # fmt: skip
    lines += ["", "Oracles (all cases, the generator's truth): " + "; ".join(
        f"{k} {v:.3f}" for k, v in doc["oracles"].items()), "",
        "s / case-step: the training loop's seconds over epochs × training cases (one forward + "
        "backward of one case, its bag read included); peak RSS: the worker process's maximum "
        "resident memory (Python + torch + the largest bag at evaluation).", ""]  # fmt: skip
    if doc.get("probe"):
        lines += [
            "## Token probe (no training)",
            "",
            "ours at initialisation, evaluation mode, all patches of each bag. Spread: median over "
            "cases of the mean pairwise distance between the C_p tokens over that between patch "
            "embeddings. Probe: pooled out-of-fold c-index [95 % CI] of a ridge Cox on the top 16 "
            "principal components of the tokens' mean and max (fitted on the training folds).",
            "",
            "| grouping | token spread | probe c-index [95 % CI] |",
            "|---|---:|---:|",
        ] + [
            f"| {g} | {r['spread_median']:.3f} | {r['probe_cindex']:.3f} "
            f"[{r['probe_low']:.3f}, {r['probe_high']:.3f}] |"
            for g, r in doc["probe"].items()
        ]
        lines += ["", f"Probe command: `{doc.get('probe_command', '')}`", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; --tiny sets CI sizes."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="cpu", help="'all', 'cpu' or comma-separated specs")
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--min-patches", type=int, default=2_000)
    ap.add_argument("--max-patches", type=int, default=20_000)
    ap.add_argument("--max-family-genes", type=int, default=100)
    ap.add_argument("--folds", type=int, default=5, help="folds made and run (the first K)")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--grad-accum", type=int, default=0, help="0: the project's default")
    ap.add_argument(
        "--max-train-patches", type=int, default=0, help="training max_patches; 0: default"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job")
    ap.add_argument("--jobs", type=int, default=1, help="parallel jobs; 0: in this process")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=None, help="data + runs (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where mil_bags.{json,md} go")
    ap.add_argument("--not-run", default="", help="what was left out and why (for the header)")
    ap.add_argument("--tiny", action="store_true", help="CI: 24 small bags, ours:kmeans, 1 fold")
    ap.add_argument(
        "--probe", action="store_true", help="with --models none: add the token probe to --out"
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed-one", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tiny:
        args.cases, args.min_patches, args.max_patches, args.max_family_genes = 24, 200, 400, 8
        args.models, args.folds, args.epochs, args.jobs, args.bootstrap = "ours:kmeans", 1, 1, 0, 50
    return args


def main(argv: list[str] | None = None) -> dict:
    """Generate the cohort, run the models, write mil_bags.json and .md; return the document."""
    import tempfile

    import torch

    from mmsurv.training.params import DEFAULT_PARAMS

    args = parse_args(argv)
    if args.worker:  # one (spec, seed) job started by run_all
        res = run_model(args.worker, args.seed_one, args.work / "data", args.work, args)
        name = f"{args.worker.replace(':', '-')}_seed{args.seed_one}.json"
        (args.work / "runs" / name).write_text(json.dumps(res))
        return res
    t0, load0 = time.perf_counter(), os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="mil_bags_"))
    cfg = GenConfig(n_cases=args.cases, min_patches=args.min_patches, max_patches=args.max_patches,
                    max_family_genes=args.max_family_genes)  # fmt: skip
    n_folds = max(args.folds, 3 if args.tiny else 5)
    stamp = json.dumps({**asdict(cfg), "n_folds": n_folds}, sort_keys=True)
    if (work / "data" / "cohort.json").is_file() and (
        work / "data" / "cohort.json"
    ).read_text() == stamp:
        truth = pd.read_csv(work / "data" / "truth.tsv", sep="\t", dtype={"case_id": str})
    else:  # generate (a --work dir holding the same cohort is reused)
        truth = generate_cohort(cfg, work / "data", n_folds=n_folds)
        (work / "data" / "cohort.json").write_text(stamp)
    print(f"cohort in {work / 'data'} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.probe and args.models == "none":  # add the token probe to an existing result
        doc = json.loads((args.out / "mil_bags.json").read_text())
        doc["probe"] = token_probe(work / "data", cfg.dim, args.bootstrap)
        doc["probe_command"] = "python benchmarks/bench_mil_bags.py " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        (args.out / "mil_bags.json").write_text(json.dumps(doc, indent=1, default=float))
        (args.out / "mil_bags.md").write_text(markdown(doc))
        return doc
    specs = MODEL_SETS.get(args.models) or args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    done = run_all(specs, seeds, work, args)
    doc = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} · {os.cpu_count()} CPUs · {platform.machine()}",
        "load_start": [round(x, 2) for x in load0],
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__, "threads": args.threads, "jobs": args.jobs,
        "command": "python benchmarks/bench_mil_bags.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "generator": asdict(cfg), "patches_total": int(truth["n_patches"].sum()),
        "folds": args.folds, "seeds": seeds, "epochs": args.epochs,
        "grad_accum": args.grad_accum or "32 (default)", "not_run": args.not_run or "–",
        "max_train_patches": args.max_train_patches or "4096 (default)",
        "path_norm": DEFAULT_PARAMS["path_norm"],
        "oracles": oracles(truth), "summary": summarise(done, truth, args.bootstrap),
        "runs": [{k: v for k, v in r.items() if k != "pred"} for d in done for r in d["rows"]],
        "wall_min": (time.perf_counter() - t0) / 60,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mil_bags.json").write_text(json.dumps(doc, indent=1, default=float))
    (args.out / "mil_bags.md").write_text(markdown(doc))
    print(markdown(doc))
    return doc


if __name__ == "__main__":
    main()
