"""`overseer demo` as `make demo` runs it without a terminal (CI, a pipe): it never waits."""

from __future__ import annotations

from support.helpers import git, overseer


def test_the_headless_demo_runs_two_real_cycles_and_shows_what_it_did(tmp_path):
    out = overseer("demo", "--dir", str(tmp_path / "demo"), timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "low-risk quality fixes promote themselves" in text
    for phase in ("ANALYZE", "GENERATE", "SAFETY", "DEPLOY", "EVALUATE", "LEARN", "RECORD"):
        assert f" {phase} " in text
    assert (
        text.index("── cycle 1 of 2")
        < text.index("The commit it made on main")
        < text.index("── cycle 2 of 2")
    )
    assert text.count("promoted to main @") == 2
    history = text[text.index("── history") :]
    assert history.count("promoted  demo") == 2
    repo = tmp_path / "demo" / "repo"
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert [s.startswith("Autonomous improvement: quality:") for s in subjects] == [
        True,
        True,
        False,
    ]
    assert git(repo, "status", "--porcelain") == ""
    assert "Daemon pid" in text and not list(
        (tmp_path / "demo" / "state" / "worktrees").rglob("*.py")
    )
