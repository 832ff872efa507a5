"""Measuring a change against its base, in worktrees of overseer's: used before a change is
promoted (EVALUATE) and after (the post-promotion watch)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from overseer.core.analyze.benchmark import run_benchmark
from overseer.core.context import Context
from overseer.core.evaluate.compare import Evaluation
from overseer.core.evaluate.perf import PerfComparison, interleaved
from overseer.core.plumbing.testrun import (
    TestReport,
    build_test_env,
    resolve_test_command,
    run_tests,
)


def run_only(ctx: Context, tree: Path, tests: list[str]) -> TestReport:
    """These tests alone (node ids or files), once, in `tree`: a failure is the answer, not
    re-run as a possible flake (a new test proving itself, a test timed for a speed-up)."""
    return run_tests(
        ctx.target.config,
        ctx.target.root,
        tree,
        cancel=ctx.stop.cancelled,
        rerun_failures=False,
        only=tests,
        bytecode=ctx.bytecode(),
    )


@contextmanager
def commit_tree(ctx: Context, name: str, commit: str) -> Iterator[Path]:
    """A detached worktree of `commit` for as long as it is needed."""
    repo = ctx.repo()
    tree = ctx.worktree_path(name)
    repo.add_worktree(tree, commit, branch=None)
    try:
        yield tree
    finally:
        repo.remove_worktree(tree)


def measure_performance(
    ctx: Context, before: Path, after: Path, report: Any = None
) -> PerfComparison:
    """The configured benchmark, before and after in turn, compared with its noise."""
    cfg = ctx.target.config
    assert cfg.benchmark_command
    command = resolve_test_command(cfg, ctx.target.root)
    runs = 0

    def runner(tree: Path) -> Callable[[], dict[str, Any]]:
        env = build_test_env(tree, command, dict(cfg.env), cfg.pass_env)

        def run() -> dict[str, Any]:
            nonlocal runs
            runs += 1
            if report is not None:
                report.progress("benchmark", runs, cfg.benchmark_runs * 2)
            return run_benchmark(cfg, tree, env)

        return run

    return interleaved(
        runner(before),
        runner(after),
        cfg.benchmark_runs,
        cfg.benchmark_metric,
        min_effect=cfg.benchmark_min_effect,
    )


def judge_performance(ctx: Context, evaluation: Evaluation, perf: PerfComparison) -> None:
    """Record the comparison; a change slower than the policy allows does not pass."""
    evaluation.benchmark = perf.to_dict()
    evaluation.performance_delta = perf.performance_delta
    limit = ctx.target.config.max_slowdown_percent
    if perf.verdict == "slower" and perf.delta is not None and -perf.delta > limit:
        evaluation.passed = False
        evaluation.reasons.append(f"{perf.describe()}; more than max_slowdown_percent={limit:g}")
