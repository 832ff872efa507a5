"""The architecture's import contracts (pyproject.toml, `[tool.importlinter]`) hold, so that
`pytest` alone proves them as `make lint` does, and no module imports itself back.

Every import counts: also one inside a function and one under `if TYPE_CHECKING:`. The known
cycles are the imports that the `no-cycles` contract ignores: one list, for both checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    [found] = [c for c in contracts if c.get("id") == contract_id]
    return found


def known_cycle_imports() -> list[tuple[str, str]]:
    pairs = []
    for expression in contract("no-cycles").get("ignore_imports", []):
        importer, imported = (part.strip() for part in expression.split("->"))
        assert "*" not in expression, f"name the import exactly: {expression}"
        pairs.append((importer, imported))
    return pairs


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly
    connected components, without recursion), each with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.find_modules_directly_imported_by(succ)))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return sorted(groups)


def test_the_cycle_finder_finds_a_cycle_through_a_package():
    graph = grimp.ImportGraph()
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.c", imported="p.d")
    graph.add_import(importer="p.sub", imported="p.sub.x")  # a package and its own module
    graph.add_import(importer="p.sub.x", imported="p.sub")
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"], ["p.sub", "p.sub.x"]]


def test_no_module_imports_itself_back():
    """Also what the `no-cycles` contract cannot see: a package's __init__ and a module of
    its own importing each other."""
    import overseer

    assert Path(overseer.__file__).resolve().parent == ROOT / "src" / "overseer"
    graph = grimp.build_graph("overseer", cache_dir=None)
    for importer, imported in known_cycle_imports():
        graph.remove_import(importer=importer, imported=imported)
    assert import_cycles(graph) == []


def test_the_import_contracts_hold():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
