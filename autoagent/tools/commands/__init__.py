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


def default_registry(settings: Settings) -> Registry:
    """The built-in commands that the settings turn on."""
    return Registry(c for c in builtin_commands() if c.enabled_in(settings))
