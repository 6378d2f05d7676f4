"""The built-in commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Command, Registry

if TYPE_CHECKING:
    from ...base.settings import Settings


def builtin_commands() -> list[Command]:
    """Every built-in command, whether the settings enable it or not."""
    from .execute import EXECUTE_COMMANDS
    from .files import FILE_COMMANDS
    from .human import ask_user, finish
    from .web import WEB_COMMANDS

    return [*FILE_COMMANDS, *WEB_COMMANDS, *EXECUTE_COMMANDS, ask_user, finish]


READ_ONLY_REASON = "a read-only run offers only commands that change nothing"


def default_registry(settings: Settings) -> Registry:
    """The built-in commands the settings offer; in a read-only run, a proposal of another
    one is told it is not available (and nothing runs)."""
    registry = Registry(c for c in builtin_commands() if c.offered_in(settings))
    if settings.read_only:
        for cmd in builtin_commands():
            if not cmd.read_only:
                registry.leave_out(cmd.name, READ_ONLY_REASON)
    return registry
