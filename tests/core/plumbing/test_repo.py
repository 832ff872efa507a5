"""Git failing for want of file descriptors says so: a daemon flooded with connections once
reported its own target as "not a git repository"."""

from __future__ import annotations

import json
import subprocess
import sys

# In a child process: lowering the limit here would starve the test run itself.
OUT_OF_FDS = r"""
import json, os, resource, sys
from pathlib import Path
from overseer.core.plumbing.repo import RepoError, TargetRepo, run_git

repo = Path(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
held = []
while True:
    try:
        held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        break
said = {}
for name, attempt in (("open", lambda: TargetRepo(repo)), ("run", lambda: run_git(repo, "status"))):
    try:
        attempt()
        said[name] = "worked"
    except RepoError as exc:
        said[name] = str(exc)
for fd in held:
    os.close(fd)
said["after"] = TargetRepo(repo).current_branch()
print(json.dumps(said))
"""


def test_out_of_descriptors_is_not_reported_as_no_repository(repo):
    out = subprocess.run(
        [sys.executable, "-c", OUT_OF_FDS, str(repo)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout)
    for name in ("open", "run"):
        assert "too many open files" in said[name], said
        assert "not a git repository" not in said[name], said
    assert said["after"] == "main"  # the same repository, once descriptors are free again
