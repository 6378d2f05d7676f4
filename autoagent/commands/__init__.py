"""The built-in commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Registry

if TYPE_CHECKING:
    from ..settings import Settings


def default_registry(settings: Settings) -> Registry:
    from .execute import EXECUTE_COMMANDS, execute_shell
    from .files import FILE_COMMANDS
    from .human import ask_user, finish
    from .web import WEB_COMMANDS

    execute = [c for c in EXECUTE_COMMANDS if settings.shell_enabled or c is not execute_shell]
    return Registry([*FILE_COMMANDS, *WEB_COMMANDS, *execute, ask_user, finish])
