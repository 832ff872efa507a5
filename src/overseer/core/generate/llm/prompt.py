"""The prompt: what to fix, the code it is in, and changes of the same kind that were kept.

Budgeted with the model's own tokenizer: ctransformers does not refuse a prompt longer than
its context, it silently degrades, so the prompt is made to fit — examples go first, then the
code shrinks to a window around the finding — or the attempt fails saying it cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from overseer.core.analyze.findings import Finding
from overseer.core.analyze.profile import hot_lines

INSTRUCTIONS = """\
You improve the code of a software project, one small change at a time.
Fix the finding below by editing the file(s) shown. Answer with exactly one JSON object, nothing else:
{"target_file": "<path>", "change_type": "optimization|bugfix|feature|quality",
 "risk_level": "low|medium|high", "impact": "<what gets better>", "rationale": "<why this is right>",
 "edits": [{"search": "<exact text from the file>", "replace": "<new text>"}]}
Each search text must be copied exactly from the file and occur in it exactly once.
Keep the change small, keep behaviour unless the finding is a bug, and never weaken a test."""

WINDOWS = (None, 400, 200, 120, 60, 30, 15)  # lines around the finding; None: the whole file
SAFETY_MARGIN = 16  # tokens: chat templates and the tokenizer's own markers


class PromptTooLong(Exception):
    pass


@dataclass
class Prompt:
    text: str
    tokens: int
    window: tuple[int, int] | None  # the lines of the file shown, when not all of it
    examples: list[str] = field(default_factory=list)  # the attempts shown as examples


def describe_finding(finding: Finding) -> str:
    lines = [f"Finding: {finding.kind} in {finding.file}: {finding.message}"]
    rows = finding.details.get("rows")
    if rows:
        lines.append(f"At line(s): {', '.join(map(str, rows[:10]))}")
    if finding.kind == "failing_test":
        lines.append(f"Failing test: {finding.details.get('test')}")
    if finding.kind == "slow_test":
        lines.append(
            f"Slow test: {finding.details.get('test')} takes {finding.details.get('duration')} s"
        )
    lines += hot_lines(finding)
    lines += _feature(finding)
    lines += _new_test(finding)
    return "\n".join(lines)


def _module_name(path: str) -> str:
    stem = path.removesuffix(".py").removesuffix("/__init__")
    return stem.removeprefix("src/").replace("/", ".")


def _new_test(finding: Finding) -> list[str]:
    """What an `uncovered_code` finding asks (analyze/coverage.py): a new test file."""
    if finding.kind != "uncovered_code" or finding.file is None:
        return []
    d = finding.details
    functions = d.get("functions") or {}
    where = "; ".join(
        f"{name} (lines {', '.join(map(str, rows[:8]))})"
        for name, rows in list(functions.items())[:8]
    )
    new = d.get("new_test")
    return [
        f"No test runs these lines of {finding.file}: {where or ', '.join(map(str, (d.get('missing') or [])[:20]))}.",
        f"Write a NEW pytest test file {new} whose tests run those lines and assert what they "
        f"must return or do; import the code as `{_module_name(finding.file)}`.",
        f'Answer with one edit: "file": "{new}", "search": "" (empty: a new file), "replace": '
        "the whole test file. Do not edit any existing file. Every test must assert something, "
        "and pass every time it runs (no clock, no randomness, no files left behind).",
    ]


def _feature(finding: Finding) -> list[str]:
    """What a feature finding asks (analyze/features.py): the behaviour, where it goes, and
    what proves it."""
    d = finding.details
    if finding.kind == "xfail_test":
        return [
            f"The test {d.get('function')} in {finding.file} is marked xfail: "
            f"{d.get('reason')}. Write that missing behaviour in the project's code (the code "
            "under test shown below), so that the test passes.",
            "Do not edit any test file: the xfail mark of this test is removed with your change, "
            "and the change is kept only if the test then passes and every other test still does.",
        ]
    if finding.kind == "not_implemented":
        return [
            f"{d.get('function')} raises NotImplementedError. Implement it, as the tests that "
            f"reach it expect ({', '.join(d.get('tests', [])[:3])}); do not edit any test file.",
        ]
    if finding.kind == "todo":
        return [
            f"Do what the comment at line {d.get('rows', ['?'])[0]} says ({d.get('text')}), in "
            "this file, and remove the comment; do not edit any test file.",
        ]
    return []


def _code_block(
    path: str, code: str, window: int | None, focus: int
) -> tuple[str, tuple[int, int] | None]:
    lines = code.splitlines(keepends=True)
    if window is None or len(lines) <= window:
        return f"File {path}:\n```\n{code}```\n", None
    start = max(0, focus - 1 - window // 2)
    end = min(len(lines), start + window)
    shown = "".join(lines[start:end])
    return (
        f"File {path} (lines {start + 1}-{end} of {len(lines)}; edit only what is shown):\n```\n{shown}```\n",
        (start + 1, end),
    )


def build_prompt(
    finding: Finding,
    path: str,
    code: str,
    examples: list[tuple[str, str]],
    *,
    budget: int,
    count: Callable[[list[str]], list[int]],
    context: list[tuple[str, str]] | None = None,
) -> Prompt:
    """The largest prompt that fits `budget` tokens: all examples and the whole file if they
    fit, else fewer examples, else a smaller window of code around the finding. `context` is
    other files worth showing (the code a failing or slow test exercises): the examples go
    before them when they do not all fit."""
    head = INSTRUCTIONS + "\n\n" + describe_finding(finding) + "\n\n"
    focus = (finding.details.get("rows") or [1])[0]
    blocks = [
        (iid, f"A change of this kind that was kept ({iid[:8]}):\n{text}\n\n")
        for iid, text in examples
    ]
    context = context or []
    options = []
    for window in WINDOWS:
        code_block, shown = _code_block(path, code, window, focus)
        for n in range(len(context), -1, -1):
            others = "".join(
                "Code under test — " + _code_block(other, text, window, 1)[0]
                for other, text in context[:n]
            )
            for keep in range(len(blocks), -1, -1):
                chosen = blocks[:keep]
                text = head + "".join(block for _, block in chosen) + others + code_block
                options.append((text, shown, [iid for iid, _ in chosen]))
        if shown is None and window is not None:
            break
    # Count them all at once: one round trip to the tokenizer, wherever it runs.
    counts = count([text for text, _, _ in options])
    for (text, shown, used), tokens in zip(options, counts, strict=True):
        if tokens + SAFETY_MARGIN <= budget:
            return Prompt(text, tokens, shown, used)
    raise PromptTooLong(
        f"even {WINDOWS[-1]} lines of {path} and the finding need {min(counts)} tokens; "
        f"the model's context leaves {budget} for the prompt"
    )


REPAIR = """\
Round {round} of {rounds}. Your answer in the round before did not work ({phase} failed):
{failure}

Your answer was:
```
{previous}
```

Answer again with exactly one JSON object in the same form, for the whole change. Your earlier
change was not kept: make your edits against the file(s) exactly as shown above.
"""
REPAIR_SHARE = 2  # the repair section takes at most 1/REPAIR_SHARE of the prompt's budget


def repair_section(
    *,
    round: int,
    rounds: int,
    phase: str,
    failure: str,
    previous: str,
    budget: int,
    count: Callable[[list[str]], list[int]],
) -> tuple[str, int]:
    """What a repair round adds to the prompt, and its tokens: the failure and the reply that
    failed, both cut (by halves, up to six times) until the section fits its share of the
    budget, so that the code keeps the rest."""
    texts = []
    for halving in range(7):
        keep = 2**halving
        f = failure if keep == 1 else failure[: len(failure) // keep] + "\n[… cut to fit]"
        p = previous if keep == 1 else previous[: len(previous) // keep] + "\n[… cut to fit]"
        texts.append(
            REPAIR.format(
                round=round, rounds=rounds, phase=phase, failure=f, previous=p or "(nothing)"
            )
        )
    counts = count(texts)
    for text, tokens in zip(texts, counts, strict=True):
        if tokens <= budget // REPAIR_SHARE:
            return text, tokens
    return texts[-1], counts[-1]
