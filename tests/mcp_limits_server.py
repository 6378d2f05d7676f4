"""An MCP server for the tests that shows the limits it runs under (over stdio)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("limits")


@server.tool()
def limits() -> str:
    """Its /proc/self/limits."""
    return Path("/proc/self/limits").read_text()


@server.tool()
def spawn(count: int) -> str:
    """Try to start `count` processes at once; say how many started."""
    children = []
    problem = ""
    for _ in range(count):
        try:
            pid = os.fork()
        except OSError as exc:
            problem = f" ({exc.strerror})"
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return f"started {len(children)} of {count}{problem}"


if __name__ == "__main__":
    server.run()
