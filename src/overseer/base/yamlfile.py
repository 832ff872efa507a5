"""YAML files validated by pydantic models, with every problem reported at once by file:line.

An on-call engineer who mistypes a key should see `policy.yaml:12: rules[1].risk: ...`, not a
traceback, and should see all of the problems in one go rather than one per attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from overseer.base.problems import Problem, ProblemsError

Key = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


def render_key(key: Key) -> str:
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class LineMap:
    """Where each key path of a YAML document starts (1-based lines)."""

    def __init__(self) -> None:
        self.lines: dict[Key, int] = {(): 1}
        self.duplicates: list[tuple[Key, int]] = []

    def line_of(self, loc: Iterable[Any]) -> tuple[int, Key]:
        """The deepest known line for a validation error location, and the key path found.

        pydantic puts its own tags (union members, validator names) into locations; they are
        not keys of the document, so they are stepped over.
        """
        path: Key = ()
        for part in loc:
            candidate = (*path, part)
            if candidate in self.lines:
                path = candidate
        return self.lines[path], path

    def walk(self, node: yaml.Node, path: Key = ()) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.duplicates.append((child, line))
                seen.add(key)
                self.lines[child] = line
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                self.lines[child] = item.start_mark.line + 1
                self.walk(item, child)


def load_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse YAML text; syntax errors and duplicate keys become Problems."""
    lines = LineMap()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ProblemsError([Problem(file, line, "", f"YAML syntax: {message}")]) from None
    except yaml.YAMLError as exc:
        raise ProblemsError([Problem(file, 1, "", f"YAML syntax: {exc}")]) from None
    if node is not None:
        lines.walk(node)
    return data, lines


def validate(model: type[M], data: Any, lines: LineMap, file: str) -> M:
    """The model, or a ProblemsError with every problem: duplicate keys and validation errors."""
    problems = [
        Problem(file, line, render_key(key), "key appears more than once (the last would win)")
        for key, line in lines.duplicates
    ]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProblemsError(
            [
                Problem(
                    file, 1, "", f"expected a mapping of keys at the top, got {type(data).__name__}"
                )
            ]
        )
    extra = getattr(model, "file_problems", None)
    for loc, message in extra(data) if extra else []:
        line, found = lines.line_of(loc)
        problems.append(Problem(file, line, render_key(found), message))
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            line, found = lines.line_of(error["loc"])
            if error["type"] == "missing" and error["loc"]:
                found = (*found, error["loc"][-1])  # a missing key is not in the document
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check its spelling and indentation)"
            if "input" in error and error["type"] not in ("missing", "extra_forbidden"):
                shown = repr(error["input"])
                if len(shown) <= 60:
                    message += f" (got {shown})"
            problems.append(Problem(file, line, render_key(found), message))
        raise ProblemsError(sorted(problems, key=lambda p: p.line)) from None
    if problems:
        raise ProblemsError(problems)
    return result


def load_model(model: type[M], path: Path) -> M:
    """Read, parse and validate one file; every failure is a ProblemsError naming the file."""
    return read_model(model, path)[0]


def read_model(model: type[M], path: Path) -> tuple[M, LineMap]:
    """`load_model`, and where each key sits in the file (to report later problems at it)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemsError([Problem(file, 0, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemsError([Problem(file, 0, "", f"cannot read: {exc}")]) from None
    data, lines = load_yaml(text, file)
    return validate(model, data, lines, file), lines
