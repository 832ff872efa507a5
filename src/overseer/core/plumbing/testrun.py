"""Running a target's tests in one of our worktrees, and reading what they say.

The tests of a candidate must exercise the candidate's code. A target's own `.venv` usually has
the project installed in editable mode, which points at the user's checkout, not at our
worktree; putting the worktree (and its `src/`) first on PYTHONPATH makes imports resolve to
the worktree for flat and `src/` layouts alike, because PYTHONPATH comes before site-packages
and before the finders editable installs add.

Per-test results come from pytest through our plugin (`overseer_progress`, loaded by
PYTEST_ADDOPTS whatever the test command looks like), as pytest's JUnit XML report would give
them; a runner that is not pytest can write its own JUnit XML report to the path `junit_xml`
names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overseer.config import TargetConfig
from overseer.core.plumbing.bytecode import BytecodeCache, Reuse
from overseer.core.plumbing.confine import CONFINED, for_run
from overseer.core.plumbing.sandbox import CommandResult, run_command
from overseer.core.plumbing.secrets import redact, withheld
from overseer.core.plumbing.slots import TEST_SLOTS

PLUGIN_DIR = Path(__file__).parent / "pytest_plugin"
# pytest's exit status when it collected no tests: not a failure of the code under test.
PYTEST_NO_TESTS = 5
# pytest's exit statuses that mean the suite did not run (as opposed to 1: tests failed).
PYTEST_STOPPED = {
    2: "pytest was interrupted (exit status 2)",
    3: "pytest hit an internal error (exit status 3)",
    4: "pytest was called wrongly, a usage error (exit status 4)",
}
# What a shell says with these exit statuses.
SHELL_STATUS = {126: "the test command is not executable", 127: "the test command was not found"}
# What a refused write or signal says in a failing test's message.
BLOCKED_MESSAGES = ("Permission denied", "Operation not permitted", "PermissionError")
# Outcomes of a test case in a report.
COLLECTION_ERROR = "collection_error"  # a test file that could not even be imported
# Our environment must not leak into the target's: its own venv, not ours.
_STRIPPED_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")


@dataclass(frozen=True)
class TestCommand:
    __test__ = False  # not a pytest test class, whatever its name

    command: str
    interpreter: str  # which interpreter was chosen and why, said to the user
    venv: Path | None = None
    #: what else decides the results besides the command, when not the defaults: the extra
    #: environment and the confinement (`setting_of`)
    setting: str = ""

    @property
    def key(self) -> str:
        """Identifies the command for the baseline cache: a different command, or the same one
        with another environment or confinement, a new baseline (a suite refused a write by
        the confinement passes once its directory is in writable_paths)."""
        text = self.command if not self.setting else f"{self.command}\0{self.setting}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def setting_of(target: TargetConfig) -> str:
    """The target's settings that change what its tests do, "" when all are the defaults
    (so the keys of baselines cached before these settings existed stay the same)."""
    setting = {
        "env": target.env,
        "confine_tests": target.confine_tests,
        "writable_paths": [str(p) for p in target.writable_paths],
    }
    if setting == {"env": {}, "confine_tests": "auto", "writable_paths": []}:
        return ""
    return json.dumps(setting, sort_keys=True)


def resolve_test_command(target: TargetConfig, root: Path) -> TestCommand:
    """The command that runs the target's tests, and the interpreter it uses."""
    venv = next(
        (root / name for name in (".venv", "venv") if (root / name / "bin" / "python").exists()),
        None,
    )
    if target.test_command:
        note = "the configured test_command"
        if venv is not None:
            note += f", with the target's {venv.name} first on PATH"
        return TestCommand(target.test_command, note, venv, setting_of(target))
    if venv is not None:
        python = venv / "bin" / "python"
        return TestCommand(
            f"{shlex.quote(str(python))} -m pytest",
            f"the target's {venv.name} ({python})",
            venv,
            setting_of(target),
        )
    return TestCommand(
        f"{shlex.quote(sys.executable)} -m pytest",
        f"overseer's own interpreter ({sys.executable}); the target has no .venv",
        setting=setting_of(target),
    )


def _absolutize(command: str, tree: Path, root: Path) -> str:
    """`.venv/bin/python -m pytest` names a path in the user's checkout; our worktree lacks it."""
    try:
        first = shlex.split(command)[0]
    except (ValueError, IndexError):
        return command
    stripped = command.lstrip()
    if (
        "/" in first
        and not os.path.isabs(first)
        and stripped.startswith(first)
        and not (tree / first).exists()
        and (root / first).exists()
    ):
        return shlex.quote(str(root / first)) + stripped[len(first) :]
    return command


@dataclass
class TestCase:
    __test__ = False  # not a pytest test class, whatever its name

    outcome: str  # passed | failed | error | skipped | xfailed | collection_error
    duration: float
    file: str | None = None
    message: str | None = None


@dataclass
class TestReport:
    __test__ = False  # not a pytest test class, whatever its name

    command: str
    interpreter: str
    returncode: int | None
    timed_out: bool
    duration: float
    output_tail: str
    has_junit: bool
    cases: dict[str, TestCase] = field(default_factory=dict)
    nodeids: dict[str, str] = field(default_factory=dict)  # JUnit id → pytest node id
    flaky: list[str] = field(default_factory=list)  # failed, then passed when run again
    #: when the test command started and ended (UTC, ISO 8601), its slot taken: the first run
    started: str | None = None
    finished: str | None = None
    #: the tree's Python files, how many of them came compiled from the target's bytecode
    #: cache, how many compiled files the run added to it (core/plumbing/bytecode.py)
    compiled: dict[str, int] | None = None
    #: where the run could write (core/plumbing/confine.py), or why it was not confined
    confined: str | None = None
    #: why the test command was never started (confine_tests: true, and no Landlock here)
    not_started: str | None = None

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode in (0, PYTEST_NO_TESTS)

    def ids(self, *outcomes: str) -> set[str]:
        return {i for i, c in self.cases.items() if c.outcome in outcomes}

    @property
    def blocked(self) -> set[str]:
        """Failing tests that a confined run refused a write or a signal (their message says
        the system refused: EACCES or EPERM): most likely the confinement's doing, not the
        code's — a test that writes outside its worktree (core/plumbing/confine.py)."""
        if not (self.confined or "").startswith(CONFINED):
            return set()
        return {
            i
            for i in self.ids("failed", "error")
            if any(m in (self.cases[i].message or "") for m in BLOCKED_MESSAGES)
        }

    @property
    def failing(self) -> set[str]:
        """Tests that failed and kept failing when run again: the ones that count."""
        return self.ids("failed", "error") - set(self.flaky)

    @property
    def passed(self) -> int:
        return len(self.ids("passed"))

    @property
    def failed(self) -> int:
        if not self.ok and not self.ids("failed", "error"):
            return 1  # the suite failed without saying which test: count the run itself
        return len(self.failing)

    @property
    def skipped(self) -> int:
        return len(self.ids("skipped"))

    @property
    def collection_errors(self) -> list[str]:
        """The test files that could not be collected (a syntax error, an import that fails)."""
        return sorted(c.file or i for i, c in self.cases.items() if c.outcome == COLLECTION_ERROR)

    @property
    def tests_run(self) -> int:
        return sum(1 for c in self.cases.values() if c.outcome != COLLECTION_ERROR)

    def not_evaluable(self, min_tests: int = 1) -> str | None:
        """Why this run cannot tell whether a change is good, or None when it can.

        A suite that did not run, or ran so little that nothing was checked, is no evidence:
        comparing two such runs would call any change harmless. (A timeout is said apart.)
        """
        if self.timed_out:
            return None
        if self.not_started:
            return self.not_started
        status = self.returncode
        if status is not None and status < 0:
            return f"the test command was killed by signal {-status}"
        if status in SHELL_STATUS:
            return f"{SHELL_STATUS[status]} (exit status {status})"
        if self.collection_errors:
            files = self.collection_errors
            return f"{len(files)} test file(s) could not be collected: {', '.join(files[:5])}" + (
                " …" if len(files) > 5 else ""
            )
        if self.has_junit and status in PYTEST_STOPPED:
            return PYTEST_STOPPED[status]
        if not self.has_junit:
            return (
                f"the test command (exit status {status}) wrote no per-test report, so which "
                "tests ran is unknown: run pytest, or set junit_xml to the JUnit XML report "
                "your runner writes"
            )
        if self.tests_run < min_tests:
            if self.tests_run == 0:
                return "no tests were collected" + (
                    f" (exit status {status})" if status not in (0, PYTEST_NO_TESTS) else ""
                )
            return f"only {self.tests_run} test(s) ran, fewer than min_tests={min_tests}"
        return None

    def tail(self, lines: int = 15) -> str:
        """The last lines of the output, for a person to see what the runner said."""
        return "\n".join(self.output_tail.rstrip().splitlines()[-lines:])

    def describe(self) -> str:
        if self.timed_out:
            return (
                f"test command timed out after {self.duration:.0f} s; its process group was killed"
            )
        if not self.has_junit:
            state = "passed" if self.ok else f"failed (exit status {self.returncode})"
            return f"tests {state} (no JUnit report, so no per-test results)"
        text = f"{self.passed} passed, {len(self.failing)} failed"
        if self.flaky:
            text += f", {len(self.flaky)} flaky"
        if self.skipped:
            text += f", {self.skipped} skipped"
        if not self.ok and not self.ids("failed", "error"):
            text += f" but the run exited with status {self.returncode}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestReport:
        cases = {k: TestCase(**v) for k, v in data.get("cases", {}).items()}
        return cls(**{**data, "cases": cases})


def _file_of(classname: str, file_attr: str | None) -> str | None:
    if file_attr:
        return file_attr
    if not classname:
        return None
    parts = classname.split(".")
    while parts and parts[-1][:1].isupper():  # drop class names: tests.test_x.TestY
        parts.pop()
    return "/".join(parts) + ".py" if parts else None


def parse_junit(path: Path) -> dict[str, TestCase] | None:
    """Per-test outcomes from a JUnit XML report; None when there is no readable report."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    cases: dict[str, TestCase] = {}
    for case in root.iter("testcase"):
        child = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        test_id, result = _test_case(
            case.get("classname", ""),
            case.get("name", ""),
            case.get("file"),
            case.get("time", "0"),
            None
            if child is None
            else (child.tag, child.get("type"), child.get("message"), child.text),
        )
        cases[test_id] = result
    return cases


def parse_results(path: Path) -> dict[str, TestCase] | None:
    """Per-test outcomes from the `overseer_progress` plugin's results file (what pytest's
    JUnit XML report says, without its cost); None when there is no readable file."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        cases: dict[str, TestCase] = {}
        for classname, name, file, time, child in records:
            test_id, result = _test_case(
                str(classname), str(name), file, str(time), None if child is None else tuple(child)
            )
            cases[test_id] = result
    except (OSError, ValueError, TypeError):
        return None
    return cases


def _test_case(
    classname: str, name: str, file: str | None, time: str, child: tuple[Any, ...] | None
) -> tuple[str, TestCase]:
    """One test's id and outcome from what a JUnit testcase says: its class and test names,
    file, time, and its first failure, error or skipped element (tag, type, message, text)."""
    # Ids and messages are the target's own text (a parametrized id, an assertion that
    # prints a value): redacted here, as they are read, before any finding quotes them.
    test_id = redact(f"{classname}::{name}" if classname else name)
    outcome, message = "passed", None
    if child is not None:
        tag, kind, said, text = child
        outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
        message = redact(said or text or "")[:500] or None
        if tag == "skipped" and kind == "pytest.xfail":
            outcome = "xfailed"
        elif tag == "error" and not classname and said == "collection failure":
            outcome = COLLECTION_ERROR  # pytest's record of a file it could not import
    try:
        duration = float(time or 0)
    except ValueError:
        duration = 0.0
    return test_id, TestCase(outcome, duration, _file_of(classname, file), message)


def build_test_env(
    tree: Path, command: TestCommand, extra: dict[str, str], pass_env: list[str] | None = None
) -> dict[str, str]:
    """The environment of the target's commands: ours, without our own settings and without
    secret variables (the tests run code a model wrote) except those in `pass_env`."""
    env = {
        k: v
        for k, v in withheld(os.environ, pass_env or ()).items()
        if k not in _STRIPPED_ENV and not k.startswith("OVERSEER_")
    }
    if command.venv is not None:
        env["VIRTUAL_ENV"] = str(command.venv)
        env["PATH"] = f"{command.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    paths = [str(tree / "src")] if (tree / "src").is_dir() else []
    paths += [str(tree), str(PLUGIN_DIR)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def run_tests(
    target: TargetConfig,
    root: Path,
    tree: Path,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
    cancel: threading.Event | None = None,
    rerun_failures: bool = True,
    only: list[str] | None = None,
    coverage_file: Path | None = None,
    profile: tuple[str, Path] | None = None,
    bytecode: BytecodeCache | None = None,
) -> TestReport:
    """Run the target's tests in `tree` (one of our worktrees) and collect per-test results.

    Failing tests are then run again, alone, up to `flaky_reruns` times: one that passes on a
    re-run is flaky, and is neither held against a change nor credited to it. `only`: node ids
    or test files to run, the rest deselected. `coverage_file`: run under coverage.py (the
    `overseer_coverage` plugin), which writes the lines each file ran and missed there.
    `profile`: (a test's JUnit id, a file): that test runs under cProfile (the
    `overseer_profile` plugin), which writes the hottest functions of the project's code.
    `bytecode`: the target's compiled files, reused instead of compiled again (and kept, when
    it is learning: a run of accepted code).
    """
    report = _run_once(
        target,
        root,
        tree,
        on_progress=on_progress,
        cancel=cancel,
        only=only,
        coverage_file=coverage_file,
        profile=profile,
        bytecode=bytecode,
    )
    if rerun_failures and target.flaky_reruns:
        _rerun_failures(target, root, tree, report, cancel, bytecode)
    return report


def _rerun_failures(
    target: TargetConfig,
    root: Path,
    tree: Path,
    report: TestReport,
    cancel: threading.Event | None,
    bytecode: BytecodeCache | None,
) -> None:
    failing = sorted(report.ids("failed", "error"))
    nodeids = [report.nodeids[i] for i in failing if i in report.nodeids]
    if not nodeids or report.timed_out:
        return  # nothing failed, or no pytest: no way to run single tests again
    remaining = set(failing)
    flaky: set[str] = set()
    for _ in range(target.flaky_reruns):
        again = _run_once(
            target,
            root,
            tree,
            cancel=cancel,
            only=[report.nodeids[i] for i in sorted(remaining)],
            bytecode=bytecode,
        )
        flipped = {
            i for i in remaining if again.cases.get(i, TestCase("missing", 0)).outcome == "passed"
        }
        flaky |= flipped
        remaining -= flipped
        if not remaining:
            break
    report.flaky = sorted(flaky)


def _run_once(
    target: TargetConfig,
    root: Path,
    tree: Path,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
    cancel: threading.Event | None = None,
    only: list[str] | None = None,
    coverage_file: Path | None = None,
    profile: tuple[str, Path] | None = None,
    bytecode: BytecodeCache | None = None,
) -> TestReport:
    command = resolve_test_command(target, root)
    with tempfile.TemporaryDirectory(prefix="overseer-tests-") as scratch:
        results = Path(scratch) / "results.json"
        progress = Path(scratch) / "progress"
        nodeids = Path(scratch) / "nodeids"
        extra = {
            **target.env,
            "PYTEST_ADDOPTS": "-p no:cacheprovider -p overseer_progress",
            "OVERSEER_RESULTS_FILE": str(results),
            "OVERSEER_PROGRESS_FILE": str(progress),
            "OVERSEER_NODEIDS_FILE": str(nodeids),
        }
        if coverage_file is not None:
            extra["PYTEST_ADDOPTS"] += " -p overseer_coverage"
            extra["OVERSEER_COVERAGE_FILE"] = str(coverage_file)
        if profile is not None:
            extra["PYTEST_ADDOPTS"] += " -p overseer_profile"
            extra["OVERSEER_PROFILE_TEST"], extra["OVERSEER_PROFILE_FILE"] = (
                profile[0],
                str(profile[1]),
            )
        if only is not None:
            selection = Path(scratch) / "only"
            selection.write_text("".join(n + "\n" for n in only))
            extra["OVERSEER_ONLY_FILE"] = str(selection)
        env = build_test_env(tree, command, extra, target.pass_env)
        # What the run reports into: the plugin's files here, a coverage or profile file.
        outputs = [Path(scratch)] + [p.parent for p in (coverage_file, profile and profile[1]) if p]
        # A run of accepted code may fill the target venv's caches, as the user's own run would.
        learning = bytecode is not None and bytecode.learn
        venv = command.venv if learning else None
        confinement, confined = for_run(
            target, tree, Path(scratch) / "tmp", env, outputs, venv=venv
        )
        if confinement is None and target.confine_tests is True:
            return _not_started(command, f"the test run was not started: {confined}")
        watcher = _ProgressWatcher(progress, on_progress) if on_progress else None
        # The user's own word on compiled files (in the target's env) is kept as it is.
        if bytecode is None or {"PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE"} & set(target.env):
            compiled: contextlib.AbstractContextManager[Reuse | None] = contextlib.nullcontext()
        else:
            compiled = bytecode.around(tree, env)
        try:
            # A slot of the process's budget of test runs (plumbing/slots.py), held while the
            # command runs: never more test commands at once than the limit.
            with compiled as reuse, TEST_SLOTS.slot(cancel):
                started = _now()
                result: CommandResult = run_command(
                    _absolutize(command.command, tree, root),
                    cwd=tree,
                    env=env,
                    timeout=target.test_timeout,
                    memory_limit_mb=target.memory_limit_mb,
                    cancel=cancel,
                    kind="tests",
                    confinement=confinement,
                )
                finished = _now()
        finally:
            if confinement is not None:
                confinement.close()
            if watcher:
                watcher.stop()
        # pytest's results through the plugin; another runner's own JUnit XML report.
        if results.exists() or not target.junit_xml:
            cases = parse_results(results)
        else:
            cases = parse_junit(tree / target.junit_xml)
        ids = {}
        if nodeids.exists():
            for line in nodeids.read_text(encoding="utf-8").splitlines():
                junit_id, _, nodeid = line.partition("\t")
                ids[junit_id] = nodeid
    return TestReport(
        command=command.command,
        interpreter=command.interpreter,
        returncode=result.returncode,
        timed_out=result.timed_out,
        duration=round(result.duration, 3),
        output_tail=result.output_tail[-8000:],
        has_junit=cases is not None,
        cases=cases or {},
        # Only the failing tests' node ids are kept: those are the ones run again.
        nodeids={
            k: v
            for k, v in ids.items()
            if (cases or {}).get(k, TestCase("", 0)).outcome in ("failed", "error")
        },
        started=started,
        finished=finished,
        compiled=None
        if reuse is None
        else {"files": reuse.files, "reused": reuse.reused, "learned": reuse.learned},
        confined=confined,
    )


def _not_started(command: TestCommand, why: str) -> TestReport:
    """The report of a test run refused before it started (its command never ran)."""
    return TestReport(
        command=command.command,
        interpreter=command.interpreter,
        returncode=None,
        timed_out=False,
        duration=0.0,
        output_tail=why,
        has_junit=False,
        confined=why,
        not_started=why,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class _ProgressWatcher:
    """Reads the plugin's progress file while the tests run and reports done/total."""

    def __init__(self, path: Path, callback: Callable[[int, int | None], None]) -> None:
        self.path = path
        self.callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-progress", daemon=True)
        self._last: tuple[int, int | None] = (-1, None)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._poll()

    def _poll(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        total = next((int(x.split()[1]) for x in lines if x.startswith("total ")), None)
        done = sum(1 for x in lines if x == "done")
        if (done, total) != self._last:
            self._last = (done, total)
            self.callback(done, total)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
