"""The MCP servers a run may use, read from a `.mcp.json` file in the format other agents use:

    {"mcpServers": {"NAME": {"command": "...", "args": [...], "env": {...}, "cwd": "..."},
                    "NAME2": {"url": "http://127.0.0.1:8000/mcp", "headers": {...}}}}

plus keys of ours per server: "risk" (low, medium or high; default high), "includeTools" and
"excludeTools" (tool names, globs allowed) and "timeout" (seconds per tool call).
`${VAR}` and `${VAR:-default}` in commands, arguments, env, cwd, URLs and headers are
replaced from the environment given.

A tool is the command `mcp__SERVER__TOOL`, so a server's name holds no `__` and does not end
with `_`: then the first `__` after `mcp__` is where every such name splits, and no two
servers' tools can have the same name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..base.errors import ConfigError, describe_validation
from ..base.risk import Risk

DEFAULT_FILE = Path(".mcp.json")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["stdio", "http", "streamable-http", "streamableHttp"] | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    risk: Risk = Risk.HIGH
    includeTools: list[str] | None = None  # the spelling of the file
    excludeTools: list[str] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server: started as a program (stdio) or reached at a URL (streamable HTTP)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # None: the workspace
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    risk: Risk = Risk.HIGH
    include_tools: tuple[str, ...] | None = None
    exclude_tools: tuple[str, ...] = ()
    timeout: float | None = None  # per tool call; None: the command timeout

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def wants(self, tool: str) -> bool:
        """Whether the tool is kept, after includeTools and excludeTools."""
        if self.include_tools is not None and not any(
            fnmatchcase(tool, pattern) for pattern in self.include_tools
        ):
            return False
        return not any(fnmatchcase(tool, pattern) for pattern in self.exclude_tools)


def config_path(given: Path | None) -> Path | None:
    """The file to read: the one given, else `.mcp.json` here if there is one."""
    if given is not None:
        return given
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def load_servers(path: Path | None, environ: Mapping[str, str]) -> list[ServerConfig]:
    """The servers of the config file (none without a file); ConfigError names each problem."""
    if path is None:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _error(path, f"it cannot be read ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(path, f"it is not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise _error(path, 'it needs an "mcpServers" object mapping names to servers')
    if unknown := sorted(set(data) - {"mcpServers"}):
        raise _error(path, f"unknown top-level key {unknown[0]!r}")
    base = path.parent
    return [
        _server(path, str(name), entry, environ, base) for name, entry in data["mcpServers"].items()
    ]


def _server(
    path: Path, name: str, raw: Any, environ: Mapping[str, str], base: Path
) -> ServerConfig:
    where = f"server {name!r}"
    if not _NAME.match(name):
        raise _error(path, f"{where}: a name is letters, digits, '_' and '-' (64 at most)")
    if "__" in name or name.endswith("_"):
        server, _, tool = f"{name}__x".partition("__")
        raise _error(
            path,
            f"{where}: a name may not hold '__' nor end with '_', since its tools' names would "
            f"read two ways: mcp__{name}__x is the tool 'x' of {name!r}, or the tool "
            f"{tool!r} of a server {server!r}",
        )
    if not isinstance(raw, dict):
        raise _error(path, f"{where}: an entry is an object with a command or a url")
    try:
        entry = _Entry.model_validate(raw)
    except ValidationError as exc:
        raise _error(path, f"{where}: {describe_validation(exc)}") from exc

    def expand(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            variable, default = match.group(1), match.group(2)
            if variable in environ:
                return environ[variable]
            if default is not None:
                return default
            raise _error(path, f"{where}: ${{{variable}}} is not set in the environment")

        return _VARIABLE.sub(value, text)

    common: dict[str, Any] = {
        "name": name,
        "risk": entry.risk,
        "include_tools": tuple(entry.includeTools) if entry.includeTools is not None else None,
        "exclude_tools": tuple(entry.excludeTools),
        "timeout": entry.timeout,
    }
    if (entry.command is None) == (entry.url is None):
        raise _error(path, f"{where}: give either a command (stdio) or a url (HTTP), not both")
    if entry.url is not None:
        if entry.type == "stdio" or entry.args or entry.env or entry.cwd is not None:
            raise _error(path, f"{where}: args, env and cwd are for servers started by a command")
        url = expand(entry.url)
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise _error(path, f"{where}: the url must be http:// or https:// with a host")
        headers = {key: expand(value) for key, value in entry.headers.items()}
        return ServerConfig(url=url, headers=headers, **common)
    assert entry.command is not None
    if entry.type not in {None, "stdio"} or entry.headers:
        raise _error(path, f"{where}: headers and an HTTP type are for servers given by a url")
    command = expand(entry.command).strip()
    if not command:
        raise _error(path, f"{where}: the command is empty")
    cwd = (base / expand(entry.cwd)).resolve() if entry.cwd is not None else None
    return ServerConfig(
        command=command,
        args=tuple(expand(arg) for arg in entry.args),
        env={key: expand(value) for key, value in entry.env.items()},
        cwd=cwd,
        **common,
    )


def _error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"Cannot use the MCP config {path}: {problem}. See the README's section on MCP servers."
    )
