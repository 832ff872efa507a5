"""Configuration and policy files: the shipped ones are valid, and every bad one is reported
with file, line and key, all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from overseer.base.durations import parse_duration
from overseer.base.problems import ProblemsError
from overseer.config import (
    Approvers,
    DaemonSettings,
    OverseerConfig,
    RunDefaults,
    load_config,
)
from overseer.core.safety.policy import Policy, load_policy
from support.helpers import ROOT


def problems(tmp_path: Path, text: str, loader=load_config) -> list[str]:
    path = tmp_path / "file.yaml"
    path.write_text(text)
    with pytest.raises(ProblemsError) as info:
        loader(path)
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems]


def test_the_shipped_policy_is_the_embedded_default():
    assert load_policy(ROOT / "policies/default.yaml").policy == Policy()


def test_the_shipped_configuration_is_valid_and_its_defaults_are_the_embedded_ones():
    config = load_config(ROOT / "config/overseer.yaml")
    assert config.policy == (ROOT / "policies/default.yaml").resolve()
    assert config.defaults == RunDefaults()
    assert config.defaults.dry_run and config.defaults.require_approval
    assert config.defaults.max_changes_per_run == 1
    assert config.schedule.every == 1800
    assert config.targets[0].test_timeout == 900
    assert config.approvers == Approvers() and config.daemon == DaemonSettings()
    lines = (ROOT / "config/overseer.yaml").read_text().splitlines()
    path_line = next(n for n, line in enumerate(lines, 1) if line.strip() == "path: /srv/myservice")
    file = str((ROOT / "config/overseer.yaml").resolve())
    assert config.where("targets", 0, "path") == (file, path_line)


def test_the_configuration_in_docs_models_is_valid(tmp_path):
    """docs/models.md shows a complete configuration for a local model server: every key in it
    is a real one, with a valid value."""
    import re

    from overseer.config import LLMGenerator, OpenAISettings

    text = (ROOT / "docs/models.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "generators:" in b]
    path = tmp_path / "overseer.yaml"
    path.write_text(block)
    config = load_config(path)
    [llm] = [g for g in config.generators if isinstance(g, LLMGenerator)]
    assert isinstance(llm.llm, OpenAISettings) and llm.llm.api_key_env is None
    assert llm.llm.repair_rounds == 2 and llm.llm.token_budget == 40000
    assert config.targets[0].name == "myservice"


def test_no_file_means_the_safe_defaults():
    config = load_config(None)
    assert config == OverseerConfig()
    assert load_policy(None).policy.autonomy == "supervised"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults:\n  dry_run: perhaps\n", "2: defaults.dry_run: Input should be a valid boolean"),
        ("defaults:\n  dryrun: false\n", "2: defaults.dryrun: unknown key"),
        (
            "schedule:\n  every: soon\n",
            "2: schedule.every: expected a duration such as 30s, 15m or 2h",
        ),
        ("schedule: {every: -5}\n", "1: schedule.every: a duration must be positive"),
        ("targets:\n  - branch: main\n", "2: targets[0].path: Field required"),
        (
            "targets:\n  - path: /x\n    ruff_select: [f401]\n",
            "3: targets[0].ruff_select: not ruff rule codes",
        ),
        ("targets:\n  - path: /x\n    name: 'a b'\n", "3: targets[0].name: use letters, digits"),
        ("targets: [{path: /a/x}, {path: /b/x}]\n", "1: targets: target names must be unique"),
        ("generators: [gpt]\n", "1: generators[0]: Input should be 'ruff_fix' (got 'gpt')"),
        (
            "generators: [{llm: {backend: ctransformers}}]\n",
            "1: generators[0].llm.model_path: Field required",
        ),
        (
            "generators: [{llm: {backend: openai, base_url: x, model: m}}]\n",
            "1: generators[0].llm.base_url: base_url must start with http",
        ),
        ("generators: []\n", "1: generators: list at least one generator"),
        (
            "daemon:\n  max_parallel_cycles: 0\n",
            "2: daemon.max_parallel_cycles: Input should be greater than or equal to 1",
        ),
        (
            "daemon: {max_parallel_cycles: -2}\n",
            "1: daemon.max_parallel_cycles: Input should be greater than or equal to 1",
        ),
        (
            "daemon:\n  max_parallel_cycles: many\n",
            "2: daemon.max_parallel_cycles: Input should be a valid integer",
        ),
        (
            "targets:\n  - path: /x\n    schedule: {every: soon}\n",
            "3: targets[0].schedule.every: expected a duration",
        ),
        ("- just\n- a list\n", "1: expected a mapping of keys at the top, got list"),
        (
            "defaults:\n  area: speed\n",
            "2: defaults.area: Input should be 'performance', 'quality', 'features' or 'auto'",
        ),
        ("policy: [1, 2]\n", "1: policy: Input is not a valid path"),
        ("schedule: {cron: '61 * * * *'}\n", "1: schedule: cron '61 * * * *':"),
        ("daemon: {shutdown_grace: forever}\n", "1: daemon.shutdown_grace: expected a duration"),
        (
            "daemon: {event_queue: 1}\n",
            "1: daemon.event_queue: Input should be greater than or equal to 10",
        ),
        ("approvers: {users: [{a: 1}]}\n", "1: approvers.users[0]"),
        (
            "daemon:\n  max_connections: 0\n",
            "2: daemon.max_connections: Input should be greater than or equal to 1",
        ),
        (
            "daemon: {reserved_for_approvers: -1}\n",
            "1: daemon.reserved_for_approvers: Input should be greater than or equal to 0",
        ),
        ("daemon: {hello_timeout: 0}\n", "1: daemon.hello_timeout: a duration must be positive"),
        (
            "daemon: {max_client_buffer_kb: 4}\n",
            "1: daemon.max_client_buffer_kb: Input should be greater than or equal to 16",
        ),
        (
            "targets:\n  - path: /x\n    evaluate_concurrently: sometimes\n",
            "3: targets[0].evaluate_concurrently: Input should be a valid boolean",
        ),
        (
            "daemon:\n  max_test_runs: 0\n",
            "2: daemon.max_test_runs: Input should be greater than or equal to 1",
        ),
        (
            "daemon: {max_connections: lots}\n",
            "1: daemon.max_connections: Input should be a valid integer",
        ),
    ],
)
def test_bad_configuration(tmp_path, text, expected):
    found = problems(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_at_once_in_line_order(tmp_path):
    found = problems(
        tmp_path,
        "defaults:\n  dry_run: maybe\n  max_changes_per_run: -2\ntargets:\n  - path: /x\n    colour: red\n",
    )
    assert [p.split(":")[0] for p in found] == ["2", "3", "6"]


def test_yaml_syntax_errors_and_duplicate_keys(tmp_path):
    [syntax] = problems(tmp_path, "defaults:\n  dry_run: true\n   area: auto\n")
    assert syntax.startswith("3: YAML syntax:")
    dupes = problems(tmp_path, "defaults: {}\ndefaults: {dry_run: false}\ngenerators: [nope]\n")
    assert dupes[0] == "2: defaults: key appears more than once (the last would win)"
    assert any("generators[0]: Input should be 'ruff_fix'" in p for p in dupes)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ProblemsError, match="file not found"):
        load_config(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProblemsError, match="cannot read"):
        load_config(binary)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "autonomy: yolo\n",
            "1: autonomy: Input should be 'observe', 'supervised', 'limited' or 'full'",
        ),
        (
            "max_changes_per_run: -1\n",
            "1: max_changes_per_run: Input should be greater than or equal to 0",
        ),
        ("size: {max_lines: 0}\n", "1: size.max_lines: Input should be greater than or equal to 1"),
        ("rules:\n  - when: {paths: [x]}\n", "2: rules[0].name: Field required"),
        (
            "rules:\n  - name: a\n    risk: tiny\n",
            "3: rules[0].risk: Input should be 'low', 'medium' or 'high'",
        ),
        ("rules:\n  - name: a\n    verdict: maybe\n", "3: rules[0].verdict:"),
        ("rules:\n  - name: a\n    when: {path: [x]}\n", "3: rules[0].when.path: unknown key"),
        (
            "rules:\n  - name: a\n    risk: high\n  - name: a\n    risk: low\n",
            "4: rules[1].name: rule names must be unique: 'a' is also rules[0]",
        ),
        # ...also when something else is wrong too
        (
            "rules:\n  - name: a\n    risk: tiny\n  - name: a\n    risk: low\n",
            "4: rules[1].name: rule names must be unique",
        ),
        ("rules:\n  - name: a\n    when: {paths: [x]}\n", "2: rules[0]: a rule needs `risk:` or"),
        (
            "size: {medium_lines: 500, high_lines: 10, max_lines: 5}\n",
            "1: size: expected medium_lines ≤ high_lines ≤ max_lines, got 500, 10, 5",
        ),
        (
            "success: {high_below: 0.5, medium_below: 0.3}\n",
            "1: success: high_below (0.5) is above",
        ),
        (
            "rules:\n  - name: a\n    when: {change_type: [refactor]}\n",
            "3: rules[0].when.change_type[0]:",
        ),
        ("protected_paths: .git\n", "1: protected_paths: Input should be a valid list"),
    ],
)
def test_bad_policy(tmp_path, text, expected):
    found = problems(tmp_path, text, loader=load_policy)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds
