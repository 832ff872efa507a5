"""Secrets never leave overseer: not through a prompt, a commit message, the history, an event
or a log line, whatever the target's tests print and whatever a model echoes back.

Each test runs the real CLI on a real repository, with real tokens in the environment."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from support.adversarial import LEVELS
from support.chat_server import Answer, ChatServer
from support.helpers import SAMPLE, git, init_repo, overseer, rows

GITHUB_TOKEN = "ghp_R3alLook1ngT0kenValue0000111122"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {"GITHUB_TOKEN": GITHUB_TOKEN, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}

# A test that fails with both values in its assertion message and prints them too.
LEAKY_TEST = """import os

from pkg.util import double


def test_deploys_with_credentials():
    token, key = os.environ.get("GITHUB_TOKEN"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    print("deploying with", token, key)
    assert double(2) == 5, f"deploy failed for token={token} key={key}"
"""
UTIL = "def double(x):\n    return x * 2\n"


def leaked(text: str | bytes) -> list[str]:
    """Which secret values `text` holds."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [name for name, value in SECRETS.items() if value in text]


def run_once(tmp_path, repo, *generators, pass_env=(), extra_env=None, policy=None):
    config = tmp_path / "overseer.yaml"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy or {"autonomy": "supervised"}))
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "policy": str(policy_file),
                "generators": list(generators) or ["ruff_fix"],
                "targets": [
                    {
                        "name": "proj",
                        "path": str(repo),
                        "ruff_select": ["F401"],
                        "pass_env": list(pass_env),
                        "flaky_reruns": 0,
                    }
                ],
            }
        )
    )
    return overseer(
        "run",
        "--once",
        "--config",
        str(config),
        "--no-dry-run",
        "--no-require-approval",
        "--debug",
        env={**SECRETS, **(extra_env or {})},
    )


def everything_written(tmp_path, repo) -> dict[str, str]:
    """The history (every table, every file of the database), the repository's every ref and
    commit (messages and contents), and the worktrees overseer kept."""
    state = tmp_path / "state"
    written = {
        "history file": b"".join(p.read_bytes() for p in state.glob("history.sqlite3*")).decode(
            "utf-8", errors="replace"
        ),
        "commit messages": git(repo, "log", "--all", "--format=%B"),
        "commits": git(repo, "log", "--all", "-p"),
    }
    conn = sqlite3.connect(state / "history.sqlite3")
    for (table,) in conn.execute("select name from sqlite_master where type = 'table'"):
        written[f"table {table}"] = json.dumps(
            [list(r) for r in conn.execute(f"select * from {table}")]
        )
    conn.close()
    return written


@pytest.mark.parametrize(("level", "policy"), LEVELS, ids=[level for level, _ in LEVELS])
def test_a_failing_test_and_a_model_that_echo_secrets_leak_nothing(tmp_path, level, policy):
    """Tokens in the environment (passed to the tests on purpose), a failing test that prints
    them and puts them in its assertion message, and a model that echoes them back in its
    rationale, its impact and its code: the prompt, the commit messages, the history, the
    events and the logs contain none of them — at every level, including those where the
    change promotes itself onto the branch."""
    repo = init_repo(
        tmp_path / "proj",
        {**SAMPLE, "pkg/util.py": UTIL, "tests/test_deploy.py": LEAKY_TEST},
    )
    echo = {
        "target_file": "pkg/util.py",
        "change_type": "bugfix",
        "risk_level": "low",
        "impact": f"deploys again with {GITHUB_TOKEN}",
        "rationale": f"the test used token={GITHUB_TOKEN} key={AWS_SECRET}",
        "edits": [
            {
                "search": "    return x * 2\n",
                "replace": f"    # {AWS_SECRET}\n    return x * 2 + 0\n",
            }
        ],
    }
    with ChatServer(default=Answer(json.dumps(echo))) as server:
        out = run_once(
            tmp_path,
            repo,
            server.generator(retries=0),
            pass_env=["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"],
            policy=policy,
        )
        prompts = [m["content"] for r in server.requests for m in r["messages"]]
    assert out.returncode == 0, out.stderr
    # The premise: the test saw the secrets, failed with them, and the model was asked.
    [attempt] = rows(tmp_path / "state")
    assert attempt["finding_kind"] == "failing_test", attempt["finding_kind"]
    assert prompts, "the model was never asked"
    assert "token=[secret GITHUB_TOKEN] key=[secret AWS_SECRET_ACCESS_KEY]" in "\n".join(prompts)
    assert attempt["git_commit_hash"], attempt["failure_reason"]
    if level == "full/high":  # a low-risk fix by the model's account: it promotes itself
        assert attempt["status"] == "promoted", attempt["failure_reason"]

    assert leaked("\n".join(prompts)) == []
    for where, text in everything_written(tmp_path, repo).items():
        assert leaked(text) == [], where
    assert leaked(out.stdout) == [] and leaked(out.stderr) == []
    if attempt["status"] in ("promoted", "awaiting_approval"):
        message = git(repo, "log", "-1", "--format=%B", attempt["git_commit_hash"])
        assert "[secret GITHUB_TOKEN]" in message  # the rationale is there, without the value


def test_secret_variables_are_withheld_from_the_targets_commands(tmp_path):
    """The tests run code a model wrote: overseer's own tokens are not theirs to read, unless
    the target's pass_env names them."""
    repo = init_repo(
        tmp_path / "proj",
        {**SAMPLE, "pkg/util.py": UTIL, "tests/test_deploy.py": LEAKY_TEST},
    )
    out = run_once(tmp_path, repo, extra_env={"DEPLOY_MODE": "blue"})
    assert out.returncode == 0, out.stderr
    [cycle] = rows(tmp_path / "state", "cycles")
    tests = json.loads(cycle["analysis"])["tests"]
    assert tests["failing"] == ["tests.test_deploy::test_deploys_with_credentials"]
    finding = json.loads(cycle["analysis"])["findings"][0]
    assert "token=None key=None" in finding["message"]  # the test saw neither
    for where, text in everything_written(tmp_path, repo).items():
        assert leaked(text) == [], where
