"""`overseer config check`: everything wrong with a configuration, at once, with file:line.

Beyond the file's own shape: its policy file, each generator (a local model file that is there
and sane, an endpoint that answers and serves the model), and each target (exists, is a git
checkout, the branch exists). A problem found here is one that would otherwise surface at 3 a.m.

All of them in one pass: when the file's shape is wrong somewhere, the parts that can still be
read (the policy it names, each target's path and branch, each generator) are checked too, so
fixing the file does not reveal a second list. `overseer daemon` refuses to start on the same
problems, except a generator's (a model server may come up after the daemon, which checks it
again until it answers).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from overseer.base.problems import Problem, ProblemsError
from overseer.base.yamlfile import load_yaml
from overseer.config import GeneratorConfig, LLMGenerator, TargetConfig, load_config
from overseer.core.plumbing.repo import RepoError, TargetRepo
from overseer.core.safety.policy import load_policy

# (key path) → (file, line), for problems found after the file's shape.
Where = Callable[..., tuple[str, int]]


def check_config(path: Path, *, generators: bool = True, targets: bool = True) -> list[Problem]:
    """Every problem of the configuration at `path`: its shape, its policy, its generators
    (unless `generators` is False) and its targets (unless `targets` is False: a daemon told
    which repository to supervise does not use the configured ones)."""
    try:
        config = load_config(path)
    except ProblemsError as exc:
        return exc.problems + _beyond_a_broken_file(path, generators=generators, targets=targets)
    problems: list[Problem] = []
    if config.policy is not None:
        problems += policy_problems(config.policy)
    if generators:
        for index, generator in enumerate(config.generators):
            problems += generator_problems(index, generator, config.where)
    for index, target in enumerate(config.targets if targets else []):
        problems += target_problems(index, target, config.where)
    return problems


def policy_problems(path: Path) -> list[Problem]:
    try:
        load_policy(path)
    except ProblemsError as exc:
        return exc.problems
    return []


def generator_problems(index: int, generator: Any, where: Where) -> list[Problem]:
    """A model generator whose model file or endpoint does not work."""
    if not isinstance(generator, LLMGenerator):
        return []
    from overseer.core.generate.llm import BackendError, build_backend

    key = "model_path" if hasattr(generator.llm, "model_path") else "base_url"
    file, line = where("generators", index, "llm", key)
    try:
        build_backend(generator.llm).check()
    except BackendError as exc:
        return [Problem(file, line, f"generators[{index}].llm.{key}", str(exc))]
    return []


def target_problems(index: int, target: TargetConfig, where: Where) -> list[Problem]:
    """A target that is not there, not a git checkout, without its branch or its remote."""
    file, line = where("targets", index, "path")
    key = f"targets[{index}].path"
    try:
        repo = TargetRepo(target.path)
    except RepoError as exc:
        return [Problem(file, line, key, str(exc))]
    except OSError as exc:
        return [Problem(file, line, key, f"{target.path}: {exc.strerror or exc}")]
    problems = []
    try:
        branch = target.branch or repo.current_branch()
        if branch is None:
            problems.append(
                Problem(file, line, key, f"{repo.path} has a detached HEAD; set branch:")
            )
        elif not repo.branch_exists(branch):
            file, line = where("targets", index, "branch")
            problems.append(
                Problem(
                    file, line, f"targets[{index}].branch", f"no branch {branch!r} in {repo.path}"
                )
            )
        if target.push:
            remotes = repo.git("remote").split()
            if target.push not in remotes:
                file, line = where("targets", index, "push")
                problems.append(
                    Problem(
                        file,
                        line,
                        f"targets[{index}].push",
                        f"{repo.path} has no remote {target.push!r} (remotes: {', '.join(remotes) or 'none'})",
                    )
                )
    except RepoError as exc:  # git refuses the repository (another user's, say)
        problems.append(Problem(file, line, key, str(exc)))
    return problems + confinement_problems(index, target, where)


def confinement_problems(index: int, target: TargetConfig, where: Where) -> list[Problem]:
    """`confine_tests: true` where the test runs cannot be confined (they would never run),
    and `writable_paths` that are not directories (a confined run could not write there)."""
    from overseer.core.plumbing import confine

    problems = []
    if target.confine_tests is True:
        version, why = confine.abi()
        if not version:
            file, line = where("targets", index, "confine_tests")
            problems.append(
                Problem(
                    file,
                    line,
                    f"targets[{index}].confine_tests",
                    f"true, but test runs cannot be confined here: {why}; no test would run",
                )
            )
    for n, path in enumerate(target.writable_paths):
        if not path.is_dir():
            file, line = where("targets", index, "writable_paths", n)
            problems.append(
                Problem(
                    file,
                    line,
                    f"targets[{index}].writable_paths[{n}]",
                    f"{path} is not a directory",
                )
            )
    return problems


def _beyond_a_broken_file(path: Path, *, generators: bool, targets: bool) -> list[Problem]:
    """What can still be checked in a file whose shape is wrong: the policy it names, each
    generator and each target that is well-formed on its own. Nothing when the YAML itself
    does not parse (the file's problems say so)."""
    try:
        data, lines = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (ProblemsError, OSError, UnicodeDecodeError):
        return []
    if not isinstance(data, dict):
        return []
    base = path.resolve().parent
    file = str(path)  # as the file's own problems name it

    def where(*key: str | int) -> tuple[str, int]:
        return file, lines.line_of(key)[0]

    def resolved(value: Path) -> Path:
        value = value.expanduser()
        return value if value.is_absolute() else (base / value).resolve()

    problems: list[Problem] = []
    policy = data.get("policy")
    if isinstance(policy, str) and policy:
        problems += policy_problems(resolved(Path(policy)))
    items = data.get("generators")
    if generators and isinstance(items, list):
        adapter: TypeAdapter[Any] = TypeAdapter(GeneratorConfig)
        for index, item in enumerate(items):
            try:
                generator = adapter.validate_python(item)
            except ValidationError:
                continue  # the file's problems name it
            if isinstance(generator, LLMGenerator) and hasattr(generator.llm, "model_path"):
                generator.llm.model_path = resolved(generator.llm.model_path)  # type: ignore[union-attr]
            problems += generator_problems(index, generator, where)
    items = data.get("targets")
    if targets and isinstance(items, list):
        for index, item in enumerate(items):
            target = _readable_target(item, resolved)
            if target is not None:
                problems += target_problems(index, target, where)
    return problems


def _readable_target(item: Any, resolved: Callable[[Path], Path]) -> TargetConfig | None:
    """The path, branch and remote of a target entry, when they are readable whatever else
    is wrong with it (a misspelt key beside them, say)."""
    if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
        return None
    fields: dict[str, Any] = {"path": resolved(Path(item["path"]))}
    if isinstance(item.get("branch"), str):
        fields["branch"] = item["branch"]
    if isinstance(item.get("push"), str):
        fields["push"] = item["push"]
    try:
        return TargetConfig(**fields)
    except ValidationError:
        return None
