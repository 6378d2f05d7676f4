"""What every command of the CLI starts from: a console, the settings, one way to fail."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..base.settings import Settings


def new_console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(highlight=False, stderr=stderr)


def fail(console: Console, error: Exception) -> None:
    from .ui import labelled, outside

    console.print(labelled("Error: ", "bold red", outside(error)))
    sys.exit(1)


def load_flags(**flags: Any) -> Settings:
    """The settings, with the flags given on the command line on top."""
    from ..base.settings import load_settings

    return load_settings(flags)
