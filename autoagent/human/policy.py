"""The policy file: a rule (allow, ask, deny) per command, or per glob of commands and MCP
tools, checked against what it can name before a run obeys it."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from ..base.errors import ConfigError, not_utf8


class Rule(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


MCP_PREFIX = "mcp__"


@dataclass(frozen=True)
class Policy:
    """Per-command rules from the policy file; commands not named follow their risk tier.

    A rule may name commands with a glob (`mcp__github__*`): a command's own rule wins, else
    the first glob that matches it, in the order of the file. An MCP tool's name is matched
    as its two parts, the server and the tool (see `mcp_parts`)."""

    rules: dict[str, Rule] = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False)
    servers: tuple[str, ...] = field(default=(), compare=False)  # the MCP servers configured

    def rule_for(self, name: str) -> Rule | None:
        if name in self.rules:
            return self.rules[name]
        for pattern, rule in self.rules.items():
            if _is_glob(pattern) and _matches(pattern, name):
                return rule
        return None

    @classmethod
    def load(
        cls, path: Path | None, commands: Collection[str], servers: Collection[str] = ()
    ) -> Policy:
        """The rules in the policy file at `path`, for the command names in `commands`, and
        the tools of the MCP servers named `servers`, whose tools are known only once they
        run (`check_tools` checks those rules then).

        Anything the file says that would not be obeyed exactly is an error: an unknown
        command or key, a name or rule in the wrong case."""
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Cannot use the policy file: {not_utf8(path, exc)}") from exc
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot use the policy file {path}: {exc}.") from exc
        rules, problems = _read_rules(data, commands, tuple(servers))
        policy = cls(rules, path, tuple(servers))
        policy._refuse(problems)
        return policy

    def check_tools(self, offered: Mapping[str, Collection[str]]) -> None:
        """Raise ConfigError for a rule about MCP tools that matches none of the tools the
        servers list (`offered`: the servers that started, and their tools' names). A rule
        about a server that did not start cannot be checked, and is not."""
        problems = []
        for pattern in self.rules:
            parts = mcp_parts(pattern)
            if parts is None:
                continue
            servers = [name for name in self.servers if fnmatchcase(name, parts[0])]
            if not servers or any(name not in offered for name in servers):
                continue
            names = [f"{MCP_PREFIX}{s}__{tool}" for s in servers for tool in offered[s]]
            if any(_matches(pattern, name) for name in names):
                continue
            which = ", ".join(repr(name) for name in servers)
            where = f"the MCP server{'s' if len(servers) > 1 else ''} {which}"
            closest = _closest(pattern, names, always=True)
            problems.append(f"{pattern!r} matches no tool of {where} as written{closest}")
        self._refuse(problems)

    def _refuse(self, problems: list[str]) -> None:
        if problems:
            raise ConfigError(
                f"The policy file {self.source} would not be obeyed as written: "
                f"{'; '.join(problems)}. It maps command names to allow, ask or deny under "
                "'commands:' (see policy.example.yaml)."
            )


def mcp_parts(name: str) -> tuple[str, str] | None:
    """The server and the tool of `mcp__SERVER__TOOL` (a rule may give either as a glob), or
    None for a name that is not an MCP tool's, or names no tool.

    A server's name holds no `__` and does not end with `_` (mcp_config.py), so the first `__`
    after the prefix is the one place such a name splits: `mcp__a__b__c` is the tool `b__c` of
    the server `a`. A rule such as `mcp__git*`, with no tool part, names every tool of the
    servers it matches."""
    if not name.startswith(MCP_PREFIX):
        return None
    server, split, tool = name.removeprefix(MCP_PREFIX).partition("__")
    if split:
        return (server, tool) if server and tool else None
    return (server, "*") if server.endswith("*") else None


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _matches(pattern: str, name: str) -> bool:
    rule, command = mcp_parts(pattern), mcp_parts(name)
    if rule is None or command is None:
        return not pattern.startswith(MCP_PREFIX) and fnmatchcase(name, pattern)
    return fnmatchcase(command[0], rule[0]) and fnmatchcase(command[1], rule[1])


def _read_rules(
    data: Any, commands: Collection[str], servers: tuple[str, ...] = ()
) -> tuple[dict[str, Rule], list[str]]:
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, ["it is not a mapping"]
    problems = [f"unknown key {key!r}" for key in data if key != "commands"]
    section = data.get("commands") or {}
    if not isinstance(section, dict):
        return {}, [*problems, "'commands' is not a mapping of command names to rules"]
    rules: dict[str, Rule] = {}
    for name, value in section.items():
        if (problem := _unknown(str(name), commands, servers)) is not None:
            problems.append(problem)
            continue
        try:
            rules[name] = Rule(value)
        except ValueError:
            problems.append(f"{name}: {value!r} is not allow, ask or deny (lower case)")
    return rules, problems


def _unknown(name: str, commands: Collection[str], servers: tuple[str, ...]) -> str | None:
    """What is wrong with a rule's name, if it can name nothing; None if it can."""
    if not name.startswith(MCP_PREFIX):
        return None if name in commands else f"unknown command {name!r}{_closest(name, commands)}"
    parts = mcp_parts(name)
    if parts is None:
        return (
            f"{name!r} names no tool: write {MCP_PREFIX}SERVER__TOOL, or "
            f"{MCP_PREFIX}SERVER__* for every tool of a server"
        )
    if any(fnmatchcase(server, parts[0]) for server in servers):
        return None
    return (
        f"unknown command {name!r}: no MCP server is named {parts[0]!r}"
        f"{_closest(parts[0], servers)}"
    )


def _closest(name: str, known: Collection[str], *, always: bool = False) -> str:
    """A hint naming the known name closest to `name` and the letters of `name` that only
    look like ASCII ones; empty when no name is close (unless `always`)."""
    same_but_case = [k for k in known if k.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(
        name, list(known), n=1, cutoff=0.0 if always else 0.6
    )
    if not close:
        return ""
    lookalikes = _lookalikes(name, close[0])
    return f" (did you mean {close[0]!r}?{lookalikes.rstrip('.')})"


def _lookalikes(name: str, known: str) -> str:
    """The letters of `name` outside ASCII, each with what it stands in place of in `known`."""
    instead: dict[int, str] = {}
    matcher = difflib.SequenceMatcher(a=name, b=known, autojunk=False)
    for op, start, end, known_start, known_end in matcher.get_opcodes():
        if op == "replace" and end - start == known_end - known_start:
            instead.update(zip(range(start, end), known[known_start:known_end], strict=True))
    letters = []
    for index, char in enumerate(name):
        if char.isascii():
            continue
        described = f"{char!r}, U+{ord(char):04X} {unicodedata.name(char, 'unnamed')},"
        if (ascii_char := instead.get(index)) is not None and ascii_char.isascii():
            described += f" in place of {ascii_char!r}"
        letters.append(described.rstrip(","))
    if not letters:
        return ""
    return f" It holds look-alike letters outside ASCII: {'; '.join(letters)}."
