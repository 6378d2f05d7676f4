"""The tools of MCP servers as commands named `mcp__SERVER__TOOL`.

Each tool keeps its description and input schema; the arguments are checked against that
schema before anything is sent. What a tool returns is untrusted data: its text is cleaned of
escape sequences, capped like program output and marked as data for the model; structured
content is shown as JSON; images, audio and other binary content are described, never shown.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...base.errors import CommandError, ConfigError
from ...base.settings import Settings, process_environment
from ...base.text import mark_untrusted, strip_terminal_escapes, trim_middle
from ..mcp_client import McpServers, ServerState
from ..mcp_config import ConfigFile, find_config, load_servers
from ..mcp_trust import ProjectApprovals, not_used_note
from .base import (
    Command,
    CommandContext,
    InvalidArguments,
    Registry,
    Risk,
    SchemaArguments,
    Withdrawal,
)

if TYPE_CHECKING:
    from mcp_types import CallToolResult, Tool

    from ..sandbox import Sandbox

log = logging.getLogger(__name__)

PREFIX = "mcp"
DESCRIPTION_CHARS = 500  # of a tool's description, in the prompt
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def command_name(server: str, tool: str) -> str:
    return f"{PREFIX}__{server}__{tool}"


@dataclass(frozen=True)
class Skipped:
    """A tool left out, and why (shown by `autoagent mcp list` and when the run starts)."""

    command: str
    reason: str


@dataclass
class McpSetup:
    """The servers a run uses (None: none), notes for the human about them, and the names of
    the servers of a project's file that is left out (a policy may name them)."""

    servers: McpServers | None = None
    notes: list[str] = field(default_factory=list)
    left_out: tuple[str, ...] = ()


def configured_servers(settings: Settings, workspace: Path, sandbox: Sandbox | None) -> McpSetup:
    """The servers of the MCP config, checked but not started. Those started as programs run
    in `sandbox`.

    A project's own `.mcp.json` (not named by the user) is used only once the user approved
    it (mcp_trust.py); its `${VAR}` read only the variables of AUTOAGENT_MCP_ENV, and it
    cannot lower a risk. A read-only run uses only the servers of low risk. Raises ConfigError
    for a bad config or a server program that cannot be found."""
    file = find_config(settings.mcp_config)
    if file is None:
        return McpSetup()
    notes: list[str] = []
    if file.project:
        answer = ProjectApprovals(settings.home).answer(file)
        if answer is None or not answer.approved:
            how = f"`autoagent mcp list` asks you; --mcp-config {file.path} uses it as your own"
            note = not_used_note("MCP config", file, answer, settings.continuous, how)
            return McpSetup(notes=[note], left_out=_names(file))
    variables = settings.mcp_env if file.project else None
    configs = load_servers(file, process_environment(), variables=variables)
    if file.project:
        for config in [c for c in configs if c.risk is not Risk.HIGH]:
            notes.append(
                f"The project's {file.path} gives {config.name!r} {config.risk} risk, which a "
                "project's own file cannot do: its tools are high risk (a file you name with "
                "--mcp-config can lower it)."
            )
        configs = [replace(c, risk=Risk.HIGH) for c in configs]
    if settings.read_only:
        for config in [c for c in configs if c.risk is not Risk.LOW]:
            notes.append(
                f"The MCP server {config.name!r} is left out: a read-only run uses only the "
                f"servers of low risk, and its risk is {config.risk}."
            )
        configs = [c for c in configs if c.risk is Risk.LOW]
    if not configs:
        return McpSetup(notes=notes)
    servers = McpServers(
        configs,
        workspace=workspace,
        startup_timeout=settings.mcp_startup_timeout,
        call_timeout=settings.command_timeout,
        sandbox=sandbox,
        env_allowed=settings.child_env,
    )
    servers.check()
    return McpSetup(servers, notes)


def _names(file: ConfigFile) -> tuple[str, ...]:
    try:
        return tuple(file.entries())
    except ConfigError:  # a file left out is not read any further
        return ()


def attach_servers(registry: Registry, servers: McpServers, log_dir: Path) -> list[str]:
    """Start the servers and add their tools to `registry`; return notes for the human.

    A server that does not start is left out, and the run goes on without it."""
    registry.attach(McpTools(servers), [])
    servers.start(log_dir)
    notes = []
    for state in servers.servers.values():
        if state.status != "ready":
            notes.append(
                f"The MCP server {state.name!r} did not start ({state.reason}); "
                "its tools are left out."
            )
            continue
        commands, skipped = tool_commands(state, servers)
        for cmd in list(commands):
            if cmd.name in registry:  # a guard: server names keep them unique (mcp_config.py)
                commands.remove(cmd)
                skipped.append(Skipped(cmd.name, "another command has the same name"))
            else:
                registry.add(cmd)
        risk = state.config.risk
        notes.append(f"MCP server {state.name!r}: {tools(len(commands))}, {risk} risk.")
        if stray := servers.stray_note(state.name):
            notes.append(stray)
        for left_out in skipped:
            registry.leave_out(left_out.command, left_out.reason)
            notes.append(f"The MCP tool {left_out.command} is left out: {left_out.reason}.")
    return notes


def tools(count: int) -> str:
    return f"{count} tool{'' if count == 1 else 's'}"


def tool_commands(state: ServerState, servers: McpServers) -> tuple[list[Command], list[Skipped]]:
    """The commands for a ready server's tools, after includeTools and excludeTools."""
    config = state.config
    commands: list[Command] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for tool in state.tools:
        name = command_name(config.name, tool.name)
        if not config.wants(tool.name):
            continue
        if not _TOOL_NAME.match(tool.name) or name in seen:
            skipped.append(Skipped(name, "its name is not usable or not unique"))
            continue
        try:
            arguments = SchemaArguments(tool.input_schema)
        except InvalidArguments as exc:
            skipped.append(Skipped(name, f"its input schema cannot be used ({exc})"))
            continue
        seen.add(name)
        commands.append(
            Command(
                name=name,
                description=_description(tool),
                risk=config.risk,
                function=_caller(servers, config.name, tool.name),
                arguments=arguments,
                # A tool from elsewhere is approved like any command, never ends the run
                # and counts as no file made: it says nothing the loop could trust.
                asks_human=False,
                ends_run=False,
                makes_files=False,
            )
        )
    return commands, skipped


def _description(tool: Tool) -> str:
    text = " ".join(strip_terminal_escapes(tool.description or tool.title or "").split())
    return trim_middle(text, DESCRIPTION_CHARS) or f"The MCP tool {tool.name}."


def _caller(servers: McpServers, server: str, tool: str) -> Any:
    def call(ctx: CommandContext, /, **args: Any) -> str:  # a tool may have an argument "ctx"
        result = servers.call(server, tool, args)
        answer = observation(ctx, command_name(server, tool), result)
        stray = servers.stray_note(server)  # for the human, as the run goes on
        return f"{answer}\n{stray}" if stray else answer

    return call


def observation(ctx: CommandContext, name: str, result: CallToolResult) -> str:
    """What the model is told of a tool's result; CommandError for a result marked isError."""
    text = strip_terminal_escapes(result_text(result)).rstrip("\n") or "(no content)"
    limit = ctx.settings.max_output_bytes
    note = ""
    if len(text) > limit:
        saved = ctx.run_dir / "outputs" / f"{datetime.now():%Y%m%d-%H%M%S-%f}_{name}.txt"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(text, encoding="utf-8")
        note = (
            f" The result was {len(text):,} characters: only its start and end are shown (the "
            "full result is saved for the human)."
        )
        text = trim_middle(text, limit)
    wrapped = mark_untrusted(f"the MCP tool {name}", text)
    if result.is_error:
        raise CommandError(f"{name} reported an error.{note}\n{wrapped}")
    return f"{name} answered.{note}\n{wrapped}"


def result_text(result: CallToolResult) -> str:
    """Text blocks as they are, structured content as JSON (unless the text already says the
    same), and every other block described by its type and size."""
    texts: list[str] = []
    others: list[str] = []
    for block in result.content:
        kind = block.type
        if kind == "text":
            texts.append(block.text)  # type: ignore[union-attr]
        elif kind in {"image", "audio"}:
            size = _decoded_size(block.data)  # type: ignore[union-attr]
            mime = block.mime_type  # type: ignore[union-attr]
            others.append(f"[{kind} content: {mime}, {size:,} bytes; not shown]")
        elif kind == "resource":
            resource = block.resource  # type: ignore[union-attr]
            if hasattr(resource, "text"):
                texts.append(f"[resource {resource.uri}]\n{resource.text}")
            else:
                mime = resource.mime_type or "binary"
                size = _decoded_size(resource.blob)
                others.append(f"[resource {resource.uri}: {mime}, {size:,} bytes; not shown]")
        elif kind == "resource_link":
            mime = f", {block.mime_type}" if block.mime_type else ""  # type: ignore[union-attr]
            others.append(f"[link to the resource {block.uri}{mime}]")  # type: ignore[union-attr]
        else:
            others.append(f"[{kind} content; not shown]")
    structured = result.structured_content
    if structured is not None and not _says_the_same(texts, structured):
        texts.append(json.dumps(structured, ensure_ascii=False, indent=1))
    return "\n".join(texts + others)


def _says_the_same(texts: list[str], structured: Any) -> bool:
    """Whether the text blocks are the structured content serialized (as the spec advises)."""
    if not texts:
        return False
    joined = "\n".join(texts)
    try:
        parsed = json.loads(joined)
    except ValueError:
        parsed = joined
    if parsed == structured:
        return True
    # Servers wrap a plain return value as {"result": value}.
    return (
        isinstance(structured, dict)
        and structured.keys() == {"result"}
        and (parsed == structured["result"] or joined == str(structured["result"]))
    )


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)


class McpTools:
    """The MCP servers of a run as a source of commands (see Registry.attach)."""

    def __init__(self, servers: McpServers) -> None:
        self.servers = servers

    def withdrawn(self) -> list[Withdrawal]:
        return [
            Withdrawal(
                tuple(command_name(state.name, tool.name) for tool in state.tools),
                f"The MCP server {state.name!r} stopped ({state.reason}); its tools were "
                "removed for the rest of the run.",
                reported=state.reported,
            )
            for state in self.servers.take_lost()
        ]

    def close(self) -> None:
        self.servers.close()
