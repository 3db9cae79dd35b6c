"""Runs under a real single-node SLURM (scripts/slurm/start.sh).

The SLURM profile is installed exactly as the README says, into a temporary HOME:

    mkdir -p ~/.config/snakemake && cp -r profiles/slurm ~/.config/snakemake/slurm

and used as ``snakemake --profile slurm``. Two tests:

* ``test_toy_workflow_under_slurm``: a 3-rule Snakefile written into tmp_path; checks that every
  job went through sbatch (job ids in the log and in the jobs' own environment), ran with this
  Python, got the partition/account from SLURM_PARTITION/SLURM_ACCOUNT, and that ``gpu=0`` adds
  no ``--gpus`` to sbatch.
* ``test_workflow_under_slurm``: the tiny config ``.test/config_slurm/config.yaml`` of the real
  workflow, from the repo root; checks return code, >= 3 distinct SLURM job ids and a finite
  final c-index table.

In CI (``CI=true``) a cluster that cannot be started fails the tests; elsewhere they skip.
SLURM job ids are printed and appended to ``test-artifacts/slurm_job_ids.txt``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
START_SCRIPT = REPO / "scripts" / "slurm" / "start.sh"
ARTIFACTS = Path(os.environ.get("MMSURV_TEST_ARTIFACTS", REPO / "test-artifacts"))
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

SLURM_CONFIG = REPO / ".test" / "config_slurm" / "config.yaml"
SLURM_RESULTS = REPO / "results-slurm"
SLURM_TABLE = SLURM_RESULTS / "tables" / "cindex.csv"

# Wording of snakemake-executor-plugin-slurm 2.x:
#   "Job 3 has been submitted with SLURM jobid 17 (log: .../17.log)."
JOBID_RE = re.compile(r"has been submitted with SLURM jobid (\d+)")
# The profile waits 20 s before the first status check; tests poll faster.
STATUS_CHECK_ARGS = ["--slurm-init-seconds-before-status-checks", "5"]
TOY_TIMEOUT_S = 600
WORKFLOW_TIMEOUT_S = int(os.environ.get("MMSURV_SLURM_TEST_TIMEOUT", "2400"))
READY_STATES = {"idle", "mix", "mixed", "alloc", "allocated"}
# Pending reasons that no amount of waiting clears (the job asks for what the cluster lacks).
STUCK_REASONS = {
    "PartitionConfig",
    "ReqNodeNotAvail",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "BadConstraints",
}
STUCK_GRACE_S = 10.0
POLL_S = 2.0


def _fail_or_skip(msg: str) -> None:
    if IN_CI:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _cmd(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _cluster_ready() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    res = _cmd(["sinfo", "-h", "-o", "%t"])
    if res is None or res.returncode != 0:
        return False
    states = {s.strip().rstrip("*~#$@+-") for s in res.stdout.split()}
    return bool(states & READY_STATES)


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A SLURM cluster that accepts jobs; starts one with scripts/slurm/start.sh if needed."""
    if _cluster_ready():
        return
    if not IN_CI and os.geteuid() != 0:
        pytest.skip("no SLURM cluster running and not root (run scripts/slurm/start.sh as root)")
    try:
        res = subprocess.run(
            ["bash", str(START_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as exc:
        _fail_or_skip(f"scripts/slurm/start.sh timed out after {exc.timeout} s")
        return
    if res.returncode != 0:
        tail = (res.stdout + res.stderr)[-4000:]
        _fail_or_skip(f"scripts/slurm/start.sh failed (rc={res.returncode}):\n{tail}")
    if not _cluster_ready():
        _fail_or_skip("SLURM started but sinfo shows no idle node")


def _install_profile(home: Path) -> None:
    """Install the profile with the README's command, HOME pointing to a temp dir."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home)}
    subprocess.run(
        [
            "bash",
            "-c",
            "mkdir -p ~/.config/snakemake && cp -r profiles/slurm ~/.config/snakemake/slurm",
        ],
        cwd=REPO,
        env=env,
        check=True,
    )
    assert (home / ".config" / "snakemake" / "slurm" / "config.yaml").is_file()


def _snakemake_env(home: Path, **extra: str | None) -> dict[str, str]:
    env = dict(os.environ)
    # This interpreter's environment first: SLURM jobs inherit it (sbatch --export=ALL).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(home)
    for key in ("SNAKEMAKE_PROFILE", "SLURM_ACCOUNT", "SLURM_PARTITION"):
        env.pop(key, None)
    for key, value in extra.items():
        if value is not None:
            env[key] = value
    return env


def _snakemake_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "snakemake"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]


def _run_snakemake(
    args: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float
) -> tuple[int, str]:
    """Run snakemake, failing fast (naming the reason) when one of its jobs can never start."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = _snakemake_cmd() + args
    out_path = log.with_suffix(".running")
    start, stuck = time.monotonic(), None
    with open(out_path, "w") as out_fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out_fh, stderr=subprocess.STDOUT)
        watch = StuckJobWatch()
        while True:
            try:
                rc = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            stuck = watch.check(_job_ids(out_path.read_text(errors="replace")))
            if stuck is not None or time.monotonic() - start > timeout:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                rc = -1
                break
    out = out_path.read_text(errors="replace")
    out_path.unlink()
    if stuck is None and rc == -1:
        out += f"\n[test] snakemake timed out after {timeout} s\n"
    if stuck is not None:
        ids = _job_ids(out)
        if ids:
            _cmd(["scancel", *ids])
            _wait_left_queue(ids)
        out += f"\n[test] {stuck}\n"
    log.write_text(f"$ {' '.join(cmd)}\n(cwd {cwd})\n{out}")
    if stuck is not None:
        pytest.fail(f"{stuck}\n(snakemake log: {log})", pytrace=False)
    return rc, out


def _wait_left_queue(ids: list[str], timeout_s: float = 30.0) -> None:
    """Wait until scancel has taken the jobs out of the pending queue (scancel returns before)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        res = _cmd(["squeue", "-h", "-t", "PD", "-o", "%i"])
        if res is not None and res.returncode == 0 and not set(ids) & set(res.stdout.split()):
            return
        time.sleep(0.5)


class StuckJobWatch:
    """Remembers since when each job has been pending for a reason that cannot clear."""

    def __init__(self, grace_s: float = STUCK_GRACE_S) -> None:
        self.grace_s = grace_s
        self.since: dict[str, float] = {}

    def check(self, ids: list[str]) -> str | None:
        """A readable message (reason and node) once a job has been stuck for grace_s, else None."""
        if not ids:
            return None
        res = _cmd(["squeue", "-h", "-t", "PD", "-j", ",".join(ids), "-o", "%i|%r"])
        pending = {}
        if res is not None and res.returncode == 0:
            for line in res.stdout.splitlines():
                jid, _, reason = line.strip().partition("|")
                if reason.split(",")[0] in STUCK_REASONS:
                    pending[jid] = reason
        now = time.monotonic()
        self.since = {j: self.since.get(j, now) for j in pending}
        for jid, first in self.since.items():
            if now - first >= self.grace_s:
                node = _cmd(["scontrol", "show", "node"])
                return (
                    f"SLURM job {jid} is pending for reason {pending[jid]!r}, which cannot clear "
                    f"on this cluster (it asks for more than a node or partition offers); "
                    f"stopped after {now - first:.0f} s.\n"
                    f"scontrol show node:\n{node.stdout if node is not None else '(failed)'}"
                )
        return None


def _job_ids(output: str) -> list[str]:
    return list(dict.fromkeys(JOBID_RE.findall(output)))


def _record_job_ids(name: str, ids: list[str]) -> None:
    line = f"{name}: {' '.join(ids)}"
    print(f"SLURM job ids {line}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "slurm_job_ids.txt", "a") as fh:
        fh.write(line + "\n")


def _squeue_info(ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """job id -> (partition, account, state); finished jobs stay visible for MinJobAge."""
    res = _cmd(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%P|%a|%T"])
    info = {}
    if res is not None and res.returncode == 0:
        for line in res.stdout.splitlines():
            jid, part, acct, state = line.strip().split("|")
            info[jid] = (part, acct, state)
    return info


def _has_partition(name: str) -> bool:
    res = _cmd(["sinfo", "-h", "-p", name, "-o", "%P"])
    return res is not None and res.returncode == 0 and bool(res.stdout.strip())


def _accounting_disabled() -> bool:
    res = _cmd(["scontrol", "show", "config"])
    return res is not None and "accounting_storage/none" in res.stdout


TOY_SNAKEFILE = textwrap.dedent(
    """
    import os, sys

    rule all:
        input: "out/c.txt"

    rule a:
        output: "out/a.txt"
        resources: mem_mb=300, runtime=5, gpu=0
        shell: "echo a $SLURM_JOB_ID $(command -v python) > {output}"

    rule b:
        input: "out/a.txt"
        output: "out/b.txt"
        threads: 2
        resources: mem_mb=300, runtime=5
        shell: "echo b $SLURM_JOB_ID $SLURM_CPUS_PER_TASK > {output}"

    rule c:
        input: "out/a.txt", "out/b.txt"
        output: "out/c.txt"
        resources: mem_mb=300, runtime=5
        run:
            with open(output[0], "w") as fh:
                fh.write(f"c {os.environ.get('SLURM_JOB_ID')} {sys.prefix}\\n")
    """
)


def test_toy_workflow_under_slurm(slurm_cluster, tmp_path):
    home = tmp_path / "home"
    _install_profile(home)
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "Snakefile").write_text(TOY_SNAKEFILE)

    partition = "batch" if _has_partition("batch") else None
    account = "mmsurv-ci" if _accounting_disabled() else None
    env = _snakemake_env(home, SLURM_PARTITION=partition, SLURM_ACCOUNT=account)
    rc, out = _run_snakemake(
        ["--profile", "slurm", "--cores", "2", "--verbose", *STATUS_CHECK_ARGS],
        cwd=wf,
        env=env,
        log=ARTIFACTS / "slurm_toy.log",
        timeout=TOY_TIMEOUT_S,
    )
    ids = _job_ids(out)
    _record_job_ids("toy", ids)
    assert rc == 0, out[-6000:]
    assert "Using profile slurm" in out or "Using profiles slurm" in out, out[:2000]
    assert len(ids) == 3, f"expected 3 SLURM jobs, got {ids}"

    # Each rule ran inside one of those SLURM jobs.
    a = (wf / "out/a.txt").read_text().split()
    b = (wf / "out/b.txt").read_text().split()
    c = (wf / "out/c.txt").read_text().split()
    assert {a[1], b[1], c[1]} == set(ids)
    # Jobs inherit the submitting environment: same Python (virtualenv) as this test.
    assert Path(a[2]).parent == Path(sys.executable).parent, a
    assert os.path.realpath(c[2]) == os.path.realpath(sys.prefix), c
    assert b[2] == "2", f"threads: 2 should give 2 CPUs per task, got {b}"

    # gpu=0 must not request GPUs (this node has none).
    sbatch_calls = [ln for ln in out.splitlines() if ln.startswith("sbatch call:")]
    assert len(sbatch_calls) == 3, sbatch_calls
    assert not any("--gpus" in ln for ln in sbatch_calls), sbatch_calls

    # Partition/account from the environment reached sbatch; all jobs completed.
    info = _squeue_info(ids)
    for jid in ids:
        if jid not in info:
            continue  # already purged by slurmctld (MinJobAge)
        part, acct, state = info[jid]
        assert state == "COMPLETED", (jid, info[jid])
        if partition:
            assert part == partition, (jid, info[jid])
        if account:
            assert acct == account, (jid, info[jid])


def _node_cpus() -> int:
    """CPUTot of this cluster's (single) node, from scontrol."""
    res = _cmd(["scontrol", "show", "node"])
    assert res is not None and res.returncode == 0, res
    match = re.search(r"CPUTot=(\d+)", res.stdout)
    assert match, res.stdout
    return int(match.group(1))


def test_start_script_ignores_omp_num_threads(slurm_cluster):
    """An exported OMP_NUM_THREADS=1 must not shrink the node to 1 CPU (GNU nproc honours it)."""
    if os.geteuid() != 0:
        _fail_or_skip("scripts/slurm/start.sh needs root")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_THREAD_LIMIT": "1"}
    res = subprocess.run(
        ["bash", str(START_SCRIPT)], env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert _node_cpus() == len(os.sched_getaffinity(0))


def test_unsatisfiable_job_fails_fast_naming_the_reason(slurm_cluster, tmp_path):
    """A job asking for more CPUs than the node has stops the run within 60 s, saying why."""
    home = tmp_path / "home"
    _install_profile(home)
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "Snakefile").write_text(
        "rule all:\n"
        '    output: "out/big.txt"\n'
        f"    resources: mem_mb=100, runtime=5, cpus_per_task={_node_cpus() + 1}\n"
        '    shell: "echo big > {output}"\n'
    )
    t0 = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="PartitionConfig|ReqNodeNotAvail") as err:
        _run_snakemake(
            ["--profile", "slurm", "--cores", "2", *STATUS_CHECK_ARGS],
            cwd=wf,
            env=_snakemake_env(home),
            log=ARTIFACTS / "slurm_unsatisfiable.log",
            timeout=TOY_TIMEOUT_S,
        )
    assert time.monotonic() - t0 < 60, f"took {time.monotonic() - t0:.0f} s"
    assert "CPUTot=" in str(err.value)  # the node's description comes with the reason
    # Its own job was cancelled (other pending jobs, e.g. of an interrupted earlier run, are not
    # this run's business).
    ids = _job_ids((ARTIFACTS / "slurm_unsatisfiable.log").read_text())
    assert ids, "no SLURM job id in the snakemake log"
    res = _cmd(["squeue", "-h", "-t", "PD", "-o", "%i"])
    assert res is not None and res.returncode == 0, res
    assert not set(ids) & set(res.stdout.split()), f"stuck job(s) {ids} not cancelled"


def _numeric_cells(path: Path) -> list[float]:
    import csv

    values = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            for cell in row.values():
                if cell is None:
                    continue
                try:
                    values.append(float(cell))
                except ValueError:
                    continue
    return values


@pytest.mark.slow
def test_workflow_under_slurm(slurm_cluster, tmp_path):
    if not SLURM_CONFIG.is_file():
        _fail_or_skip(f"missing {SLURM_CONFIG.relative_to(REPO)}")
    home = tmp_path / "home"
    _install_profile(home)
    # A fresh run: stale results must not satisfy the checks.
    shutil.rmtree(SLURM_RESULTS, ignore_errors=True)

    env = _snakemake_env(home)
    rc, out = _run_snakemake(
        [
            "--profile",
            "slurm",
            "--cores",
            "2",
            "--configfile",
            str(SLURM_CONFIG.relative_to(REPO)),
            *STATUS_CHECK_ARGS,
        ],
        cwd=REPO,
        env=env,
        log=ARTIFACTS / "slurm_workflow.log",
        timeout=WORKFLOW_TIMEOUT_S,
    )
    ids = _job_ids(out)
    _record_job_ids("workflow", ids)
    assert rc == 0, out[-8000:]
    assert len(ids) >= 3, f"expected >= 3 SLURM jobs, got {ids}"

    assert SLURM_TABLE.is_file(), f"missing {SLURM_TABLE}"
    values = _numeric_cells(SLURM_TABLE)
    assert values, f"no numeric values in {SLURM_TABLE}"
    assert all(math.isfinite(v) for v in values), SLURM_TABLE.read_text()
