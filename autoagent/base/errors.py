"""The one exception tree of autoagent. Every message says how to fix the problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic stays unimported until needed: `autoagent --help` is faster
    from pydantic import ValidationError


class AutoAgentError(Exception):
    """Base of every error the harness raises on purpose; the CLI catches it once."""


class ConfigError(AutoAgentError):
    """A setting, flag or profile is missing or invalid."""


class ModelError(AutoAgentError):
    """The model endpoint could not be used (unreachable, refused, unknown model)."""


class ReplyError(AutoAgentError):
    """The model kept replying with something that is not the expected JSON."""


class MemoryStoreError(AutoAgentError):
    """The vector memory could not be opened, read or written."""


class JournalError(AutoAgentError):
    """A run's journal or checkpoint could not be read or written."""


class SnapshotError(AutoAgentError):
    """The workspace could not be captured or put back (a full disk, an unreadable store)."""


class InputEnded(AutoAgentError):
    """The human's input ended (end of file) while they were asked something: the run stops,
    and can be resumed."""


class WorkspaceGone(AutoAgentError):
    """The workspace folder is no longer there: the run stops, resumably, rather than make an
    empty one that the user may have removed on purpose."""

    def __init__(self, root: object) -> None:
        super().__init__(f"The workspace {root} was removed during the run")
        self.root = root


class CommandError(AutoAgentError):
    """A command failed; its message becomes an observation for the model."""


class RefusedError(CommandError):
    """A command was refused by the sandbox or by policy; nothing ran."""


def not_utf8(path: object, exc: UnicodeDecodeError) -> str:
    """The sentence for a file that is not UTF-8 text."""
    return (
        f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start}): "
        "save it as UTF-8."
    )


def describe_validation(exc: ValidationError, rename: Callable[[str], str] = str) -> str:
    """`field: problem; ...` for a pydantic error; `rename` maps a field to the user's word."""
    parts = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        where = ".".join([rename(loc[0]), *loc[1:]]) if loc else rename("")
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
