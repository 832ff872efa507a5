"""The documentation a person reads is true to the code: every overseer command its code
blocks (and inline code) show exists with the options shown, every `make` target exists,
every link and repository path leads somewhere in the repository, the TUI's legend in
docs/tui.md is the one the TUI shows, and the README's minimal configuration is valid."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from overseer.cli import main
from support.helpers import ROOT, init_repo

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# Paths in the repository named in inline code: they must exist.
REPO_PATH = re.compile(r"^(?:src|tests|docs|bench|config|policies|systemd)/[\w./-]*$")
SHELL_LANGS = {"sh", "shell", "bash", "console", ""}


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def without_fences(text: str) -> str:
    return FENCE.sub("", text)


def command_lines(text: str) -> list[str]:
    """Shell lines of the code blocks: every line of a shell block, `$ …` lines elsewhere."""
    lines = []
    for lang, body in FENCE.findall(text):
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                lines.append(line[2:])
            elif lang in SHELL_LANGS and lang != "" and line and not line.startswith("#"):
                lines.append(line)
    # Inline code that is a whole overseer command line, in the prose and the tables.
    for span in INLINE.findall(without_fences(text)):
        if re.match(r"^(?:\.venv/bin/)?overseer [a-z][a-z-]*(?: |$)", span):
            lines.append(span)
    return lines


def segments(line: str) -> list[list[str]]:
    """The simple commands of a shell line, as words (comments, `&`, `&&`, `;`, `|` split)."""
    line = re.sub(r"\s#\s.*$", "", line)
    out = []
    for part in re.split(r"&&|;|\|\||\||&", line):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        if words:
            out.append(words)
    return out


def resolve(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The click command the words name, the names walked, and the words after them."""
    command: click.Command = main
    walked: list[str] = []
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(main), rest[0])
        if sub is None:
            break
        command, walked = sub, [*walked, rest.pop(0)]
    return command, walked, rest


def option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def overseer_invocations() -> list[tuple[str, str, list[str]]]:
    found = []
    for doc in DOCS:
        for line in command_lines(doc.read_text()):
            for words in segments(line):
                if words[0] in ("overseer", ".venv/bin/overseer"):
                    found.append((doc_id(doc), line, words[1:]))
    return found


def test_the_docs_show_overseer_commands_at_all():
    """The collection itself works: the README's quickstart commands are among them."""
    shown = {" ".join(resolve(words)[1]) for _, _, words in overseer_invocations()}
    assert {"run", "approve", "rollback", "daemon", "tui", "config check"} <= shown, shown


@pytest.mark.parametrize(
    ("doc", "line", "words"),
    overseer_invocations(),
    ids=[f"{doc}: {line}" for doc, line, _ in overseer_invocations()],
)
def test_every_overseer_command_shown_exists_with_its_options(doc, line, words):
    command, walked, rest = resolve(words)
    assert walked, f"{doc}: `{line}` names no overseer command"
    if isinstance(command, click.Group):
        assert not rest or rest[0].startswith("-"), f"{doc}: no subcommand {rest[0]!r} in {line}"
    known = option_names(command)
    for word in rest:
        word = word.strip("[]")
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{doc}: {' '.join(walked)} has no {word}"
    result = CliRunner().invoke(main, [*walked, "--help"])
    assert result.exit_code == 0, result.output


def make_targets_shown() -> set[str]:
    shown = set()
    for doc in DOCS:
        text = doc.read_text()
        spans = INLINE.findall(without_fences(text))
        blocks = [line.strip() for _, body in FENCE.findall(text) for line in body.splitlines()]
        for code in [*spans, *blocks]:
            shown.update(re.findall(r"^make ([a-z][\w-]*)", code))
    return shown


def test_every_make_target_shown_exists():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    shown = make_targets_shown()
    assert {"demo", "test"} <= shown, shown
    assert shown <= targets, shown - targets


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", without_fences(doc.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def links() -> list[tuple[str, str]]:
    return [
        (doc_id(doc), target)
        for doc in DOCS
        for target in LINK.findall(without_fences(doc.read_text()))
    ]


@pytest.mark.parametrize(("doc", "target"), links(), ids=[f"{d}: {t}" for d, t in links()])
def test_every_link_leads_somewhere_in_the_repository(doc, target):
    assert not target.startswith(("http://", "https://")), f"{doc}: a link outside: {target}"
    path, _, fragment = target.partition("#")
    file = (ROOT / doc).parent / path if path else ROOT / doc
    assert file.exists(), f"{doc}: {target} does not exist"
    assert file.resolve().is_relative_to(ROOT), f"{doc}: {target} is outside the repository"
    if fragment:
        assert file.suffix == ".md" and fragment in anchors(file), f"{doc}: no #{fragment}"


def test_every_repository_path_named_exists_and_no_outside_file_is_cited():
    missing = []
    for doc in DOCS:
        for span in INLINE.findall(without_fences(doc.read_text())):
            span = span.strip()
            if REPO_PATH.match(span) and not (ROOT / span).exists():
                missing.append(f"{doc_id(doc)}: {span}")
            if re.fullmatch(r"[\w./-]+\.md", span) and not any(
                (base / span).exists() for base in (ROOT, ROOT / "docs")
            ):
                missing.append(f"{doc_id(doc)}: {span}")
        for name in re.findall(r"\b([A-Z][A-Z_]+\.md)\b", doc.read_text()):
            if not (ROOT / name).exists():
                missing.append(f"{doc_id(doc)}: {name}")
    assert missing == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A missing command, option, file and anchor are found (the checks can fail)."""
    assert not resolve(["nosuch"])[1]
    command, walked, _ = resolve(["policy", "explain", "ID"])
    assert walked == ["policy", "explain"] and "--reason" not in option_names(command)
    assert "--no-dry-run" in option_names(resolve(["run", "--once"])[0])
    doc = tmp_path / "x.md"
    doc.write_text("# A heading — with words\n")
    assert anchors(doc) == {"a-heading--with-words"}
    assert [t for t in LINK.findall("see [a](docs/x.md#b) and ![i](p.svg)")] == [
        "docs/x.md#b",
        "p.svg",
    ]
    assert command_lines("`overseer (post-promotion watch)` and `overseer show ID`") == [
        "overseer show ID"
    ]


def test_the_legend_in_the_docs_is_the_one_the_tui_shows():
    from overseer.tui.legend import legend_text

    text = (ROOT / "docs" / "tui.md").read_text()
    shown = re.search(r"<!-- legend -->\n```text\n(.*?)```\n<!-- /legend -->", text, re.DOTALL)
    assert shown, "docs/tui.md has no legend block"
    generated = "\n".join(line.rstrip() for line in legend_text(96).splitlines()).rstrip()
    assert shown.group(1).rstrip() == generated, (
        "regenerate the block in docs/tui.md from overseer.tui.legend.legend_text(96)"
    )


def test_the_readme_minimal_configuration_is_valid(tmp_path):
    from overseer.checks import check_config

    readme = (ROOT / "README.md").read_text()
    [config] = [body for lang, body in FENCE.findall(readme) if lang == "yaml"]
    data = yaml.safe_load(config)
    repo = init_repo(tmp_path / "myservice")
    data["targets"][0]["path"] = str(repo)
    file = tmp_path / "overseer.yaml"
    file.write_text(yaml.safe_dump(data))
    assert [str(p) for p in check_config(file)] == []
