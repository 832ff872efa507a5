"""Secrets stay out of what overseer writes: the history, the logs, the events, the prompts.

The values of environment variables whose names match the policy's `secrets.env` patterns are
replaced by `[secret NAME]` wherever they would appear — a test that prints its environment,
a stack trace with a connection string. (Files matching `secrets.files` are protected paths, so
they are neither read into prompts nor changed; a candidate that tries is recorded with the
change to such a file named but not shown — its diff's context lines would be the secret.)
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Mapping
from typing import Any

MIN_LENGTH = 6  # shorter values ("1", "true") would redact half the world


class Redactor:
    def __init__(self, patterns: list[str], environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        upper = [p.upper() for p in patterns]
        found = {
            name: value
            for name, value in env.items()
            if len(value) >= MIN_LENGTH and any(fnmatch.fnmatchcase(name.upper(), p) for p in upper)
        }
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
