"""What MCP servers and the policy may say, through the CLI: names that read two ways, rules
that name no real tool, and a project's own `.mcp.json`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, PROMPT, finish, spawn
from .test_cli_mcp import done, server_entry, servers_left

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

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


# Item: a project's own .mcp.json.


def test_a_projects_mcp_config_is_asked_about_once_and_a_no_is_kept(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    write(tmp_path / ".mcp.json", t=server_entry())
    server.script("execution", done(), done())
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact("This folder has its own MCP config")
    expect_words(child, f"{sys.executable} {server_entry()['args'][0]}")  # the command line
    child.expect_exact("Use these MCP servers? [y/n]")
    assert servers_left(tmp_path) == []  # nothing starts before the answer
    child.sendline("n")
    expect_words(child, "The project's MCP config .mcp.json is left out, as you answered on")
    child.expect_exact(PROMPT)  # the finish
    child.sendline("y")
    assert finish(child) == 0
    assert "mcp__t__" not in server.requests_for("execution")[0]["messages"][0]["content"]
    [answer] = approvals(tmp_path).values()
    assert answer["approved"] is False

    child = spawn(tmp_path, server, "run", *PROFILE)  # not asked again
    child.expect_exact("is left out, as you answered on")
    child.expect_exact(PROMPT)
    assert "Use these MCP servers?" not in (child.before or "")
    child.sendline("y")
    assert finish(child) == 0


def test_an_approved_project_config_reads_only_allowed_variables_and_cannot_lower_a_risk(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    project = write(
        tmp_path / ".mcp.json",
        s=small_entry(env={"KEY": "${OPENAI_API_KEY}"}, risk="low"),
    )
    secrets = {"OPENAI_API_KEY": "sk-agent-secret", "PROJECT_TOKEN": "tok-1"}
    child = spawn(tmp_path, server, "run", *PROFILE, **secrets)
    child.expect_exact("Use these MCP servers? [y/n]")
    child.sendline("y")
    child.expect_exact("Error:")
    expect_words(
        child,
        "server 's': ${OPENAI_API_KEY} is not set, or not a variable a project's MCP config "
        "may read (AUTOAGENT_MCP_ENV names those)",
    )
    assert finish(child) == 1

    write(project, s=small_entry(env={"KEY": "${PROJECT_TOKEN}"}, risk="low"))  # changed
    server.script(
        "execution",
        execution_reply("mcp__s__variable", name="KEY"),
        execution_reply("mcp__s__variable", name="OPENAI_API_KEY"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, AUTOAGENT_MCP_ENV="PROJECT_TOKEN", **secrets)
    child.expect_exact("Use these MCP servers? [y/n]")  # asked again: the file changed
    child.sendline("y")
    expect_words(child, "gives 's' low risk, which a project's own file cannot do")
    child.expect_exact("MCP server 's': 2 tools, high risk.")
    for _ in range(3):
        child.expect_exact(PROMPT)
        child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    first, second = (r["messages"][1]["content"] for r in server.requests_for("execution")[1:])
    assert "tok-1" in first
    assert "(unset)" in second and "sk-agent-secret" not in second
    assert [a["approved"] for a in approvals(tmp_path).values()] == [True]


def test_a_continuous_run_leaves_an_unapproved_project_config_out(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    write(tmp_path / ".mcp.json", t=server_entry())
    server.script("execution", done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    expect_words(
        child,
        "The project's MCP config .mcp.json is left out: it was never approved, and a "
        "continuous run asks no one",
    )
    child.expect_exact("Run finished:")
    assert "Use these MCP servers?" not in (child.before or "")
    assert finish(child) == 0
    assert "mcp__t__" not in server.requests_for("execution")[0]["messages"][0]["content"]
    assert not (tmp_path / "home" / "mcp-approvals.json").exists()


def test_mcp_list_asks_about_a_project_config_and_a_named_one_needs_no_question(
    tmp_path: Path,
) -> None:
    write(tmp_path / ".mcp.json", t=server_entry(includeTools=["echo"]))
    child = spawn(tmp_path, None, "mcp", "list")
    child.expect_exact("Use these MCP servers? [y/n]")
    child.sendline("n")
    child.expect_exact("is left out, as you answered on")
    assert finish(child) == 0

    child = spawn(tmp_path, None, "mcp", "list", "--mcp-config", ".mcp.json")  # the user's
    child.expect_exact("started, 1 tool")
    assert "Use these MCP servers?" not in (child.before or "")
    assert finish(child) == 0

    child = spawn(tmp_path, None, "mcp", "list")  # asked again: a no may be changed here
    child.expect_exact("Use these MCP servers? [y/n]")
    child.sendline("y")
    child.expect_exact("started, 1 tool")
    child.expect_exact("mcp__t__echo (")
    assert finish(child) == 0
    assert servers_left(tmp_path) == []
