"""The question asked before a project's own `.autoagent/hooks.json` is used for the first time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from ..human.hooks_config import find_hooks_file
from ..tools.mcp_trust import ProjectApprovals
from .screen import drop_typed_ahead
from .ui import Quoted, one_line

if TYPE_CHECKING:
    from rich.console import Console

    from ..base.settings import Settings


def ask_about_project_hooks(console: Console, settings: Settings) -> None:
    """When the hooks file is the project's and it has no answer yet, show the commands it
    runs and ask whether to run them; the answer is kept (mcp_trust.py) until the file
    changes. A broken file is the same error as when it is used; an input that ends leaves
    the file unanswered, and so unused."""
    file = find_hooks_file(settings.hooks_file)
    if file is None or not file.project:
        return
    hooks = file.hooks()
    approvals = ProjectApprovals(settings.home)
    if not hooks or approvals.answer(file) is not None:
        return
    console.print(
        Text.assemble(
            "This folder has its own hooks file, ",
            one_line(file.path.resolve()),
            ", which would run, unconfined, as you:",
        )
    )
    lines = []
    for hook in hooks:
        which = f" ({hook.matcher})" if hook.matcher else ""
        lines.append(
            Text.assemble(one_line(f"{hook.event}{which}", "bold"), ": ", one_line(hook.command))
        )
    console.print(Quoted(lines))
    console.print(Text("The answer is kept until the file changes.", style="dim"))
    drop_typed_ahead()
    while True:
        try:
            reply = console.input(Text("Run these hooks? [y/n] ")).strip().lower()
        except EOFError:
            return
        if reply in {"y", "yes", "n", "no"}:
            approvals.remember(file, approved=reply.startswith("y"))
            return
