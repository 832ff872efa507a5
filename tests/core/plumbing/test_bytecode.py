"""The bytecode cache (core/plumbing/bytecode.py): a new worktree's test run reuses what a run of
accepted code compiled, found by content; never a stale or a candidate's compiled file.

Real git worktrees at new paths, the real test runner (pytest in a subprocess), a real store."""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import threading
from pathlib import Path

import pytest
from tests.support.helpers import git, init_repo

from overseer.config import TargetConfig
from overseer.core.plumbing import bytecode
from overseer.core.plumbing.bytecode import BytecodeCache
from overseer.core.plumbing.testrun import TestReport, run_tests

# Two values of the same length: a file edited from one to the other keeps its size.
SOURCE = 'VALUE = "from the source"\n'
EDITED = 'VALUE = "the edited one!"\n'
assert len(EDITED) == len(SOURCE)
FILES = {
    "pkg/__init__.py": "",
    "pkg/value.py": SOURCE,
    "tests/test_value.py": (
        "import os\n"
        "from pkg.value import VALUE\n\n\n"
        "def test_value():\n"
        "    assert VALUE == os.environ['EXPECTED'], VALUE\n"
    ),
}


def tree(repo: Path, where: Path) -> Path:
    """A new worktree of HEAD at `where`: a fresh checkout at a new path, as each cycle's."""
    git(repo, "worktree", "add", "--quiet", "--detach", str(where), "HEAD")
    return where


def run(repo: Path, at: Path, cache: BytecodeCache | None, expected: str) -> TestReport:
    target = TargetConfig(path=repo, env={"EXPECTED": expected}, flaky_reruns=0)
    return run_tests(target, repo, at, bytecode=cache)


def stored(cache: BytecodeCache) -> set[str]:
    return set(os.listdir(cache.root)) if cache.root.exists() else set()


@pytest.fixture
def valued(tmp_path: Path) -> Path:
    """A repository whose test checks the value its module has, against EXPECTED."""
    return init_repo(tmp_path / "repo", FILES)


def test_a_new_tree_reuses_what_a_baseline_compiled(valued: Path, tmp_path: Path) -> None:
    cache = BytecodeCache(tmp_path / "cache")
    first = run(valued, tree(valued, tmp_path / "a"), cache.learning(), "from the source")
    assert first.ok, first.output_tail
    assert first.compiled == {"files": 3, "reused": 0, "learned": first.compiled["learned"]}
    kept = stored(cache)
    # The package's two modules, and the test file as pytest's assertion rewriting compiled it.
    tag = sys.implementation.cache_tag
    assert sum(name.endswith(f".{tag}.pyc") for name in kept) == 2, kept
    assert sum(f".{tag}-pytest-" in name for name in kept) == 1, kept
    assert first.compiled["learned"] == len(kept)

    second = run(valued, tree(valued, tmp_path / "b"), cache, "from the source")
    assert second.ok, second.output_tail
    assert second.compiled == {"files": 3, "reused": 3, "learned": 0}
    # Nothing of it is left in either worktree.
    for where in (tmp_path / "a", tmp_path / "b"):
        assert not list(where.rglob("__pycache__"))


def test_what_is_laid_out_is_what_runs(valued: Path, tmp_path: Path) -> None:
    """A stored compiled file is really the one imported, a module's by the interpreter and a
    test file's by pytest: entries that say something else than their source (which a correct
    store never holds) are what the run sees."""
    cache = BytecodeCache(tmp_path / "cache")
    run(valued, tree(valued, tmp_path / "a"), cache.learning(), "from the source")
    forged = {
        hashlib.sha256(SOURCE.encode()).hexdigest(): 'VALUE = "from the store!"\n',
        hashlib.sha256(FILES["tests/test_value.py"].encode()).hexdigest(): (
            "from pkg.value import VALUE\n\ndef test_forged():\n    assert VALUE == 'from the store!'\n"
        ),
    }
    for name in stored(cache):
        text = forged.get(name.partition(".")[0])
        if text is not None:
            entry = cache.root / name
            entry.write_bytes(entry.read_bytes()[:16] + marshal.dumps(compile(text, "x", "exec")))
    report = run(valued, tree(valued, tmp_path / "b"), cache, "not read by the forged test")
    assert report.ok, report.output_tail
    assert report.ids("passed") == {"tests.test_value::test_forged"}


def test_an_edit_of_the_same_size_in_the_same_second_is_never_met_by_old_bytecode(
    valued: Path, tmp_path: Path
) -> None:
    """A repair round edits the candidate's tree between two runs, maybe within the second
    and to the same size: the interpreter's own check (time and size) cannot tell, the
    content's hash does. And a candidate's run adds nothing to the store."""
    cache = BytecodeCache(tmp_path / "cache")
    run(valued, tree(valued, tmp_path / "a"), cache.learning(), "from the source")
    before = stored(cache)
    candidate = tree(valued, tmp_path / "b")
    assert run(valued, candidate, cache, "from the source").ok
    source = candidate / "pkg" / "value.py"
    stat = source.stat()
    source.write_text(EDITED)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same second, the same size
    report = run(valued, candidate, cache, "the edited one!")
    assert report.ok, report.output_tail
    assert report.compiled == {"files": 3, "reused": 2, "learned": 0}
    assert stored(cache) == before


def test_a_rewritten_test_names_its_own_tree(valued: Path, tmp_path: Path) -> None:
    """pytest does not correct the file name in a rewritten test's code: a failure in the
    second tree must point at the second tree's file, not the first (long gone)."""
    cache = BytecodeCache(tmp_path / "cache")
    first = tree(valued, tmp_path / "first")
    run(valued, first, cache.learning(), "from the source")
    git(valued, "worktree", "remove", "--force", str(first))
    second = tree(valued, tmp_path / "second")
    report = run(valued, second, cache, "something else")
    assert not report.ok
    assert report.compiled is not None and report.compiled["reused"] == 3
    assert "tests/test_value.py:6: AssertionError" in report.output_tail, report.output_tail
    assert str(first) not in report.output_tail


def test_the_users_word_and_the_switch_are_kept(valued: Path, tmp_path: Path) -> None:
    cache = BytecodeCache(tmp_path / "cache")
    target = TargetConfig(
        path=valued, env={"EXPECTED": "from the source", "PYTHONDONTWRITEBYTECODE": "1"}
    )
    report = run_tests(target, valued, tree(valued, tmp_path / "a"), bytecode=cache.learning())
    assert report.ok and report.compiled is None and not cache.root.exists()
    report = run(valued, tree(valued, tmp_path / "b"), None, "from the source")
    assert report.ok and report.compiled is None


def test_the_store_is_bounded_least_recently_used_first(
    valued: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = BytecodeCache(tmp_path / "cache")
    old = cache.root / f"{'0' * 64}.cpython-311.pyc"
    cache.root.mkdir(parents=True)
    old.write_bytes(b"x" * 4000)
    os.utime(old, (1, 1))
    monkeypatch.setattr(bytecode, "STORE_LIMIT_BYTES", 4000)
    run(valued, tree(valued, tmp_path / "a"), cache.learning(), "from the source")
    kept = stored(cache)
    assert old.name not in kept and kept
    assert sum((cache.root / n).stat().st_size for n in kept) <= 4000 * 3 // 4 or len(kept) == 1


def test_a_broken_store_costs_speed_not_the_run(valued: Path, tmp_path: Path) -> None:
    cache = BytecodeCache(tmp_path / "cache")
    run(valued, tree(valued, tmp_path / "a"), cache.learning(), "from the source")
    for name in stored(cache):
        (cache.root / name).write_bytes(b"garbage")
    report = run(valued, tree(valued, tmp_path / "b"), cache, "from the source")
    assert report.ok, report.output_tail
    assert report.compiled == {"files": 3, "reused": 0, "learned": 0}


def test_a_committed_compiled_file_is_left_alone_and_the_tree_stays_clean(
    tmp_path: Path,
) -> None:
    """The tree is the candidate's: a compiled file its repository tracks stays as it is, and
    nothing the runs wrote or were given shows up as a change."""
    committed = {**FILES, "pkg/__pycache__/kept.cpython-311.pyc": "not really compiled\n"}
    repo = init_repo(tmp_path / "repo", committed)
    cache = BytecodeCache(tmp_path / "cache")
    for where, use in ((tmp_path / "a", cache.learning()), (tmp_path / "b", cache)):
        assert run(repo, tree(repo, where), use, "from the source").ok
        assert (where / "pkg/__pycache__/kept.cpython-311.pyc").read_text() == (
            "not really compiled\n"
        )
        assert git(where, "status", "--porcelain", "--untracked-files=all") == ""


def test_a_pipe_or_a_link_among_the_sources_is_never_read(valued: Path, tmp_path: Path) -> None:
    """A change may leave a named pipe, or a link (to /dev/zero, to a file outside), where a
    module would be: laying out must not block on it, read without end or read outside the
    tree (the run itself meets it only if the tests import it)."""
    cache = BytecodeCache(tmp_path / "cache")
    where = tree(valued, tmp_path / "a")
    os.mkfifo(where / "pkg" / "pipe.py")
    outside = tmp_path / "outside.py"
    outside.write_text(SOURCE)
    (where / "pkg" / "linked.py").symlink_to(outside)
    laid: list[object] = []

    def lay_out() -> None:
        with cache.learning().around(where, {}) as reuse:
            laid.append(reuse)

    worker = threading.Thread(target=lay_out, daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():  # unblock it before failing, so that nothing is left hanging
        with open(where / "pkg" / "pipe.py", "wb"):
            pass
        worker.join(5)
        pytest.fail("laying out compiled files blocked on a named pipe")
    [reuse] = laid
    assert reuse.files == 5 and len(reuse.sources) == 3


def test_a_damaged_entry_with_a_good_header_is_not_laid_out(valued: Path, tmp_path: Path) -> None:
    """The interpreter fails an import on a compiled file whose header is right and whose code
    is not (it does not fall back to the source): such an entry is never handed to a run."""
    cache = BytecodeCache(tmp_path / "cache")
    run(valued, tree(valued, tmp_path / "a"), cache.learning(), "from the source")
    for name in stored(cache):
        entry = cache.root / name
        entry.write_bytes(entry.read_bytes()[:40])
    report = run(valued, tree(valued, tmp_path / "b"), cache, "from the source")
    assert report.ok, report.output_tail
    assert report.compiled == {"files": 3, "reused": 0, "learned": 0}
