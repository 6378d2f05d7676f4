"""MCP servers for a synchronous caller.

The official SDK is async and the agent loop is not: one background thread runs an event loop
(an anyio blocking portal) that holds every server's session, and `McpServers` calls into it
with a timeout. A server that fails to start, or stops, is set aside with the reason; `close`
stops them all and leaves nothing running.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .. import __version__
from ..base.errors import CommandError
from .mcp_config import ServerConfig
from .tool_process import find_program, start_tool_process, tool_environment

if TYPE_CHECKING:
    from collections.abc import Collection

    from anyio.from_thread import BlockingPortal
    from mcp import Client
    from mcp.client._transport import TransportStreams
    from mcp_types import CallToolResult, Tool

    from .sandbox import Sandbox

log = logging.getLogger(__name__)

STOP_SECONDS = 15.0  # a server's stop is bounded by the SDK (stdin closed, TERM, KILL)
MAX_TOOL_PAGES = 50


class ServerLost(CommandError):
    """The server of a tool stopped; its tools are gone for the rest of the run."""


@dataclass
class ServerState:
    """What is known of one server; read by the caller's thread, written by the loop's."""

    config: ServerConfig
    status: str = "starting"  # starting, ready, failed, lost, stopped
    reason: str = ""  # why it failed or was lost
    tools: list[Tool] = field(default_factory=list)
    reported: bool = False  # the caller was told it was lost, by the call that found out
    taken: bool = False  # given by take_lost
    client: Client | None = None
    settled: threading.Event = field(default_factory=threading.Event)  # ready, or failed
    done: threading.Event = field(default_factory=threading.Event)  # its session is over
    wake: Any = None  # an anyio.Event, set to end the session
    scope: Any = None  # the anyio.CancelScope of the session, cancelled if it is still starting
    stopping: bool = False
    stray_lines: int = 0  # lines on its stdout that are not MCP messages (the SDK skips them)
    stray_told: bool = False

    @property
    def name(self) -> str:
        return self.config.name


class McpServers:
    """Starts the configured servers, calls their tools, and stops them all at the end."""

    def __init__(
        self,
        configs: list[ServerConfig],
        *,
        workspace: Path,
        startup_timeout: float,
        call_timeout: float,
        sandbox: Sandbox | None = None,
        env_allowed: Collection[str] = (),
    ) -> None:
        """`sandbox` confines the servers started as programs (None: unconfined); they see the
        environment a child may see, the names in `env_allowed`, and their entry's env."""
        self.servers = {config.name: ServerState(config) for config in configs}
        self.workspace = workspace
        self.sandbox = sandbox
        self.env_allowed = tuple(env_allowed)
        self.log_dir = Path()
        self.startup_timeout = startup_timeout
        self.call_timeout = call_timeout
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise ConfigError if a server's program cannot be found; nothing is started."""
        for state in self.servers.values():
            config = state.config
            if config.command is not None:
                env = tool_environment(config.env, allowed=self.env_allowed)
                find_program(config.command, env, config.cwd or self.workspace)

    def start(self, log_dir: Path) -> None:
        """Start every server at once; return when each is ready or has failed to start.

        Each server's stderr goes to `log_dir/NAME.log`."""
        from anyio.from_thread import start_blocking_portal

        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.workspace.mkdir(parents=True, exist_ok=True)  # the servers' folder
        logs = {  # stderr of each server; closed after the event loop has ended
            name: self._stack.enter_context(
                open(self.log_dir / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
            )
            for name in self.servers
        }
        self._portal = self._stack.enter_context(start_blocking_portal(name="mcp"))
        for state in self.servers.values():
            self._portal.start_task_soon(self._serve, state, logs[state.name])
        for state in self.servers.values():
            if not state.settled.wait(self.startup_timeout + STOP_SECONDS):
                state.status, state.reason = "failed", "it did not start in time"

    def call(self, server: str, tool: str, args: dict[str, Any]) -> CallToolResult:
        """Call a tool; CommandError if it cannot answer, ServerLost if its server is gone."""
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED

        state = self.servers[server]
        if state.status != "ready" or self._portal is None:
            with self._lock:
                state.reported = True  # this error tells the model
            raise ServerLost(
                f"The MCP server {server!r} is not running ({state.reason or 'stopped'}). "
                "Its tools were removed; try another way."
            )
        timeout = state.config.timeout or self.call_timeout
        try:
            return self._portal.call(self._call, state, tool, args, timeout)
        except TimeoutError:
            raise CommandError(
                f"The MCP tool {tool!r} of {server!r} did not answer within {timeout:g} s; "
                "the call was cancelled."
            ) from None
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise CommandError(f"The MCP server {server!r} refused the call: {exc}.") from exc
            reason = self._lose(state, "it stopped during a call", reported=True)
        except OSError as exc:  # an HTTP server that cannot be reached any more
            reason = self._lose(state, f"it cannot be reached ({exc})", reported=True)
        if state.wake is not None:
            self._portal.call(state.wake.set)  # its session ends; a process is stopped
        raise ServerLost(
            f"The MCP server {server!r} is gone: {reason}. Its tools were removed; try another way."
        )

    def stray_note(self, server: str) -> str:
        """Once per server, a note that it wrote lines that are not MCP messages; else ''."""
        state = self.servers[server]
        with self._lock:
            if not state.stray_lines or state.stray_told:
                return ""
            state.stray_told = True
        return (
            f"Note: the MCP server {server!r} wrote lines that are not MCP messages on its "
            "stdout; they are left out (`--debug` logs them)."
        )

    def offered(self) -> dict[str, list[str]]:
        """The names of the tools each server that started lists, before includeTools and
        excludeTools."""
        return {
            name: [tool.name for tool in state.tools]
            for name, state in self.servers.items()
            if state.status == "ready"
        }

    def take_lost(self) -> list[ServerState]:
        """Servers lost since the last call, each given once."""
        with self._lock:
            lost = [s for s in self.servers.values() if s.status == "lost" and not s.taken]
            for state in lost:
                state.taken = True
        return lost

    def close(self) -> None:
        """Stop every server and the event loop; safe to call twice."""
        portal, self._portal = self._portal, None
        try:
            if portal is not None:
                for state in self.servers.values():
                    state.stopping = True
                    if state.status == "ready" and state.wake is not None:
                        portal.call(state.wake.set)  # a clean end of the session
                    elif state.scope is not None:
                        portal.call(state.scope.cancel)  # still starting: given up
                deadline = time.monotonic() + STOP_SECONDS
                for state in self.servers.values():
                    state.done.wait(max(deadline - time.monotonic(), 0))
                for state in self.servers.values():
                    if state.status == "ready":
                        state.status = "stopped"
                portal.call(portal.stop, True)
        finally:
            self._stack.close()

    # In the event loop's thread.

    async def _serve(self, state: ServerState, errlog: TextIO) -> None:
        """Hold one server's session from start to stop."""
        import anyio
        from mcp import Client
        from mcp_types import Implementation

        state.wake = anyio.Event()
        ready = False
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.startup_timeout) as scope:
                state.scope = scope
                client = Client(
                    self._transport(state, errlog),
                    client_info=Implementation(name="autoagent", version=__version__),
                    cache=None,
                )
                async with client:
                    state.tools = await _list_tools(client)
                    state.client, state.status, ready = client, "ready", True
                    scope.deadline = math.inf
                    state.settled.set()
                    await state.wake.wait()
            if not ready and scope.cancelled_caught:
                self._fail(state, f"it did not start within {self.startup_timeout:g} s")
        except Exception as exc:
            log.debug("MCP server %s ended", state.name, exc_info=True)
            if not ready:
                self._fail(state, _describe(exc))
            elif not state.stopping:
                self._lose(state, f"its session ended ({_describe(exc)})")
        finally:
            state.client = None
            if ready and not state.stopping:
                self._lose(state, "it stopped")
            state.settled.set()
            state.done.set()

    @asynccontextmanager
    async def _transport(self, state: ServerState, errlog: TextIO) -> AsyncIterator[Any]:
        config = state.config
        if config.command is not None:
            argv = [config.command, *config.args]
            env = tool_environment(config.env, allowed=self.env_allowed)
            cwd = config.cwd or self.workspace
            sandbox = self.sandbox
            if sandbox is not None:  # the files its entry names, and no more of their folders
                sandbox = sandbox.showing(config.shown_paths(self.workspace))
            async with start_tool_process(
                argv, env=env, cwd=cwd, errlog=errlog, sandbox=sandbox
            ) as streams:
                yield _watch_end(streams, state)
            return
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        assert config.url is not None
        http = httpx2.AsyncClient(
            headers=config.headers,
            timeout=httpx2.Timeout(30.0, read=300.0),
            trust_env=False,  # the environment's proxies are not used, as for the web commands
        )
        async with http, streamable_http_client(config.url, http_client=http) as streams:
            yield streams

    async def _call(
        self, state: ServerState, tool: str, args: dict[str, Any], timeout: float
    ) -> CallToolResult:
        import anyio
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED

        if state.client is None:
            raise MCPError(code=CONNECTION_CLOSED, message="Connection closed")
        with anyio.fail_after(timeout):
            return await state.client.call_tool(tool, args)

    def _fail(self, state: ServerState, reason: str) -> None:
        with self._lock:
            state.status, state.reason = "failed", self._with_log(state, reason)

    def _lose(self, state: ServerState, reason: str, *, reported: bool = False) -> str:
        """Mark a ready server lost, once; `reported` when the caller is told right now."""
        with self._lock:
            if state.status == "ready":
                state.status, state.reason = "lost", self._with_log(state, reason)
            state.reported = state.reported or reported
            return state.reason

    def _with_log(self, state: ServerState, reason: str) -> str:
        tail = _last_line(self.log_dir / f"{state.name}.log")
        return f"{reason}; its last words: {tail}" if tail else reason


async def _list_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _watch_end(streams: TransportStreams, state: ServerState) -> TransportStreams:
    """The transport's streams, the read side of which wakes the session when it ends (the
    server's process has exited) and counts the lines that were not MCP messages."""
    read, write = streams

    class EndWatch:
        async def receive(self) -> Any:
            import anyio

            try:
                message = await read.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                if state.wake is not None:
                    state.wake.set()
                raise
            if isinstance(message, Exception):  # a line the SDK could not parse, as a value
                state.stray_lines += 1
            return message

        async def aclose(self) -> None:
            await read.aclose()

        def __aiter__(self) -> EndWatch:
            return self

        async def __anext__(self) -> Any:
            import anyio

            try:
                return await self.receive()
            except anyio.EndOfStream:
                raise StopAsyncIteration from None

        async def __aenter__(self) -> EndWatch:
            return self

        async def __aexit__(self, *exc: object) -> None:
            await self.aclose()

    return EndWatch(), write  # type: ignore[return-value]


def _describe(exc: BaseException) -> str:
    from mcp import MCPError
    from mcp_types import CONNECTION_CLOSED

    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
        return "it exited or closed the connection"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""
