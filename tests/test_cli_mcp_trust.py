"""What MCP servers and the policy may say, through the CLI: names that read two ways, and
rules that name no real tool."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, finish, spawn
from .test_cli_mcp import done, server_entry, servers_left

pytestmark = pytest.mark.slow

# A server whose tool names hold "__", and which tells the value of a variable it was given.
SMALL_SERVER = """
import os
from mcp.server.mcpserver import MCPServer

server = MCPServer("small")

@server.tool(name="b__wipe")
def wipe() -> str:
    "Wipe everything."
    return "wiped"

@server.tool()
def variable(name: str) -> str:
    "The value of an environment variable."
    return os.environ.get(name, "(unset)")

server.run()
"""


def expect_words(child: pexpect.spawn, text: str) -> None:
    """Expect `text`, however the terminal wraps its lines."""
    child.expect(r"\s+".join(re.escape(word) for word in text.split()))


def small_entry(**keys: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": ["-c", SMALL_SERVER], **keys}


def no_run_left(tmp_path: Path) -> bool:
    runs = tmp_path / "home" / "runs"
    return not runs.exists() or not any(runs.iterdir())


def write(path: Path, **servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def approvals(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "home" / "mcp-approvals.json").read_text())


# Item: one name, two readings.


def test_a_server_name_that_makes_tool_names_read_two_ways_is_refused(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    mine = write(tmp_path / "mcp.json", a=small_entry(), a__b=server_entry())
    policy = tmp_path / "policy.yaml"
    policy.write_text("commands:\n  mcp__a__b__*: allow\n")
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        AUTOAGENT_MCP_CONFIG=str(mine),
        AUTOAGENT_POLICY_FILE=str(policy),
    )
    child.expect_exact("Error:")
    child.expect_exact("server 'a__b': a name may not hold '__' nor end with '_'")
    expect_words(
        child, "mcp__a__b__x is the tool 'x' of 'a__b', or the tool 'b__x' of a server 'a'"
    )
    assert finish(child) == 1
    assert server.requests_for("execution") == []
    assert no_run_left(tmp_path)
    assert servers_left(tmp_path, "small") == []


def test_the_server_part_of_a_glob_never_reaches_into_the_tool_name(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    # Read as one string, mcp__a*__wipe would match mcp__a__b__wipe: "*" = "__b".
    mine = write(tmp_path / "mcp.json", a=small_entry())
    policy = tmp_path / "policy.yaml"
    policy.write_text("commands:\n  mcp__a*__wipe: allow\n")
    server.script("execution", execution_reply("mcp__a__b__wipe"), done())
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        AUTOAGENT_MCP_CONFIG=str(mine),
        AUTOAGENT_POLICY_FILE=str(policy),
    )
    child.expect_exact("Error:")
    expect_words(
        child,
        "'mcp__a*__wipe' matches no tool of the MCP server 'a' as written (did you mean "
        "'mcp__a__b__wipe'?)",
    )
    assert finish(child) == 1
    assert server.requests_for("execution") == []


# Item: a policy rule that matches no tool the servers offer.


@pytest.mark.parametrize(
    "rule, message",
    [
        (
            "mcp__t__Echo",
            "'mcp__t__Echo' matches no tool of the MCP server 't' as written (did "
            "you mean 'mcp__t__echo'?)",
        ),
        (
            "mcp__t__\u0435cho",
            "It holds look-alike letters outside ASCII: '\u0435', U+0435 "
            "CYRILLIC SMALL LETTER IE, in place of 'e'",
        ),
    ],
)
def test_a_policy_rule_that_names_no_real_mcp_tool_stops_the_run_before_its_first_step(
    tmp_path: Path, server: FakeOpenAIServer, rule: str, message: str
) -> None:
    mine = write(tmp_path / "mcp.json", t=server_entry())
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"commands:\n  {rule}: deny\n", encoding="utf-8")
    server.script("execution", execution_reply("mcp__t__echo", text="hi"), done())
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        AUTOAGENT_MCP_CONFIG=str(mine),
        AUTOAGENT_POLICY_FILE=str(policy),
    )
    child.expect_exact("Error:")
    expect_words(child, f"The policy file {policy} would not be obeyed as written")
    expect_words(child, message)
    assert finish(child) == 1
    assert server.requests_for("execution") == []
    assert no_run_left(tmp_path)
    assert servers_left(tmp_path) == []
