"""`autoagent mcp`: the MCP servers the agent may use, and the question about a project's own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from .common import load_flags, new_console
from .options import McpConfig, Workspace

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from ..base.settings import Settings

mcp_app = typer.Typer(
    help="See the MCP servers the agent may use.", no_args_is_help=True, rich_markup_mode=None
)


@mcp_app.command("list")
def mcp_list(mcp_config: McpConfig = None, workspace: Workspace = None) -> None:
    """Start each configured MCP server, list its tools with their risk, and stop it.

    Exits with 1 when a server does not start."""
    import tempfile

    from ..agent.runner import check_folders
    from ..tools.commands.mcp import configured_servers
    from ..tools.sandbox import build_sandbox
    from .ui import outside

    console = new_console()
    settings = load_flags(mcp_config=mcp_config, workspace=workspace)
    _, workspace_root = check_folders(settings)
    ask_about_project_servers(console, settings, again=True)
    mcp = configured_servers(settings, workspace_root, build_sandbox(settings, workspace_root))
    for note in mcp.notes:
        console.print(outside(note))
    servers = mcp.servers
    if servers is None:
        if not mcp.notes:
            console.print(
                "No MCP servers: give a config with --mcp-config or AUTOAGENT_MCP_CONFIG, "
                "or put a .mcp.json here."
            )
        return
    with tempfile.TemporaryDirectory() as logs:
        try:
            with console.status("Starting the MCP servers..."):
                servers.start(Path(logs))
            lines = [line for s in servers.servers.values() for line in _mcp_lines(s, servers)]
        finally:
            servers.close()
    for line in lines:
        console.print(line)
    if any(state.status == "failed" for state in servers.servers.values()):
        raise typer.Exit(1)


def ask_about_project_servers(console: Console, settings: Settings, **how: bool) -> None:
    """Ask before a project's own .mcp.json is first used; Ctrl-C there starts nothing."""
    from .project_mcp import ask_about_project_servers

    try:
        ask_about_project_servers(console, settings, **how)
    except KeyboardInterrupt:
        console.print("\nNothing started.")
        raise typer.Exit(1) from None


def _mcp_lines(state: Any, servers: Any) -> list[Text]:
    """A server of `mcp list`: where it is, whether it started, its tools and their risk."""
    from rich.text import Text

    from ..tools.commands.mcp import tool_commands, tools
    from .ui import RISK_STYLES, one_line, outside

    config = state.config
    where = one_line(config.url or " ".join([config.command, *config.args]))
    if state.status == "failed":
        name = one_line(state.name, "bold red")
        return [Text.assemble(name, " (", where, "): did not start: ", outside(state.reason))]
    commands, skipped = tool_commands(state, servers)
    name = one_line(state.name, "bold green")
    lines = [Text.assemble(name, " (", where, f"): started, {tools(len(commands))}")]
    for cmd in commands:
        risk = (cmd.risk.value, RISK_STYLES[cmd.risk])
        lines.append(
            Text.assemble("  ", one_line(cmd.name), " (", risk, "): ", outside(cmd.description))
        )
    lines.extend(
        Text.assemble("  ", one_line(s.command), " left out: ", outside(s.reason)) for s in skipped
    )
    return lines
