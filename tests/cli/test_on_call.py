"""What the on-call engineer meets at the command line (issue 15): no failure looks like
success, every state has a way out, the status says what is going on in words, and nothing
is said that does not matter."""

from __future__ import annotations

from support.helpers import overseer


def test_offline_commands_say_nothing_about_a_missing_daemon_unless_asked(tmp_path, repo):
    state = str(tmp_path / "state")
    assert overseer("pause", "--state-dir", state).stderr == ""
    quiet = overseer("resume", "--state-dir", state)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = overseer("--debug", "resume", "--state-dir", state)
    assert "no daemon is running" in loud.stderr
    also = overseer("resume", "--debug", "--state-dir", state)
    assert "no daemon is running" in also.stderr
