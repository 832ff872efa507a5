"""How overseer's log lines look: plain lines on a terminal, JSON lines otherwise (journald,
pipes). Set up by the CLI once a command works on its own (not for a command that only asks
the daemon: importing `logging` is a tenth of such a command's start)."""

from __future__ import annotations

import json
import logging
import sys

from overseer.base.terminal import visible


class PlainLines(logging.Formatter):
    """For a terminal: what a log line quotes (a file name, a reason) is shown, not acted on."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), lines=True)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # JSON escapes C0 controls itself; C1 controls and bidi overrides it would not.
            "message": visible(record.getMessage(), lines=True),
        }
        if record.exc_info:
            data["exception"] = visible(self.formatException(record.exc_info), lines=True)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(debug: bool, level: int = logging.WARNING) -> None:
    """Plain lines to a terminal; JSON lines otherwise (journald, pipes)."""
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(PlainLines("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else level)
    # APScheduler narrates every job at INFO; our own lines say what matters.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if debug else logging.WARNING)
