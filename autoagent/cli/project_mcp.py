"""The question asked before a project's own `.mcp.json` is used for the first time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from ..tools.mcp_config import command_line, find_config
from ..tools.mcp_trust import ProjectApprovals
from .screen import drop_typed_ahead
from .ui import Quoted, one_line

if TYPE_CHECKING:
    from rich.console import Console

    from ..base.settings import Settings


def ask_about_project_servers(console: Console, settings: Settings, *, again: bool = False) -> None:
    """When the MCP config is the project's `.mcp.json` and it has no answer yet (or a no,
    when `again`), show what its servers start and ask whether to use them; the answer is
    kept (mcp_trust.py). An input that ends leaves the file unanswered, and so unused."""
    file = find_config(settings.mcp_config)
    if file is None or not file.project:
        return
    approvals = ProjectApprovals(settings.home)
    answer = approvals.answer(file)
    if answer is not None and (answer.approved or not again):
        return
    entries = file.entries()  # a broken file is the same error as when it is used
    if not entries:
        return
    console.print(
        Text.assemble(
            "This folder has its own MCP config, ",
            one_line(file.path.resolve()),
            ", whose servers would start as:",
        )
    )
    console.print(
        Quoted(
            Text.assemble(one_line(name, "bold"), ": ", one_line(command_line(entry)))
            for name, entry in entries.items()
        )
    )
    console.print(
        Text(
            "Its ${VAR} read only the variables named in AUTOAGENT_MCP_ENV, and its tools are "
            "high risk whatever it says. The answer is kept until the file changes.",
            style="dim",
        )
    )
    drop_typed_ahead()
    while True:
        try:
            reply = console.input(Text("Use these MCP servers? [y/n] ")).strip().lower()
        except EOFError:
            return
        if reply in {"y", "yes", "n", "no"}:
            approvals.remember(file, approved=reply.startswith("y"))
            return
