"""The MCP servers a run may use, read from a `.mcp.json` file in the format other agents use:

    {"mcpServers": {"NAME": {"command": "...", "args": [...], "env": {...}, "cwd": "..."},
                    "NAME2": {"url": "http://127.0.0.1:8000/mcp", "headers": {...}}}}

plus keys of ours per server: "risk" (low, medium or high; default high), "includeTools" and
"excludeTools" (tool names, globs allowed), "timeout" (seconds per tool call) and "readable"
(paths its sandbox shows read-only, besides the files its command line names; relative ones,
like "cwd", from the config file's folder).
`${VAR}` and `${VAR:-default}` in commands, arguments, env, cwd, URLs and headers are
replaced from the environment given (a project's own file reads only the variables allowed).

A tool is the command `mcp__SERVER__TOOL`, so a server's name holds no `__` and does not end
with `_`: then the first `__` after `mcp__` is where every such name splits, and no two
servers' tools can have the same name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection, Mapping
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
    readable: list[str] = Field(default_factory=list)


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
    readable: tuple[Path, ...] = ()  # its entry's "readable", resolved

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

    def shown_paths(self, workspace: Path) -> tuple[Path, ...]:
        """What its sandbox shows read-only for it, as real paths: its program when the command
        is a path, each argument that names an existing file, its cwd, and its `readable`.

        Relative ones are taken from the folder it runs in (its cwd, else `workspace`), as the
        program takes them. A folder is shown only as its cwd or in `readable`: an argument such
        as `.` or `/` shows nothing."""
        if self.command is None:
            return ()
        folder = self.cwd or workspace
        named = [folder / word for word in self.args]
        if os.sep in self.command or (os.altsep and os.altsep in self.command):
            named.insert(0, folder / self.command)
        paths = [path for path in named if os.path.isfile(path)]  # False for any bad name
        paths += [*([self.cwd] if self.cwd is not None else []), *self.readable]
        return tuple(dict.fromkeys(Path(os.path.realpath(path)) for path in paths))


@dataclass(frozen=True)
class ConfigFile:
    """An MCP config as read, once: what is checked (its digest) is what is used."""

    path: Path
    content: bytes
    project: bool  # found in the folder (the project's), not named by the user

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def entries(self) -> dict[str, Any]:
        """The servers as the file gives them, before any check of an entry."""
        try:
            data = json.loads(self.content.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _error(self.path, f"it is not JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
            raise _error(self.path, 'it needs an "mcpServers" object mapping names to servers')
        if unknown := sorted(set(data) - {"mcpServers"}):
            raise _error(self.path, f"unknown top-level key {unknown[0]!r}")
        return {str(name): entry for name, entry in data["mcpServers"].items()}


def find_config(given: Path | None) -> ConfigFile | None:
    """The file to use: the one given (the user's), else `.mcp.json` here if there is one
    (the project's)."""
    if given is not None:
        return read_config(given, project=False)
    return read_config(DEFAULT_FILE, project=True) if DEFAULT_FILE.is_file() else None


def read_config(path: Path, *, project: bool) -> ConfigFile:
    try:
        return ConfigFile(path, path.read_bytes(), project)
    except OSError as exc:
        raise _error(path, f"it cannot be read ({exc.strerror})") from exc


def command_line(entry: Any) -> str:
    """What an entry starts or reaches, as the file writes it: its command line, or its URL."""
    if not isinstance(entry, dict):
        return "(not a server entry)"
    if isinstance(entry.get("url"), str):
        return entry["url"]
    args = entry.get("args")
    words = [entry.get("command"), *(args if isinstance(args, list) else [])]
    return " ".join(str(word) for word in words if word is not None) or "(no command)"


def load_servers(
    source: Path | ConfigFile | None,
    environ: Mapping[str, str],
    *,
    variables: Collection[str] | None = None,
) -> list[ServerConfig]:
    """The servers of the config file (none without a file); ConfigError names each problem.

    `${VAR}` reads `environ`, only the names in `variables` when given (others count as unset)."""
    if source is None:
        return []
    file = source if isinstance(source, ConfigFile) else read_config(source, project=False)
    if variables is not None:
        environ = {name: value for name, value in environ.items() if name in variables}
    base = file.path.parent
    return [_server(file, name, entry, environ, base) for name, entry in file.entries().items()]


def _server(
    file: ConfigFile, name: str, raw: Any, environ: Mapping[str, str], base: Path
) -> ServerConfig:
    path = file.path
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
            if file.project:
                raise _error(
                    path,
                    f"{where}: ${{{variable}}} is not set, or not a variable a project's MCP "
                    "config may read (AUTOAGENT_MCP_ENV names those)",
                )
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
        if (
            entry.type == "stdio"
            or entry.args
            or entry.env
            or entry.cwd is not None
            or entry.readable
        ):
            raise _error(
                path, f"{where}: args, env, cwd and readable are for servers started by a command"
            )
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
    readable = tuple((base / expand(given)).resolve() for given in entry.readable)
    for shown in readable:
        if not shown.exists():
            raise _error(path, f"{where}: the readable path {str(shown)!r} does not exist")
    return ServerConfig(
        command=command,
        args=tuple(expand(arg) for arg in entry.args),
        env={key: expand(value) for key, value in entry.env.items()},
        cwd=cwd,
        readable=readable,
        **common,
    )


def _error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"Cannot use the MCP config {path}: {problem}. See the README's section on MCP servers."
    )
