"""`overseer config check`: everything wrong with a configuration, at once, with file:line.

Beyond the file's own shape: its policy file, each generator (a local model file that is there
and sane, an endpoint that answers and serves the model), and each target (exists, is a git
checkout, the branch exists). A problem found here is one that would otherwise surface at 3 a.m.
"""

from __future__ import annotations

from pathlib import Path

from overseer.base.problems import Problem, ProblemsError
from overseer.config import LLMGenerator, load_config
from overseer.core.plumbing.repo import RepoError, TargetRepo
from overseer.core.safety.policy import load_policy


def check_config(path: Path) -> list[Problem]:
    try:
        config = load_config(path)
    except ProblemsError as exc:
        return exc.problems
    problems: list[Problem] = []
    if config.policy is not None:
        try:
            load_policy(config.policy)
        except ProblemsError as exc:
            problems.extend(exc.problems)
    for index, generator in enumerate(config.generators):
        if isinstance(generator, LLMGenerator):
            from overseer.core.generate.llm import BackendError, build_backend

            key = "model_path" if hasattr(generator.llm, "model_path") else "base_url"
            file, line = config.where("generators", index, "llm", key)
            try:
                build_backend(generator.llm).check()
            except BackendError as exc:
                problems.append(Problem(file, line, f"generators[{index}].llm.{key}", str(exc)))
    for index, target in enumerate(config.targets):
        file, line = config.where("targets", index, "path")
        key = f"targets[{index}].path"
        try:
            repo = TargetRepo(target.path)
        except RepoError as exc:
            problems.append(Problem(file, line, key, str(exc)))
            continue
        branch = target.branch or repo.current_branch()
        if branch is None:
            problems.append(
                Problem(file, line, key, f"{repo.path} has a detached HEAD; set branch:")
            )
        elif not repo.branch_exists(branch):
            file, line = config.where("targets", index, "branch")
            problems.append(
                Problem(
                    file, line, f"targets[{index}].branch", f"no branch {branch!r} in {repo.path}"
                )
            )
        if target.push:
            remotes = repo.git("remote").split()
            if target.push not in remotes:
                file, line = config.where("targets", index, "push")
                problems.append(
                    Problem(
                        file,
                        line,
                        f"targets[{index}].push",
                        f"{repo.path} has no remote {target.push!r} (remotes: {', '.join(remotes) or 'none'})",
                    )
                )
    return problems
