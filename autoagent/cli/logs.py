"""Logging: warnings to the terminal, and with --debug everything to the run's debug.log; every
record rid of the secrets it may quote."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..base.settings import Settings

# Libraries whose records go to the debug log only: the MCP SDK logs a traceback for each line
# a server writes on stdout that is not a message (mcp_client.py says so once, as a note);
# OpenTelemetry's exporter, each failed attempt to reach the collector (said once, at exit).
_NOT_ON_SCREEN = ("mcp", "opentelemetry")


class _ScreenFormatter(logging.Formatter):
    """Log lines for the terminal: what they quote from outside cannot drive it."""

    def format(self, record: logging.LogRecord) -> str:
        from ..base.text import strip_terminal_escapes

        return strip_terminal_escapes(super().format(record))


def configure_logging(settings: Settings) -> None:
    """Warnings to the terminal; with --debug, everything to the run's debug.log as well
    (`_log_to_file`, once the run has a folder). Done once per process. Every record, also a
    library's, is rid of the secrets it may quote (redact.py) before either sees it."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if settings.debug else logging.WARNING)
    for noisy in ("httpx", "httpcore", "openai", "chromadb", "urllib3", "primp"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not settings.debug else logging.INFO)
    if any(handler.get_name() == "autoagent-screen" for handler in root.handlers):
        return
    screen = logging.StreamHandler(sys.stderr)
    screen.set_name("autoagent-screen")
    screen.setLevel(logging.WARNING)
    screen.setFormatter(_ScreenFormatter("%(levelname)s %(name)s: %(message)s"))
    screen.addFilter(_redacting(settings))
    screen.addFilter(_shown_on_screen)
    root.addHandler(screen)


def _shown_on_screen(record: logging.LogRecord) -> bool:
    return not any(
        record.name == name or record.name.startswith(name + ".") for name in _NOT_ON_SCREEN
    )


def _redacting(settings: Settings) -> logging.Filter:
    from ..base.redact import RedactingFilter

    # The webhook's whole path may be its secret (an ntfy topic).
    return RedactingFilter([settings.notify_url] if settings.notify_url else [])


def log_to_file(log_file: Path, settings: Settings) -> None:
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_redacting(settings))
    logging.getLogger().addHandler(handler)
