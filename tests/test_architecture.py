"""The package mirrors the DAG: no import cycles, one rule file -> one subpackage, small units."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "workflow" / "mmsurv"
RULES = ROOT / "workflow" / "rules"
# Shared leaves every stage may use; they import no stage.
SHARED = {
    "mmsurv",
    "mmsurv.io",
    "mmsurv.genes",
    "mmsurv.model_catalog",
    "mmsurv.config",
    "mmsurv.tcga_projects",
    "mmsurv.scheduler",
}
MAX_MODULE_LINES = 650
MAX_FUNCTION_LINES = 100
# A function may be longer when its docstring says why, with this phrase.
LONG_OK = "Long because"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The mmsurv module an import names (a submodule if it is one, else its package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> set[str]:
    """Every mmsurv module imported anywhere in the file (module level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            if n.split(".")[0] == "mmsurv" and (mod := _resolve(n)) is not None:
                out.add(mod)
    return out


def _graph() -> dict[str, set[str]]:
    return {m: _imports(p) - {m} for m, p in MODULES.items()}


def _unit(module: str) -> str:
    """The stage subpackage (or shared leaf module) a module belongs to."""
    return ".".join(module.split(".")[:2])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path of nodes, or None (iterative DFS)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
                path.append(nxt)
    return None


def test_find_cycle_finds_one() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_stage_subpackages() -> None:
    units: dict[str, set[str]] = {}
    for mod, deps in _graph().items():
        units.setdefault(_unit(mod), set()).update(_unit(d) for d in deps if _unit(d) != _unit(mod))
    cycle = _find_cycle(units)
    assert cycle is None, "cycle between subpackages: " + " -> ".join(cycle or [])


def test_shared_modules_import_no_stage() -> None:
    graph = _graph()
    for mod in SHARED & set(graph):
        assert graph[mod] <= SHARED, f"{mod} imports a stage: {sorted(graph[mod] - SHARED)}"


def _rule_scripts(smk: Path) -> list[Path]:
    return [
        (smk.parent / m).resolve()
        for m in re.findall(r'^\s+"(\.\./\.\./scripts/[^"]+\.py)"', smk.read_text(), flags=re.M)
    ]


@pytest.mark.parametrize("smk", sorted(RULES.glob("*.smk")), ids=lambda p: p.name)
def test_rule_scripts_call_their_own_subpackage(smk: Path) -> None:
    """A rule file's scripts import stage code only from the subpackage of the same name."""
    stage = f"mmsurv.{smk.stem}"
    for script in _rule_scripts(smk):
        assert (PKG / smk.stem / "__init__.py").is_file(), f"{smk.name}: no {stage} subpackage"
        for mod in _imports(script):
            assert mod in SHARED or mod == stage, (
                f"{script.relative_to(ROOT)} (rule file {smk.name}) imports {mod}; "
                f"its stage code belongs in {stage}"
            )


def test_every_script_is_used_by_a_rule() -> None:
    used = {p for smk in RULES.glob("*.smk") for p in _rule_scripts(smk)}
    scripts = set((ROOT / "scripts").glob("*.py"))
    assert scripts <= used, f"scripts no rule runs: {sorted(p.name for p in scripts - used)}"


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for mod, path in MODULES.items():
        text = path.read_text()
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            too_long.append(f"module {mod}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and LONG_OK not in (ast.get_docstring(node) or ""):
                    too_long.append(f"function {mod}.{node.name}: {n} lines")
    assert not too_long, "split these (or say why in the docstring): " + "; ".join(too_long)
