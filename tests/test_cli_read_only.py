"""Read-only runs through the CLI: only commands that change nothing are offered, a proposal of
another one runs nothing, and the run ends with its findings and plan in the run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, checkpoints
from .test_cli_mcp import config, server_entry, spawn

pytestmark = pytest.mark.slow

REFUSED = "is not available: a read-only run offers only commands that change nothing"


def done() -> str:
    return execution_reply(
        "finish", "Done.", reason="Looked around.", goal_report=["not met: nothing written yet"]
    )


def run_to_end(tmp_path: Path, server: FakeOpenAIServer, *args: str, **env: str) -> str:
    child = spawn(tmp_path, server, *args, **env)
    child.expect(pexpect.EOF)
    screen = " ".join(child.before.split())
    child.close()
    limited = "--max-steps" in args  # a run that reaches --max-steps exits 3
    assert child.exitstatus == (3 if limited else 0), screen
    assert "Traceback" not in screen
    return screen


def offered(request: dict[str, Any]) -> str:
    """The commands a request offers: its system prompt and the reply schema it holds to."""
    schema = json.dumps(request.get("response_format") or {})
    return request["messages"][0]["content"] + schema


def workspace_files(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "ws"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def events(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    [run] = (tmp_path / "home" / "runs").iterdir()
    lines = (run / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == kind]


def test_a_read_only_run_offers_no_change_refuses_a_write_and_leaves_its_findings(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_bytes(b"the old notes\n")
    before = workspace_files(tmp_path)
    server.script(
        "execution",
        execution_reply("read_file", "Read the notes.", path="notes.txt"),
        execution_reply("write_file", "Replace them.", path="notes.txt", content="new"),
        execution_reply("execute_python_code", "Run code.", code="open('x.txt', 'w')"),
        done(),
    )
    server.script("task-creation", json.dumps({"tasks": ["Rewrite notes.txt in English"]}))
    screen = run_to_end(tmp_path, server, "run", *PROFILE, "-c", "--read-only")
    assert "Read-only run: only commands that change nothing are offered" in screen
    for request in server.requests_for("execution"):
        commands = offered(request)
        assert "read_file" in commands and "list_files" in commands and "finish" in commands
        for name in ("write_file", "append_to_file", "delete_file", "execute_python"):
            assert name not in commands
    assert f"write_file {REFUSED}" in screen
    assert f"execute_python_code {REFUSED}" in screen
    assert workspace_files(tmp_path) == before  # byte-identical, nothing added
    assert not (tmp_path / "ws" / "scripts").exists()
    [state] = checkpoints(tmp_path)
    assert state["config"]["read_only"] is True
    assert events(tmp_path, "RunStarted")[0]["config"]["read_only"] is True
    [ended] = events(tmp_path, "RunEnded")
    findings = Path(ended["findings"])
    assert findings == tmp_path / "home" / "runs" / state["run_id"] / "findings.md"
    assert "Findings and plan:" in screen and findings.name in screen
    text = findings.read_text()
    assert "## Goals" in text and "1. Write files as asked" in text
    assert "the old notes" in text  # what the read taught
    assert "## Plan: what is left to do" in text and "Rewrite notes.txt in English" in text
    assert "not met: nothing written yet" in text


def test_resume_of_a_read_only_run_stays_read_only_unless_told(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("list_files", "Look first."))
    run_to_end(tmp_path, server, "run", *PROFILE, "-c", "--read-only", "--max-steps", "1")
    server.script("execution", execution_reply("list_files", "Look again."))
    screen = run_to_end(tmp_path, server, "resume", "-c", "--max-steps", "2")
    assert "Read-only run:" in screen
    assert "write_file" not in offered(server.requests_for("execution")[-1])
    server.script("execution", done())
    screen = run_to_end(tmp_path, server, "resume", "-c", "--no-read-only")
    assert "This run's read-only mode was on; it is off now" in screen
    assert "Read-only run:" not in screen
    assert "write_file" in offered(server.requests_for("execution")[-1])


def test_a_read_only_run_leaves_out_mcp_servers_above_low_risk(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    config(tmp_path, t=server_entry(risk="medium"), safe=server_entry(risk="low"))
    server.script("execution", done())
    screen = run_to_end(tmp_path, server, "run", *PROFILE, "-c", "--read-only")
    assert "The MCP server 't' is left out: a read-only run uses only the servers of low risk" in (
        screen
    )
    assert "MCP server 'safe':" in screen
    commands = offered(server.requests_for("execution")[0])
    assert "mcp__safe__echo" in commands
    assert "mcp__t__" not in commands
