"""The question asked before a project's own `.mcp.json` is used for the first time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from ..base.errors import ConfigError
from ..base.settings import process_environment
from ..tools.mcp_config import ConfigFile, command_line, find_config, load_servers
from ..tools.mcp_trust import ProjectApprovals
from .screen import drop_typed_ahead
from .ui import Quoted, one_line

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from ..base.settings import Settings


def shown_paths(file: ConfigFile, settings: Settings) -> dict[str, tuple[Path, ...]]:
    """The paths each server's sandbox would show it read-only, by server; none for a file
    that cannot be used as it is (that error comes when it is used)."""
    try:
        servers = load_servers(file, process_environment(), variables=settings.mcp_env)
    except ConfigError:
        return {}
    workspace = settings.workspace.expanduser().resolve()
    return {server.name: server.shown_paths(workspace) for server in servers}


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
    shown = shown_paths(file, settings)
    lines: list[Text] = []
    for name, entry in entries.items():
        lines.append(Text.assemble(one_line(name, "bold"), ": ", one_line(command_line(entry))))
        if shown.get(name):
            paths = ", ".join(str(path) for path in shown[name])
            lines.append(Text.assemble("  reads: ", one_line(paths)))
    console.print(Quoted(lines))
    console.print(
        Text(
            "Its ${VAR} read only the variables named in AUTOAGENT_MCP_ENV, and its tools are "
            "high risk whatever it says. Of this folder, a server sees only what it reads, "
            "read-only. The answer is kept until the file changes.",
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
