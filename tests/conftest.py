import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# One BLAS thread per process, here and in every child: the suite runs three workers on two
# cores, and OpenBLAS's threads spin while they wait; the predictor's fits on a hundred rows
# (scikit-learn's L-BFGS) spent more CPU spinning than computing (tests/core/learn/
# test_predictor.py: 11.2 s of CPU with the default threads, 4.2 s with one). Set here, before
# anything imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The shared support (tests/support, on sys.path by pyproject's `pythonpath`) has the checks many
# tests rely on, such as the fault drills' invariants: their failures should say what differed.
pytest.register_assert_rewrite("support")

from support.helpers import Harness, daemon_config, short_dir  # noqa: E402
from support.order import longest_files_first  # noqa: E402
from support.template import SampleTemplate  # noqa: E402


@pytest.fixture(scope="session")
def sample(tmp_path_factory, _no_personal_git_config) -> SampleTemplate:
    """The sample repository, built once per session (per xdist worker); see support.template."""
    return SampleTemplate(tmp_path_factory.mktemp("sample"))


@pytest.fixture
def repo(tmp_path: Path, sample: SampleTemplate) -> Path:
    """The sample project at tmp_path/proj (a copy: the same commits, hashes included)."""
    return sample.copy(tmp_path / "proj")


@pytest.fixture
def warm_baseline(tmp_path: Path, repo: Path, sample: SampleTemplate) -> None:
    """`@pytest.mark.usefixtures("warm_baseline")`: the baseline at `repo`'s commit (its tests
    and ruff's F rules), measured once per session, is already in tmp_path/state's history for
    the target "proj" at `repo`, so the first cycle there does not run it again. Only for a test
    that proves nothing about the baseline's own run (see support.template)."""
    sample.warm(tmp_path / "state", repo)


@pytest.fixture
def harness(tmp_path: Path, repo: Path):
    h = Harness(tmp_path, repo, ruff_select=["F"])
    yield h
    h.close()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A directory with a short path for Unix sockets (see short_dir), removed afterwards."""
    with short_dir() as path:
        yield path


@pytest.fixture
def daemon_options(tmp_path: Path, repo: Path, sockdir: Path) -> Callable[..., object]:
    """`daemon_options(**sections)`: the options of a daemon in this process on `repo`, for
    `async with run_daemon(...)`, from a real configuration file (so a reload can be tested)
    written by `daemon_config` with these sections; its socket is sockdir/run/s.sock."""
    from overseer.daemon.server import DaemonOptions

    def make(**sections: object) -> DaemonOptions:
        path, config = daemon_config(tmp_path, repo, sockdir / "run" / "s.sock", **sections)
        return DaemonOptions(config=config, config_path=path)

    return make


@pytest.fixture(autouse=True, scope="session")
def _children_keep_compiled_modules():
    """The suite starts hundreds of Python processes that import overseer (the CLI, daemons,
    demos). With PYTHONDONTWRITEBYTECODE set in the environment, each compiled all of overseer
    again (`overseer status`: 0.65 s of CPU, 0.46 s with its bytecode kept); the children write
    their bytecode next to the source (`__pycache__`, ignored by git), as on a machine without
    the variable. The commands a target runs are not affected: overseer decides for them
    itself (a candidate's run writes no compiled file; core/plumbing/bytecode.py)."""
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    yield
    if saved is not None:
        os.environ["PYTHONDONTWRITEBYTECODE"] = saved


@pytest.fixture(autouse=True, scope="session")
def _no_personal_git_config():
    """Like CI: no global git identity or settings, whatever the developer's machine has."""
    saved = {
        k: os.environ.get(k)
        for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    }
    os.environ["GIT_CONFIG_GLOBAL"] = "/dev/null"
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    # The sample targets run their tests with this interpreter, whose test-only plugins
    # (textual snapshots, asyncio) they do not use and which cost ~1.2 s per run to load.
    # Plugins named with -p (overseer's progress plugin) still load.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for name in ("OVERSEER_CONFIG", "OVERSEER_STATE_DIR", "OVERSEER_SOCKET"):
        os.environ.pop(name, None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# -- the order the tests run in ------------------------------------------------------------
# `make test` runs three workers (xdist's `load`: tests are handed out in the order collected),
# and the run ends when the last worker does. In name order the slowest files (tests/faults,
# tests/tui) came last, and one worker ran on alone at the end (80 s of a 15-minute run on a
# busy machine). Files run longest first instead, by the seconds their tests took the last time
# they ran (pytest's cache, `.pytest_cache`), so what is left at the end is short. A file never
# timed runs first (it may be slow). A file's tests stay together and in their order, so a
# module-scoped fixture is not made again in between. Without times (a fresh clone, CI), the
# folders that start daemons and terminals first (support/order.py).
TEST_SECONDS = "overseer/test_seconds"


@pytest.hookimpl(tryfirst=True)  # before --lf/--ff, which reorder what this leaves
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache = getattr(config, "cache", None)  # none with -p no:cacheprovider
    if cache is None:
        return
    key = longest_files_first([item.nodeid for item in items], cache.get(TEST_SECONDS, {}))
    items.sort(key=lambda item: key(item.nodeid))


class _TestSeconds:
    """Records how long each test took (set-up, call and tear-down) for the next run's order."""

    def __init__(self, cache: pytest.Cache) -> None:
        self.cache = cache
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        if self.seconds:
            known = self.cache.get(TEST_SECONDS, {})
            self.cache.set(TEST_SECONDS, {**known, **self.seconds})


def pytest_configure(config: pytest.Config) -> None:
    # Recorded where the reports arrive: the one process of a plain run, or xdist's controller
    # (its workers send it theirs); never in a worker.
    cache = getattr(config, "cache", None)
    if cache is not None and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_TestSeconds(cache), "overseer-test-seconds")
