"""Compiled Python kept between test runs, found by what a source file says, not where it is.

Each run of a target's tests happens in a new worktree, at a new path, freshly checked out, and
writes no compiled file (PYTHONDONTWRITEBYTECODE): every run compiled every module and test
file of the target again (boltons: 3.2 s a run instead of 2.45 s; bench/cycle_overhead.py). Each
target has here a store of compiled files named by the SHA-256 of the source they were compiled
from and the interpreter's tag: `<sha>.cpython-311.pyc`, or `<sha>.cpython-311-pytest-8.3.4.pyc`
for a test file as pytest's assertion rewriting compiled it.

Before a run in a tree, each Python file of the tree whose content is in the store gets its
compiled file where the interpreter and pytest look (`__pycache__` beside it), the header's
time set to the source's own. A run of code already accepted (a baseline: a commit of the
target's branch; `learn`) may write compiled files, as Python does by default, and what it wrote
for the tree is then added to the store. A candidate's run writes none (as before): its tests
run code a model wrote, and nothing it compiled is ever handed to another run. After every run,
the compiled files that were not in the tree before it are removed from the tree.

Why a compiled file from the store is never stale: the interpreter (and pytest) loads one only
when its header matches the source's time and size at import, and that header is written from
the source as it is just before the run, after its bytes were found in the store by SHA-256.
Edits between two runs in one tree (a repair round) cannot meet an old compiled file: what a run
was given is taken away when it ends. Anything that goes wrong here costs speed, never a run:
the tests then compile what they need, as they did before.

The target's environment (its venv, site-packages) keeps its own compiled files, read as
always; PYTHONPYCACHEPREFIX is not used, as it would make every run compile the whole of pytest
and the target's dependencies again into a directory of its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import marshal
import os
import tempfile
import types
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

log = logging.getLogger(__name__)

# The store's size, beyond which the least recently used compiled files go (to 3/4 of it).
STORE_LIMIT_BYTES = 256 * 2**20
# A source file larger than this is not looked at (generated code, data in a .py file).
SOURCE_LIMIT_BYTES = 2 * 2**20
# Directories of a tree that hold no source of the target's own.
_NOT_SOURCE = {"__pycache__", "node_modules"}
# A compiled file's header: magic (4 bytes), flags (4: 0 means checked by time and size),
# the source's modification time and size (4 each, little-endian, modulo 2**32).
_HEADER = 16
_PYTEST = "-pytest-"  # in the name of a compiled file pytest's assertion rewriting wrote
# A rewritten test's code is relocated here (marshal): only this interpreter's can be.
MAGIC = importlib.util.MAGIC_NUMBER


@dataclass
class Reuse:
    """What one test run got from the store, for its report."""

    files: int = 0  # the tree's Python files
    reused: int = 0  # of them, those whose compiled form came from the store
    learned: int = 0  # compiled files the run added to the store
    # SHA-256 and (mtime_ns, size) of each file before the run, by path in the tree.
    sources: dict[Path, tuple[str, tuple[int, int]]] = field(default_factory=dict, repr=False)
    # Compiled files the tree had before the run (committed ones): never touched.
    present: set[Path] = field(default_factory=set, repr=False)


class BytecodeCache:
    """One target's compiled files (its directory in the state directory); `learn`: the run
    is of accepted code, and what it compiles is kept."""

    def __init__(self, root: Path, *, learn: bool = False) -> None:
        self.root = root
        self.learn = learn

    def learning(self) -> BytecodeCache:
        return BytecodeCache(self.root, learn=True)

    @contextmanager
    def around(self, tree: Path, env: dict[str, str]) -> Iterator[Reuse]:
        """Lay out the tree's compiled files and set `env` for the run in the body; afterwards
        keep what a learning run compiled, and take out of the tree what was not there."""
        reuse = Reuse()
        tree = Path(os.path.realpath(tree))  # as pytest names the test files it imports
        try:
            self._lay_out(tree, reuse)
        except (OSError, ValueError, EOFError):
            log.warning("could not lay out compiled files in %s", tree, exc_info=True)
        env.pop("PYTHONPYCACHEPREFIX", None)  # ours are beside the sources (see above)
        if self.learn:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            yield reuse
        finally:
            try:
                if self.learn:
                    self._keep(tree, reuse)
                    self._bound()
            except OSError:
                log.warning("could not keep the compiled files of %s", tree, exc_info=True)
            finally:
                _clear(tree, reuse.present)

    def _index(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return found
        for name in names:
            sha, _, tail = name.partition(".")
            if tail.endswith(".pyc"):
                found.setdefault(sha, []).append(tail)
        return found

    def _lay_out(self, tree: Path, reuse: Reuse) -> None:
        reuse.present = set(_compiled_files(tree))
        index = self._index()
        for rel in _python_files(tree):
            source = tree / rel
            stat = source.lstat()
            reuse.files += 1
            if not S_ISREG(stat.st_mode) or stat.st_size > SOURCE_LIMIT_BYTES:
                # A link (to a pipe, to /dev/zero: a change may add one) is never read here,
                # nor a generated giant: the run compiles those itself.
                continue
            data = source.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            reuse.sources[rel] = (sha, (stat.st_mtime_ns, stat.st_size))
            placed = False
            for tail in index.get(sha, ()):
                target = tree / rel.parent / "__pycache__" / f"{rel.stem}.{tail}"
                if target in reuse.present:
                    continue  # committed with the source: left as it is
                stored = self.root / f"{sha}.{tail}"
                try:
                    compiled = stored.read_bytes()
                except FileNotFoundError:  # gone since the index was read (bounded away)
                    continue
                header = _header_for(compiled, stat)
                body = _body_for(compiled, tail, str(source))
                if header is None or body is None:
                    continue
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(header + body)
                placed = True
                os.utime(stored)  # recently used: the bound keeps it longer
            reuse.reused += placed

    def _keep(self, tree: Path, reuse: Reuse) -> None:
        index = self._index()
        self.root.mkdir(parents=True, exist_ok=True)
        for path in _compiled_files(tree):
            rel = path.relative_to(tree)
            stem, _, tail = rel.name.partition(".")
            source = rel.parent.parent / f"{stem}.py"
            known = reuse.sources.get(source)
            if path in reuse.present or known is None:
                continue  # committed, or not compiled from a source of the tree as it was
            sha, before = known
            if tail in index.get(sha, ()):
                continue
            stat = (tree / source).stat()
            if (stat.st_mtime_ns, stat.st_size) != before:
                continue  # the source changed during the run: no telling what was compiled
            compiled = path.read_bytes()
            if _header_for(compiled, stat) != compiled[:_HEADER]:
                continue  # not compiled from the source as it is
            if _PYTEST in tail and compiled[:4] != MAGIC:
                continue  # another interpreter's: its code cannot be relocated here
            _write_atomically(self.root / f"{sha}.{tail}", compiled)
            index.setdefault(sha, []).append(tail)
            reuse.learned += 1

    def _bound(self) -> None:
        entries = []
        with os.scandir(self.root) as scan:
            for entry in scan:
                stat = entry.stat()
                entries.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        if total <= STORE_LIMIT_BYTES:
            return
        for _, size, path in sorted(entries):
            _unlink(path)
            total -= size
            if total <= STORE_LIMIT_BYTES * 3 // 4:
                break


def _clear(tree: Path, present: set[Path]) -> None:
    """Remove the compiled files in the tree that were not there before the run, and the
    `__pycache__` directories left empty."""
    for path in _compiled_files(tree):
        if path not in present:
            _unlink(str(path))
    for directory, dirs, _names in os.walk(tree):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
        if "__pycache__" in dirs:
            dirs.remove("__pycache__")
            with suppress(OSError):  # not empty: a committed compiled file is there
                os.rmdir(os.path.join(directory, "__pycache__"))


def _unlink(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _python_files(tree: Path) -> Iterator[Path]:
    """The tree's Python sources, relative to it."""
    for directory, dirs, names in os.walk(tree):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _NOT_SOURCE]
        rel_dir = Path(directory).relative_to(tree)
        for name in names:
            if name.endswith(".py") and "." not in name[:-3]:
                yield rel_dir / name


def _compiled_files(tree: Path) -> Iterator[Path]:
    """The compiled files in the tree's `__pycache__` directories (absolute paths)."""
    for directory, dirs, names in os.walk(tree):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
        if os.path.basename(directory) == "__pycache__":
            yield from (Path(directory) / n for n in names if n.endswith(".pyc"))


def _header_for(compiled: bytes, stat: os.stat_result) -> bytes | None:
    """The compiled file's header with the source's time, if it is one checked by time and
    size and the size is the source's; None otherwise."""
    if len(compiled) <= _HEADER or compiled[4:8] != b"\0\0\0\0":
        return None
    if int.from_bytes(compiled[12:16], "little") != stat.st_size & 0xFFFFFFFF:
        return None
    mtime = (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
    return compiled[:8] + mtime + compiled[12:16]


def _body_for(compiled: bytes, tail: str, filename: str) -> bytes | None:
    """The compiled file's code for the source at `filename`, or None when it is no code
    (the interpreter would fail the import, not compile the source, on a broken one)."""
    body = compiled[_HEADER:]
    if compiled[:4] != MAGIC:
        # Another interpreter's (the target's venv): its code cannot be read here, and pytest's
        # cannot be relocated; the interpreter's own is written whole (see _write_atomically).
        return None if _PYTEST in tail else body
    try:
        code = marshal.loads(body)
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(code, types.CodeType):
        return None
    if _PYTEST in tail:
        # pytest does not correct the file name a rewritten test's code carries (the
        # interpreter does for a module's): it must name this tree's file.
        return marshal.dumps(_renamed(code, filename))
    return body


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(
        _renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=".new-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(scratch, path)
    except BaseException:
        _unlink(scratch)
        raise
