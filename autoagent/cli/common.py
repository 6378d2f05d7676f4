"""What every command of the CLI starts from: a console, the settings, one way to fail."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..base.settings import Settings


def new_console(*, stderr: bool = False, settled: bool = False) -> Console:
    """A console for the terminal. `settled`: its size and kind found once, not at each print
    (a long printout, `show`, goes about a third faster; a resized window is not followed)."""
    from rich.console import Console

    console = Console(highlight=False, stderr=stderr)
    if not settled:
        return console
    return Console(
        highlight=False,
        stderr=stderr,
        width=console.width,
        height=console.height,
        force_terminal=console.is_terminal,
        color_system=console.color_system,  # type: ignore[arg-type]
    )


def fail(console: Console, error: Exception) -> None:
    from .ui import labelled, outside

    console.print(labelled("Error: ", "bold red", outside(error)))
    sys.exit(1)


def load_flags(**flags: Any) -> Settings:
    """The settings, with the flags given on the command line on top."""
    from ..base.settings import load_settings

    return load_settings(flags)
