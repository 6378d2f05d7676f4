"""The user's answers about projects' own MCP configs and hooks files, kept in AUTOAGENT_HOME.

A `.mcp.json` (or `.autoagent/hooks.json`) found in the folder a run starts in comes with the
project, not from the user: its servers start (its hooks run) only once the user has said yes
to it. An answer holds for that file with that content (its full path and sha256 digest); a
changed or moved file is asked about again.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..base.errors import ConfigError

FILE_NAME = "mcp-approvals.json"


class ConfigFile(Protocol):
    """A project's file as read: an MCP config (mcp_config.py) or a hooks file."""

    @property
    def path(self) -> Path: ...

    @property
    def digest(self) -> str: ...


@dataclass(frozen=True)
class Answer:
    approved: bool
    date: str  # when it was given, YYYY-MM-DD


def not_used_note(
    what: str, file: ConfigFile, answer: Answer | None, continuous: bool, how: str
) -> str:
    """Why a project's file (`what`: "MCP config", "hooks file") is not used, in one sentence;
    `how`: where the user is asked about it, and how to use it as their own."""
    if answer is not None:
        why = f", as you answered on {answer.date}"
    elif continuous:
        why = ": it was never approved, and a continuous run asks no one"
    else:
        why = ": it was not approved"
    return f"The project's {what} {file.path} is left out{why} ({how})."


class ProjectApprovals:
    """The answers, by file; a damaged record counts as no answer (the user is asked again)."""

    def __init__(self, home: Path) -> None:
        self.path = home.expanduser() / FILE_NAME

    def answer(self, file: ConfigFile) -> Answer | None:
        entry = self._read().get(_key(file))
        if not isinstance(entry, dict) or entry.get("sha256") != file.digest:
            return None
        approved = entry.get("approved")
        return Answer(approved, str(entry.get("date", "?"))) if isinstance(approved, bool) else None

    def remember(self, file: ConfigFile, approved: bool) -> None:
        answers = self._read()
        answers[_key(file)] = {
            "sha256": file.digest,
            "approved": approved,
            "date": time.strftime("%Y-%m-%d"),
        }
        text = json.dumps(answers, indent=1, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, prefix=".mcp-approvals-", delete=False
            ) as out:
                out.write(text)
            os.replace(out.name, self.path)
        except OSError as exc:
            raise ConfigError(
                f"Cannot keep the answer about {file.path} in {self.path}: {exc.strerror}. "
                "Check that AUTOAGENT_HOME is writable."
            ) from exc

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _key(file: ConfigFile) -> str:
    return str(file.path.resolve())
