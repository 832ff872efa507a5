"""Secrets stay out of what overseer writes: the history, the logs, the events, the prompts,
the commit messages.

The values of environment variables whose names match the policy's `secrets.env` patterns are
replaced by `[secret NAME]` wherever they would appear — a test that prints its environment,
a stack trace with a connection string, a model that echoes what it saw. (Files matching
`secrets.files` are protected paths, so they are neither read into prompts nor changed; a
candidate that tries is recorded with the change to such a file named but not shown — its
diff's context lines would be the secret.)

Redaction happens at the source: every string overseer captures from a target's processes
(test output, JUnit messages and ids, ruff and benchmark output) or from a model (its replies)
goes through `redact()` the moment it is captured, so nothing downstream — a finding, a prompt,
a commit message, an event — ever holds the value. The history, the event bus and the log
handlers redact again on the way out, as a second line. `redact()` uses the process's active
redactor: the runtime installs the one built from its policy; before that (or without one), the
default patterns apply — a capture point can never be left without redaction.

Secret variables are also withheld from the target's own commands (its tests run the code a
model wrote), unless the target lists them in `pass_env`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

MIN_LENGTH = 6  # shorter values ("1", "true") would redact half the world

DEFAULT_SECRET_ENV = [
    "*TOKEN*",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*API_KEY*",
    "*PRIVATE_KEY*",
    "AWS_*",
    "*CREDENTIALS*",
]


def secret_names(patterns: list[str], names: Iterable[str]) -> list[str]:
    upper = [p.upper() for p in patterns]
    return [n for n in names if any(fnmatch.fnmatchcase(n.upper(), p) for p in upper)]


class Redactor:
    def __init__(self, patterns: list[str], environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.configure(patterns)

    def configure(self, patterns: list[str]) -> None:
        """(Re)read the secret values for these patterns: a reloaded policy may name others.
        Everything holding this redactor sees the change."""
        self.patterns = list(patterns)
        #: the names of the variables whose values are secret (any length), for withholding
        self.names = secret_names(self.patterns, self.environ)
        found = {n: self.environ[n] for n in self.names if len(self.environ[n]) >= MIN_LENGTH}
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted(found.items(), key=lambda item: -len(item[1]))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for name, value in self.secrets:
            if value in text:
                text = text.replace(value, f"[secret {name}]")
        return text

    def value(self, value: Any) -> Any:
        """Strings, and the strings inside dicts and lists, redacted."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def __repr__(self) -> str:
        return f"Redactor({[name for name, _ in self.secrets]})"


_active: Redactor | None = None


def install(redactor: Redactor) -> None:
    """Make `redactor` the one every capture point uses (the runtime's, from its policy)."""
    global _active
    _active = redactor


def active() -> Redactor:
    global _active
    if _active is None:
        _active = Redactor(DEFAULT_SECRET_ENV)
    return _active


def redact(text: str) -> str:
    """`text` with every secret value replaced: call it where a string is captured."""
    return active().text(text)


def withheld(env: Mapping[str, str], allowed: Iterable[str] = ()) -> dict[str, str]:
    """`env` without the secret variables, except those `allowed` by name."""
    secret = set(secret_names(active().patterns, env)) - set(allowed)
    return {k: v for k, v in env.items() if k not in secret}


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redactor.text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.text(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


def redact_logs(redactor: Redactor) -> None:
    """Every handler of the root logger drops secret values from what it writes."""
    if not redactor:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
