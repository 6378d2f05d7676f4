"""Tool processes: programs that serve tools for the whole run (MCP servers over stdio).

`start_tool_process` is the one place such a program is started: in the run's OS sandbox
(sandbox.py), with the environment a child may see plus what its entry sets, in its own process
group, which is killed when it stops.

The SDK starts the program and holds its pipes, so the sandbox confines it through its command
line (bubblewrap, or the Landlock launcher), in front of which limits_launcher.py sets the same
limits as for the commands' programs (memory, file size, CPU time, processes: as root, through
a pids cgroup), the CPU time counted over the server's whole life. In front of an unconfined
server (--no-sandbox), it stays to kill the server's process group if the agent dies.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..base.errors import ConfigError
from .cgroups import PidsGroup
from .process import child_environment

if TYPE_CHECKING:
    from mcp.client._transport import TransportStreams

    from .sandbox import Launch, Sandbox

LIMITS_LAUNCHER = Path(__file__).with_name("limits_launcher.py")


def tool_environment(
    extra: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
    allowed: Collection[str] = (),
) -> dict[str, str]:
    """What a child may see of `environ` (default: this process's; PATH, HOME, LANG, TZ, TERM
    and the like, plus the names `allowed`), and then `extra`: what the user's config gives
    this tool, kept as given."""
    inherited = {
        name: value
        for name, value in child_environment(environ, allowed).items()
        if not value.startswith("()")  # no exported shell functions
    }
    return inherited | dict(extra)


def find_program(command: str, env: Mapping[str, str], cwd: Path) -> str:
    """The program `command` names, checked before anything starts; ConfigError if missing."""
    if os.sep in command or (os.altsep and os.altsep in command):
        path = (cwd / command) if not os.path.isabs(command) else Path(command)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise ConfigError(f"The MCP server program {command!r} is not an executable file.")
    found = shutil.which(command, path=env.get("PATH", os.defpath))
    if found is None:
        raise ConfigError(
            f"The MCP server program {command!r} is not on the PATH. Install it, or give its "
            "full path in the MCP config."
        )
    return found


@asynccontextmanager
async def start_tool_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    errlog: TextIO,
    sandbox: Sandbox | None,
) -> AsyncIterator[TransportStreams]:
    """Start `argv` in `sandbox` and talk MCP over its stdin and stdout until the block ends; it
    is then stopped (stdin closed, then its process group terminated and killed).

    `env` is the whole environment (see tool_environment); stderr goes to `errlog`. Raises
    RefusedError when the sandbox lets nothing run."""
    import anyio
    from mcp.client.stdio import StdioServerParameters, stdio_client

    group = None
    if sandbox is not None:
        launch = sandbox.wrap(argv, cwd)
        if sandbox.confined and sandbox.limits.processes is not None:
            group = PidsGroup.create(sandbox.limits.processes)
        argv = limited(launch, group, watch=not sandbox.confined)
    params = StdioServerParameters(command=argv[0], args=list(argv[1:]), env=dict(env), cwd=cwd)
    try:
        async with stdio_client(params, errlog=errlog) as streams:
            yield streams
    finally:
        if group is not None:  # whatever the server left running is killed with the group
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(group.remove)


def limited(launch: Launch, group: PidsGroup | None, *, watch: bool = False) -> list[str]:
    """The command line that runs `launch` with its limits and in `group`; `watch`: behind a
    process that ends its process group when the agent dies (no sandbox does it)."""
    spec = {
        "watch": watch,
        "parent": os.getpid(),
        "procs": str(group.path / "cgroup.procs") if group is not None else None,
        "limits": asdict(launch.limits) if launch.limits is not None else None,
    }
    return [sys.executable, "-I", "-S", str(LIMITS_LAUNCHER), json.dumps(spec), *launch.argv]
