"""The test suite's own shape: test modules share code through tests/support and fixtures
through conftest.py files, never by importing each other; their folders mirror the source;
and each fixture is defined once."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SOURCE = TESTS.parent / "src" / "overseer"
# Folders that mirror nothing in the source, on purpose.
OWN_FOLDERS = {
    "support": "what the tests share",
    "faults": "the fault drills, a category of their own",
    "__snapshots__": "the stored pictures of the snapshot tests",
}
# The checks of the whole project, at the top; every other test lives where its code does.
TOP = {
    "test_docs.py",
    "test_import_contracts.py",
    "test_layering.py",
    "test_lint.py",
    "test_suite_shape.py",
}


def python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def all_test_modules() -> list[Path]:
    return [p for p in python_files() if p.name.startswith("test_")]


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module name an import statement (or importlib/__import__ with a literal) names."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((node.lineno, base))
            if node.level:  # `from . import test_x`: the names may be modules
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_no_module_of_the_suite_imports_a_test_module():
    stems = {p.stem for p in all_test_modules()}
    offenders = []
    for path in python_files():
        for line, name in imported_names(ast.parse(path.read_text(), str(path))):
            parts = [part for part in name.split(".") if part]
            if any(part in stems or part.startswith("test_") for part in parts):
                offenders.append(f"{path.relative_to(TESTS)}:{line}: imports {name}")
    assert offenders == [], (
        "move what is shared into tests/support (or a fixture into a conftest.py):\n"
        + "\n".join(offenders)
    )


def test_the_check_sees_every_way_of_importing_a_test_module():
    sources = [
        "from test_sandbox import wait_gone",
        "import test_hang",
        "from core.evaluate.test_hang import UTIL",
        "from . import test_tui",
        "from .test_tui import SIZE",
        "importlib.import_module('test_guards')",
        "__import__('test_guards')",
    ]
    for source in sources:
        names = [name for _, name in imported_names(ast.parse(source))]
        assert any("test_" in name for name in names), source
    assert [name for _, name in imported_names(ast.parse("from support.tui import SIZE"))] == [
        "support.tui"
    ]


def test_the_folders_mirror_the_source():
    strays = []
    for path in all_test_modules():
        folder = path.parent.relative_to(TESTS)
        if folder == Path("."):
            if path.name not in TOP:
                strays.append(path.name)
            continue
        if folder.parts[0] in OWN_FOLDERS:
            continue
        mirrored = SOURCE / folder
        if not (mirrored.is_dir() or mirrored.with_suffix(".py").is_file()):
            strays.append(str(path.relative_to(TESTS)))
    assert strays == [], (
        f"move each into the folder of what it tests (tests/core/..., tests/daemon/, ...): {strays}"
    )
    assert not [p for p in (TESTS / "support").glob("test_*.py")], "support holds no tests"


def test_each_fixture_is_defined_once():
    defined: dict[str, list[str]] = {}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                "fixture" in ast.unparse(d) for d in node.decorator_list
            ):
                defined.setdefault(node.name, []).append(str(path.relative_to(TESTS)))
    copies = {name: where for name, where in defined.items() if len(where) > 1}
    assert copies == {}, f"fixtures defined more than once: {copies}"
    assert {"sockdir", "daemon_options", "repo", "harness"} <= set(defined)


# -- the sample repository, built once per session -------------------------------------------


def test_a_copy_of_the_sample_is_the_same_repository(repo, sample):
    from support.helpers import SAMPLE, git

    assert git(repo, "rev-parse", "HEAD") == sample.commit
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(repo, "worktree", "list", "--porcelain").startswith(f"worktree {repo}\n")
    for name, text in SAMPLE.items():
        assert (repo / name).read_text() == text


def test_a_warmed_baseline_is_taken_from_the_cache_and_the_cycle_still_runs_its_tests(
    tmp_path, repo, sample
):
    """If the cache's key changes (the target's key, the commit, the command's), this fails,
    rather than the warmed tests silently running their baselines again."""
    from support.helpers import Harness

    sample.warm(tmp_path / "state", repo)
    h = Harness(tmp_path, repo, ruff_select=["F"])
    try:
        result = h.cycle(dry_run=True)
    finally:
        h.close()
    assert result.analysis.commit == sample.commit
    assert result.analysis.tests_cached and result.analysis.lint_cached
    assert result.analysis.tests.passed == 2
    [attempt] = result.attempts
    assert attempt["status"] == "dry_run" and attempt["tests_passed"] == 2  # the candidate's own


def test_the_longest_files_run_first_each_in_one_piece():
    from support.order import longest_files_first

    collected = ["a.py::x", "a.py::y", "b.py::x", "c.py::x", "c.py::y", "d.py::x", "e.py::x"]
    seconds = {
        "a.py::x": 1.0,
        "a.py::y": 1.5,
        "b.py::x": 0.5,
        "c.py::x": 3.0,  # c.py::y is new: it counts nothing yet
        "e.py::x": 0.5,  # as long as b.py: the collection's order between them
        "gone.py::x": 99.0,  # no longer collected
    }
    assert sorted(collected, key=longest_files_first(collected, seconds)) == [
        "d.py::x",  # never timed: first, it may be slow
        "c.py::x",
        "c.py::y",
        "a.py::x",
        "a.py::y",
        "b.py::x",
        "e.py::x",
    ]


def test_without_times_the_heavy_folders_run_first():
    from support.order import longest_files_first

    collected = [
        "tests/cli/a.py::x",
        "tests/daemon/d.py::x",
        "tests/faults/f.py::x",
        "tests/tui/t.py::x",
        "tests/x.py::y",
    ]
    assert sorted(collected, key=longest_files_first(collected, {})) == [
        "tests/faults/f.py::x",
        "tests/tui/t.py::x",
        "tests/daemon/d.py::x",
        "tests/cli/a.py::x",
        "tests/x.py::y",
    ]
