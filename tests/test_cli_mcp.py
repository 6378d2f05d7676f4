"""MCP tools through the CLI: a pseudo-terminal, the test model server, real MCP servers."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply
from autoagent.tools.sandbox import Mechanism, probe

from . import cli_helpers
from .cli_helpers import PROFILE, PROMPT, checkpoints, finish
from .servers import recording_server

pytestmark = pytest.mark.slow

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def config(tmp_path: Path, **servers: dict[str, Any]) -> Path:
    """The user's own MCP config, which `spawn` names with AUTOAGENT_MCP_CONFIG (a project's
    `.mcp.json` is asked about first: test_cli_mcp_trust.py)."""
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def spawn(tmp_path: Path, server: FakeOpenAIServer | None, *args: str, **env: str) -> pexpect.spawn:
    if (tmp_path / "mcp.json").exists():
        env.setdefault("AUTOAGENT_MCP_CONFIG", str(tmp_path / "mcp.json"))
    return cli_helpers.spawn(tmp_path, server, *args, **env)


def server_entry(**keys: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [SERVER], **keys}


def done() -> str:
    return execution_reply("finish", "Done.", reason="All goals met.")


def servers_left(tmp_path: Path, marker: str = SERVER) -> list[int]:
    """Test MCP servers still running in this test's workspace."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if marker.encode() in cmdline and cwd == str(tmp_path / "ws"):
            left.append(int(entry.name))
    return left


def wait_for_log(tmp_path: Path, name: str, text: str, seconds: float = 30) -> None:
    """Wait until the MCP server `name` of the run has written `text` to its log."""
    deadline = time.monotonic() + seconds
    while not any(
        text in log.read_text(errors="replace")
        for log in (tmp_path / "home" / "runs").glob(f"*/mcp/{name}.log")
    ):
        assert time.monotonic() < deadline, f"the server {name!r} never logged {text!r}"
        time.sleep(0.02)


def test_an_mcp_tool_runs_after_y_and_nothing_is_left_running(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    config(tmp_path, t=server_entry())
    server.script(
        "execution",
        execution_reply("mcp__t__write_note", "I will note it.", name="n.txt", text="noted"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact("MCP server 't': 10 tools, high risk.")
    child.expect_exact("COMMAND = mcp__t__write_note")
    child.expect_exact("high risk")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("RESULT (mcp__t__write_note)")
    child.expect_exact("mcp__t__write_note answered.")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert (tmp_path / "ws" / "n.txt").read_text() == "noted"
    system = server.requests_for("execution")[0]["messages"][0]["content"]
    assert "- mcp__t__write_note(name: string, text: string): Write a note" in system
    observation = server.requests_for("execution")[1]["messages"][1]["content"]
    assert "wrote 5 characters to n.txt" in observation
    assert servers_left(tmp_path) == []
    assert (tmp_path / "home" / "runs").is_dir()
    [state] = checkpoints(tmp_path)
    assert (tmp_path / "home" / "runs" / state["run_id"] / "mcp" / "t.log").exists()


def test_a_policy_deny_refuses_an_mcp_tool(tmp_path: Path, server: FakeOpenAIServer) -> None:
    config(tmp_path, t=server_entry())
    policy = tmp_path / "policy.yaml"
    policy.write_text("commands:\n  mcp__t__*: deny\n")
    server.script(
        "execution",
        execution_reply("mcp__t__write_note", name="n.txt", text="noted"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, AUTOAGENT_POLICY_FILE=str(policy))
    child.expect_exact("REFUSED:")
    child.expect_exact("Refused: the policy denies mcp__t__write_note.")
    child.expect_exact(PROMPT)  # the finish
    child.sendline("y")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "n.txt").exists()


def test_continuous_refuses_a_high_risk_mcp_tool_and_runs_a_low_risk_one(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    config(tmp_path, t=server_entry(), safe=server_entry(risk="low", includeTools=["echo"]))
    server.script(
        "execution",
        execution_reply("mcp__t__write_note", name="n.txt", text="noted"),
        execution_reply("mcp__safe__echo", text="hello"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("MCP server 'safe': 1 tool, low risk.")
    child.expect_exact("REFUSED:")
    child.expect_exact("Refused: mcp__t__write_note needs a human's approval")
    child.expect_exact("RESULT (mcp__safe__echo)")
    child.expect_exact("mcp__safe__echo answered.")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "n.txt").exists()
    assert servers_left(tmp_path) == []


def test_a_server_that_crashes_mid_call_leaves_the_run_going(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    config(tmp_path, t=server_entry(), other=server_entry(includeTools=["echo"]))
    server.script(
        "execution",
        execution_reply("mcp__t__crash", "Let us see."),
        execution_reply("mcp__t__echo", text="still there?"),
        execution_reply("mcp__other__echo", text="still here"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk")
    child.expect_exact("RESULT (mcp__t__crash)")
    child.expect_exact("Error: The MCP server 't' is gone")
    child.expect_exact("NOT RUN:")
    child.expect_exact("mcp__t__echo is no longer available")
    child.expect_exact("RESULT (mcp__other__echo)")
    child.expect_exact("mcp__other__echo answered.")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    requests = server.requests_for("execution")
    assert "mcp__t__echo" in requests[0]["messages"][0]["content"]
    assert "mcp__t__echo" not in requests[1]["messages"][0]["content"]
    assert "mcp__other__echo" in requests[1]["messages"][0]["content"]
    assert "The MCP server 't' is gone" in requests[1]["messages"][1]["content"]
    assert servers_left(tmp_path) == []


def test_ctrl_c_during_a_tool_call_stops_every_server(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    config(tmp_path, t=server_entry(), u=server_entry())
    server.script("execution", execution_reply("mcp__t__nap", seconds=60))
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)
    assert len(servers_left(tmp_path)) >= 2  # each inside its sandbox's processes
    child.sendline("y")
    wait_for_log(tmp_path, "t", "napping for 60")  # the call is under way
    child.sendintr()
    child.expect_exact("Run interrupted")
    assert finish(child) == 130
    assert servers_left(tmp_path) == []


def test_ctrl_c_while_servers_start_stops_them_at_once(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    sleeps = "import time; time.sleep(120)"
    config(tmp_path, t=server_entry(), slow={"command": sys.executable, "args": ["-c", sleeps]})
    child = spawn(tmp_path, server, "run", *PROFILE)
    deadline = time.monotonic() + 30
    while not servers_left(tmp_path, sleeps):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    started = time.monotonic()
    child.sendintr()
    finish(child)
    assert time.monotonic() - started < 10
    assert servers_left(tmp_path) == [] and servers_left(tmp_path, sleeps) == []
    assert server.requests_for("execution") == []


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"command": "x", "colour": "red"}, "server 'bad': colour: Extra inputs are not permitted"),
        ({"url": "file:///etc/passwd"}, "server 'bad': the url must be http:// or https://"),
        ({"command": "no-such-mcp-program"}, "'no-such-mcp-program' is not on the PATH"),
    ],
)
def test_a_bad_mcp_config_stops_before_the_loop(
    tmp_path: Path, server: FakeOpenAIServer, entry: dict[str, Any], message: str
) -> None:
    config(tmp_path, bad=entry)
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact("Error:")
    child.expect_exact(message)
    assert finish(child) == 1
    assert not (tmp_path / "home" / "runs").exists()
    assert server.requests_for("execution") == []


def test_mcp_list_shows_each_server_whether_it_starts_and_its_tools(tmp_path: Path) -> None:
    path = tmp_path / "servers.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "t": server_entry(risk="medium", excludeTools=["crash", "nap"]),
                    "broken": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]},
                }
            }
        )
    )
    child = spawn(tmp_path, None, "mcp", "list", "--mcp-config", str(path))
    child.expect_exact("started, 8 tools")
    child.expect_exact("mcp__t__echo (medium): Say the text back.")
    child.expect_exact("broken")
    child.expect_exact("did not start")
    assert finish(child) == 1
    assert servers_left(tmp_path) == []


SCHEMA_SERVER = str(Path(__file__).with_name("mcp_schema_server.py"))


def schema_entry(**tools: dict[str, Any]) -> dict[str, Any]:
    """A server whose tools have exactly these input schemas."""
    env = {"MCP_TEST_TOOLS": json.dumps(tools)}
    return {"command": sys.executable, "args": [SCHEMA_SERVER], "env": env}


def events(tmp_path: Path) -> str:
    [run] = (tmp_path / "home" / "runs").iterdir()
    return (run / "events.jsonl").read_text(encoding="utf-8")


@pytest.mark.sandbox
def test_a_remote_reference_in_a_tool_schema_is_never_fetched(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    with recording_server(b'{"type": "string"}') as (url, hits):
        remote = {"type": "object", "properties": {"q": {"$ref": f"{url}/q.json"}}}
        plain = {"type": "object", "properties": {"q": {"type": "string"}}}
        config(tmp_path, s=schema_entry(lookup=remote, plain=plain))
        server.script(
            "execution",
            execution_reply("mcp__s__lookup", q="x"),
            execution_reply("mcp__s__plain", q="y"),
            done(),
        )
        child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk")
        left_out = (
            "The MCP tool mcp__s__lookup is left out: its input schema cannot be used (the "
            f"reference '{url}/q.json' points at nothing in the schema; references are never "
            "fetched)."
        )
        child.expect_exact("MCP server 's': 1 tool, high risk.")
        child.expect_exact(left_out)
        child.expect_exact("mcp__s__lookup is not available: its input schema cannot be used")
        child.expect_exact("RESULT (mcp__s__plain)")
        child.expect_exact("mcp__s__plain answered.")
        child.expect_exact("Run finished:")
        assert finish(child) == 0
        assert hits == []
    told = server.requests_for("execution")[1]["messages"][1]["content"]
    assert "mcp__s__lookup is not available: its input schema cannot be used" in told
    assert "mcp__s__lookup" not in server.requests_for("execution")[0]["messages"][0]["content"]
    assert events(tmp_path).count(left_out) == 1


@pytest.mark.sandbox
def test_bad_tool_schemas_leave_their_tools_out_and_a_runaway_pattern_is_cut_short(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    config(
        tmp_path,
        s=schema_entry(
            loops={"type": "object", "$ref": "#"},
            dangling={"type": "object", "properties": {"a": {"$ref": "#/$defs/gone"}}},
            invalid={"type": "object", "properties": {"a": {"type": "nonsense"}}},
            pattern={"type": "object", "properties": {"q": {"pattern": "^(a+)+$"}}},
            fine={"type": "object", "properties": {"q": {"type": "string"}}},
        ),
    )
    server.script(
        "execution",
        execution_reply("mcp__s__loops", a=1),
        execution_reply("mcp__s__dangling", a=1),
        execution_reply("mcp__s__pattern", q="a" * 40 + "!"),
        execution_reply("mcp__s__fine", q="still here"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk")
    child.expect_exact("MCP server 's': 2 tools, high risk.")
    notes = {
        "loops": "a reference loops back to itself, so a check would never end",
        "dangling": "the reference '#/$defs/gone' points at nothing in the schema",
        "invalid": "not a valid JSON schema:",
    }
    child.expect_exact("mcp__s__loops is not available")
    child.expect_exact("mcp__s__dangling is not available")
    started = time.monotonic()
    child.expect_exact("took over 2 s (a pattern that backtracks without end?)")
    assert time.monotonic() - started < 30
    child.expect_exact("RESULT (mcp__s__fine)")
    child.expect_exact("mcp__s__fine answered.")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    [state] = checkpoints(tmp_path)
    assert state["status"] != "running"
    log = events(tmp_path)
    for tool, reason in notes.items():
        note = f"The MCP tool mcp__s__{tool} is left out: its input schema cannot be used ({reason}"
        assert log.count(note) == 1, note
    told = server.requests_for("execution")[4]["messages"][1]["content"]
    assert 'fine got {"q": "still here"}' in told


LIMITS_SERVER = str(Path(__file__).with_name("mcp_limits_server.py"))


@pytest.fixture(params=[Mechanism.BWRAP, Mechanism.LANDLOCK], ids=["bwrap", "landlock"])
def mechanism(request: pytest.FixtureRequest) -> str:
    problem = probe(request.param)
    if problem is not None:
        pytest.skip(f"{request.param.value} does not work here: {problem}")
    return str(request.param.value)


def limit(limits: str, name: str) -> list[str]:
    """The soft and hard values of one line of /proc/self/limits."""
    [line] = [line for line in limits.splitlines() if line.startswith(name)]
    return line[len(name) :].split()[:2]


@pytest.mark.sandbox
def test_an_mcp_server_runs_with_the_sandbox_limits(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    config(tmp_path, lim={"command": sys.executable, "args": [LIMITS_SERVER]})
    server.script(
        "execution",
        execution_reply("mcp__lim__limits"),
        execution_reply("mcp__lim__spawn", count=400),
        done(),
    )
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        "--allow-high-risk",
        AUTOAGENT_SANDBOX=mechanism,
        AUTOAGENT_SANDBOX_MEMORY="1536M",
        AUTOAGENT_SANDBOX_FILE_SIZE="64M",
        AUTOAGENT_SANDBOX_CPU_SECONDS="321",
        AUTOAGENT_SANDBOX_PROCESSES="40",
    )
    child.expect_exact("RESULT (mcp__lim__limits)")
    child.expect_exact("RESULT (mcp__lim__spawn)")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    told = [r["messages"][1]["content"] for r in server.requests_for("execution")[1:]]
    limits = told[0]
    assert limit(limits, "Max address space") == [str(1536 << 20)] * 2
    assert limit(limits, "Max file size") == [str(64 << 20)] * 2
    assert limit(limits, "Max cpu time") == ["321", "322"]
    started = re.search(r"started (\d+) of 400", told[1])
    assert started, told[1]
    assert int(started.group(1)) < 40
    assert servers_left(tmp_path, LIMITS_SERVER) == []
