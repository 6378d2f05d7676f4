"""The built-in commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Registry

if TYPE_CHECKING:
    from ..settings import Settings


def default_registry(settings: Settings) -> Registry:
    from . import execute, files, human, web

    commands = [
        files.read_file,
        files.write_file,
        files.append_to_file,
        files.delete_file,
        files.list_files,
        web.web_search,
        web.browse_website,
        execute.execute_python_code,
        execute.execute_python_file,
        human.ask_user,
        human.finish,
    ]
    if settings.shell_enabled:
        commands.insert(-2, execute.execute_shell)
    return Registry(commands)
