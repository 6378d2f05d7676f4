"""The hooks file: the user's own commands to run around each command and when the run ends,
in the shape Claude Code and Codex read.

    {"hooks": {"PreToolUse": [{"matcher": "delete_file|write_.*",
                               "hooks": [{"type": "command", "command": "...", "timeout": 10}]}],
               "PostToolUse": [...], "Stop": [...]}}

The file is `AUTOAGENT_HOOKS_FILE` (the user's), else `.autoagent/hooks.json` in the folder the
run starts in (the project's, used once the user has said yes to it). A matcher is a regular
expression over command names, matched whole; empty or `*` matches every command.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..base.errors import ConfigError, describe_validation

DEFAULT_FILE = Path(".autoagent") / "hooks.json"
DEFAULT_TIMEOUT = 60.0  # seconds, as in Claude Code
MATCH_ALL = {"", "*"}


class HookEvent(StrEnum):
    PRE = "PreToolUse"  # before a command runs: may allow, deny or ask
    POST = "PostToolUse"  # after it ran: gets its result
    STOP = "Stop"  # when the run ends


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CommandEntry(_Strict):
    type: Literal["command"]
    command: str = Field(min_length=1)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=3600)


class _Group(_Strict):
    matcher: str = ""
    hooks: list[_CommandEntry]


class _HooksFileModel(_Strict):
    hooks: dict[HookEvent, list[_Group]]


@dataclass(frozen=True)
class Hook:
    """One command of the file, for one event."""

    event: HookEvent
    command: str
    timeout: float
    matcher: str = ""

    def matches(self, name: str) -> bool:
        return self.matcher in MATCH_ALL or re.fullmatch(self.matcher, name) is not None


@dataclass(frozen=True)
class HooksFile:
    """A hooks file as read, once: what the user approved (its digest) is what is used."""

    path: Path
    content: bytes
    project: bool  # found in the folder (the project's), not named by the user

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def hooks(self) -> tuple[Hook, ...]:
        """Every hook of the file; ConfigError, in one sentence, for a file that would not be
        obeyed as written."""
        try:
            data = json.loads(self.content.decode("utf-8"))
            model = _HooksFileModel.model_validate(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._error(f"it is not JSON ({exc})") from exc
        except ValidationError as exc:
            raise self._error(describe_validation(exc)) from exc
        found: list[Hook] = []
        for event, groups in model.hooks.items():
            for group in groups:
                if event is HookEvent.STOP and group.matcher not in MATCH_ALL:
                    raise self._error("a Stop hook takes no matcher (it runs once, at the end)")
                if group.matcher not in MATCH_ALL:
                    try:
                        re.compile(group.matcher)
                    except re.error as exc:
                        raise self._error(
                            f"the {event} matcher {group.matcher!r} is not a regular "
                            f"expression ({exc})"
                        ) from exc
                found += [Hook(event, e.command, e.timeout, group.matcher) for e in group.hooks]
        return tuple(found)

    def _error(self, problem: str) -> ConfigError:
        return ConfigError(
            f"The hooks file {self.path} cannot be used: {problem}. It maps PreToolUse, "
            'PostToolUse and Stop to lists of {"matcher": ..., "hooks": [{"type": "command", '
            '"command": ..., "timeout": ...}]} (see the README).'
        )


def find_hooks_file(given: Path | None) -> HooksFile | None:
    """The file to use: the one given (the user's), else `.autoagent/hooks.json` here if
    there is one (the project's)."""
    if given is not None:
        return _read(given.expanduser(), project=False)
    return _read(DEFAULT_FILE, project=True) if DEFAULT_FILE.is_file() else None


def _read(path: Path, *, project: bool) -> HooksFile:
    try:
        return HooksFile(path, path.read_bytes(), project)
    except OSError as exc:
        raise ConfigError(
            f"The hooks file {path} cannot be read ({exc.strerror}); check AUTOAGENT_HOOKS_FILE."
        ) from exc
