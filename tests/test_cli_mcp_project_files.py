"""MCP servers kept in the project folder, through the CLI, on each sandbox mechanism: a server
sees the files its entry names, read-only, and nothing else of the folder the agent started in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply
from autoagent.tools.sandbox import Mechanism, probe

from .cli_helpers import PROFILE, PROMPT, finish, spawn
from .test_cli_mcp import done
from .test_cli_mcp_trust import expect_words

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

# Says, in its tool's description, what it could read of the paths in $LOOK when it started,
# and whether it could change its own file; its tool reads one file.
PROJECT_SERVER = """
import json
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer


def read(path):
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        return type(exc).__name__


def write_itself():
    try:
        with open(__file__, "a") as itself:
            itself.write("# changed")
        return "written"
    except OSError as exc:
        return exc.strerror


seen = "; ".join(f"{Path(p).name}={read(p)}" for p in json.loads(os.environ["LOOK"]))
server = MCPServer("project")


@server.tool(description=f"Sees {seen}; itself: {write_itself()}.")
def look(path: str) -> str:
    return read(path)


server.run()
"""


@pytest.fixture(params=[Mechanism.BWRAP, Mechanism.LANDLOCK], ids=["bwrap", "landlock"])
def mechanism(request: pytest.FixtureRequest) -> str:
    problem = probe(request.param)
    if problem is not None:
        pytest.skip(f"{request.param.value} does not work here: {problem}")
    return str(request.param.value)


def secret(name: str) -> str:
    """A planted secret, spelled in two parts: the tests' own folder is readable inside."""
    return "SECRET-" + name


def project(folder: Path, **servers: dict[str, Any]) -> None:
    (folder / ".mcp.json").write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")


def test_a_server_script_beside_the_projects_mcp_json_gives_its_tools_to_a_run(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    script = tmp_path / "server.py"
    script.write_text(PROJECT_SERVER)
    (tmp_path / "secret.txt").write_text(secret("BESIDE"))
    entry = {
        "command": sys.executable,
        "args": [str(script)],
        "env": {"LOOK": json.dumps([str(tmp_path / "secret.txt")])},
    }
    project(tmp_path, mine=entry)
    server.script(
        "execution",
        execution_reply("mcp__mine__look", path=str(tmp_path / "secret.txt")),
        execution_reply("mcp__mine__look", path=str(script)),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, AUTOAGENT_SANDBOX=mechanism)
    child.expect_exact("reads: ")  # the Python it names, when that is a link, and its script
    child.expect_exact(str(script))
    expect_words(child, "Of this folder, a server sees only what it reads, read-only.")
    child.expect_exact("Use these MCP servers? [y/n]")
    child.sendline("y")
    child.expect_exact("MCP server 'mine': 1 tool, high risk.")
    for _ in range(3):
        child.expect_exact(PROMPT)
        child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    system = server.requests_for("execution")[0]["messages"][0]["content"]
    assert "Sees secret.txt=FileNotFoundError; itself: Read-only file system." in system
    told = [r["messages"][1]["content"] for r in server.requests_for("execution")[1:]]
    assert "mcp__mine__look answered." in told[0] and "FileNotFoundError" in told[0]
    assert secret("BESIDE") not in json.dumps(server.requests_for("execution"))
    assert 'MCPServer("project")' in told[1]
    assert script.read_text() == PROJECT_SERVER


def test_mcp_list_shows_a_server_its_cwd_and_readable_paths_and_no_more(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "server.py").write_text(PROJECT_SERVER)
    (tools / "data.txt").write_text("tool data")
    (tmp_path / "notes.txt").write_text("project notes")
    (tmp_path / "secret.txt").write_text(secret("BESIDE"))
    look = [str(tools / "data.txt"), str(tmp_path / "notes.txt"), str(tmp_path / "secret.txt")]
    entry = {
        "command": sys.executable,
        "args": ["server.py"],
        "cwd": "tools",
        "readable": ["notes.txt"],
        "env": {"LOOK": json.dumps(look)},
    }
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"mcpServers": {"mine": entry}}), encoding="utf-8")
    child = spawn(
        tmp_path, None, "mcp", "list", AUTOAGENT_SANDBOX=mechanism, AUTOAGENT_MCP_CONFIG=str(mine)
    )
    child.expect_exact(" server.py): started, 1 tool")
    expect_words(
        child,
        "Sees data.txt=tool data; notes.txt=project notes; secret.txt=FileNotFoundError; "
        "itself: Read-only file system.",
    )
    assert finish(child) == 0
    assert (tools / "server.py").read_text() == PROJECT_SERVER


def test_a_server_run_in_the_project_folder_still_sees_no_dotenv(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    (tmp_path / "server.py").write_text(PROJECT_SERVER)
    (tmp_path / "notes.txt").write_text("project notes")
    (tmp_path / ".env").write_text(f"SOME_PASSWORD={secret('DOTENV')}\n")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "data.txt").write_text(secret("DATA"))
    look = [str(tmp_path / name) for name in ("notes.txt", ".env", "home/data.txt")]
    env = {"LOOK": json.dumps(look)}
    entry = {"command": sys.executable, "args": ["server.py"], "cwd": ".", "env": env}
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"mcpServers": {"mine": entry}}), encoding="utf-8")
    child = spawn(
        tmp_path, None, "mcp", "list", AUTOAGENT_SANDBOX=mechanism, AUTOAGENT_MCP_CONFIG=str(mine)
    )
    child.expect_exact(" server.py): started, 1 tool")
    # .env is empty, or (bwrap: /dev/null on a nodev mount) cannot be opened; the data gone.
    child.expect(r"Sees notes\.txt=project notes; \.env=(PermissionError)?; ")
    child.expect_exact("data.txt=FileNotFoundError;")
    assert finish(child) == 0
