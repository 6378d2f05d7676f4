"""Hooks through the CLI: the user's own commands before and after each command and at the end
of a run, in the shape Claude Code and Codex read (.autoagent/hooks.json, AUTOAGENT_HOOKS_FILE)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autoagent.base.text import strip_terminal_escapes
from autoagent.human.requests import AUDIT_LOG
from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, PROMPT, expect_words, finish, spawn

pytestmark = pytest.mark.slow

# A hook: reads the event on stdin, keeps it in a file of its own, and answers as told.
HOOK = """
import json, subprocess, sys, time
event = json.load(sys.stdin)
with open(sys.argv[1], "a") as seen:
    seen.write(json.dumps(event) + "\\n")
path = (event.get("arguments") or {}).get("path", "")
mode = sys.argv[2]
if mode == "deny" or (mode == "deny-b" and path == "b.txt"):
    print("no writes to " + path + ": keep notes in memory", file=sys.stderr)
    sys.exit(2)
if mode == "allow":
    print(json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                             "permissionDecision": "allow"}}))
if mode == "ask-c" and path == "c.txt":
    print(json.dumps({"hookSpecificOutput": {"permissionDecision": "ask",
                                             "permissionDecisionReason": "c.txt is shared"}}))
if mode == "sleep":  # with a child of its own, which the timeout must end too
    child = subprocess.Popen(["sleep", "60"])
    with open(sys.argv[1] + ".pid", "w") as pid:
        pid.write(str(child.pid))
    time.sleep(60)
if mode == "lint":
    print("run the linter on " + path + " next", file=sys.stderr)
    sys.exit(2)
"""


def write(name: str, content: str = "hello") -> str:
    return execution_reply("write_file", f"I will write {name}.", path=name, content=content)


def done() -> str:
    return execution_reply("finish", "Done.", reason="All goals met.")


def hook_command(tmp_path: Path, mode: str) -> str:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    return f"{sys.executable} {script} {tmp_path / f'seen-{mode}.jsonl'} {mode}"


def hooks_file(tmp_path: Path, event: str, mode: str, **group: Any) -> Path:
    """A hooks file with one hook for `event`; `group` holds its matcher or its timeout."""
    timeout = group.pop("timeout", 20)
    entry = {"type": "command", "command": hook_command(tmp_path, mode), "timeout": timeout}
    path = tmp_path / "hooks.json"
    path.write_text(json.dumps({"hooks": {event: [{**group, "hooks": [entry]}]}}))
    return path


def seen(tmp_path: Path, mode: str) -> list[dict[str, Any]]:
    path = tmp_path / f"seen-{mode}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "home" / AUDIT_LOG
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def prompts_seen(server: FakeOpenAIServer) -> list[str]:
    return [r["messages"][-1]["content"] for r in server.requests_for("execution")]


def files(tmp_path: Path) -> list[str]:
    workspace = tmp_path / "ws"
    return sorted(p.name for p in workspace.iterdir()) if workspace.exists() else []


def test_a_hook_that_exits_2_denies_write_file_in_a_continuous_run(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hooks = hooks_file(tmp_path, "PreToolUse", "deny", matcher="delete_file|write_.*")
    server.script("execution", write("a.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", AUTOAGENT_HOOKS_FILE=str(hooks))
    child.expect_exact("REFUSED:")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert files(tmp_path) == []
    reason = "no writes to a.txt: keep notes in memory"
    assert reason in prompts_seen(server)[1]
    # Only the command it matches: finish ran without it.
    assert [event["command"] for event in seen(tmp_path, "deny")] == ["write_file"]
    [event] = seen(tmp_path, "deny")
    assert event["arguments"] == {"path": "a.txt", "content": "hello"}
    assert (event["risk"], event["step"], event["hook_event_name"]) == ("medium", 1, "PreToolUse")
    # The audit trail holds the hook's command, its decision and its reason.
    [entry] = [e for e in audit(tmp_path) if e["kind"] == "hook"]
    assert entry["hook"] == hook_command(tmp_path, "deny")
    assert (entry["decision"], entry["command"], entry["text"]) == ("deny", "write_file", reason)
    assert entry["run_id"] == event["run"]


def test_a_hook_that_allows_runs_the_command_without_the_prompt(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hooks = hooks_file(tmp_path, "PreToolUse", "allow", matcher="write_file")
    server.script("execution", write("a.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, AUTOAGENT_HOOKS_FILE=str(hooks))
    assert child.expect_exact([PROMPT, "Allowed by the hook"]) == 1
    child.expect_exact("COMMAND = finish")
    child.expect_exact(PROMPT)  # finish is not the hook's: asked as usual
    assert files(tmp_path) == ["a.txt"]
    child.sendline("y")
    assert finish(child) == 0
    [entry] = [e for e in audit(tmp_path) if e["kind"] == "hook"]
    assert (entry["decision"], entry["hook"]) == ("allow", hook_command(tmp_path, "allow"))


def test_a_hook_past_its_timeout_denies_and_says_so(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hooks = hooks_file(tmp_path, "PreToolUse", "sleep", matcher="write_file", timeout=1)
    server.script("execution", write("a.txt"), done())
    started = time.monotonic()
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", AUTOAGENT_HOOKS_FILE=str(hooks))
    child.expect_exact("REFUSED:")
    expect_words(child, "did not finish within 1 seconds")
    assert finish(child) == 0
    assert time.monotonic() - started < 30
    assert files(tmp_path) == []
    assert "did not finish within 1 seconds" in prompts_seen(server)[1]
    [entry] = [e for e in audit(tmp_path) if e["kind"] == "hook"]
    assert entry["decision"] == "deny" and "did not finish" in entry["failure"]
    # Its process group was killed: the child it started is gone too.
    pid = (tmp_path / "seen-sleep.jsonl.pid").read_text()
    assert gone_or_zombie(pid)


def gone_or_zombie(pid: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_y_dash_n_does_not_bypass_a_hook_deny_and_a_hook_that_asks_is_asked(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "hooks.json").write_text(
        json.dumps(
            {
                "hooks": {
                    "PreToolUse": [
                        {
                            "matcher": "write_.*",
                            "hooks": [
                                {"type": "command", "command": hook_command(tmp_path, mode)}
                                for mode in ("deny-b", "ask-c")
                            ],
                        }
                    ]
                }
            }
        )
    )
    server.script("execution", write("a.txt"), write("b.txt"), write("c.txt"), done())
    child = spawn(
        tmp_path, server, "run", *PROFILE, AUTOAGENT_HOOKS_FILE=str(tmp_path / "hooks.json")
    )
    child.expect_exact(PROMPT)
    child.sendline("y -5")
    child.expect_exact("REFUSED:")
    expect_words(child, "no writes to b.txt")
    # c.txt: the hook asks, and the human is asked although 'y -5' covers it.
    expect_words(child, "c.txt is shared")
    child.expect_exact(PROMPT)
    assert files(tmp_path) == ["a.txt"]
    child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert files(tmp_path) == ["a.txt", "c.txt"]
    decisions = [(e["decision"], e["args"]["path"]) for e in audit(tmp_path) if e["kind"] == "hook"]
    assert ("deny", "b.txt") in decisions and ("ask", "c.txt") in decisions


def test_a_hook_that_asks_in_a_continuous_run_refuses(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hooks = hooks_file(tmp_path, "PreToolUse", "ask-c")
    server.script("execution", write("c.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", AUTOAGENT_HOOKS_FILE=str(hooks))
    child.expect_exact("REFUSED:")
    assert finish(child) == 0
    assert files(tmp_path) == []
    assert "asks a human about write_file" in prompts_seen(server)[1]


def test_post_tool_use_gets_the_result_and_its_exit_2_reaches_the_agent(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hooks = hooks_file(tmp_path, "PostToolUse", "lint", matcher="write_file")
    server.script("execution", write("a.txt", "hi"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", AUTOAGENT_HOOKS_FILE=str(hooks))
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert files(tmp_path) == ["a.txt"]
    [event] = seen(tmp_path, "lint")
    assert event["hook_event_name"] == "PostToolUse"
    assert (event["command"], event["arguments"]["path"]) == ("write_file", "a.txt")
    assert event["result"]["ok"] is True and "Wrote" in event["result"]["output"]
    assert "run the linter on a.txt next" in prompts_seen(server)[1]


def test_stop_runs_when_the_run_ends_with_its_cause(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hooks = hooks_file(tmp_path, "Stop", "stop")
    server.script("execution", write("a.txt"), write("b.txt"))
    child = spawn(tmp_path, server, "run", *PROFILE, "-l", "1", AUTOAGENT_HOOKS_FILE=str(hooks))
    child.expect_exact("Run stopped:")
    assert finish(child) == 4  # the continuous limit
    [event] = seen(tmp_path, "stop")
    assert event["hook_event_name"] == "Stop"
    assert (event["stop_cause"], event["status"]) == ("continuous-limit", "stopped")
    assert event["run"] in {e["run_id"] for e in audit(tmp_path)}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "it is not JSON"),
        (
            json.dumps({"hooks": {"PreToolUse": [{"matcher": "write_(", "hooks": []}]}}),
            "the PreToolUse matcher 'write_(' is not a regular expression",
        ),
        (json.dumps({"hooks": {"PreTooluse": []}}), "PreTooluse"),
        (
            json.dumps({"hooks": {"Stop": [{"hooks": [{"type": "command"}]}]}}),
            "command: Field required",
        ),
    ],
)
def test_a_malformed_hooks_file_is_one_sentence_and_the_run_does_not_start(
    tmp_path: Path, server: FakeOpenAIServer, content: str, problem: str
) -> None:
    (tmp_path / "hooks.json").write_text(content)
    for where in ({"AUTOAGENT_HOOKS_FILE": str(tmp_path / "hooks.json")}, {}):
        if not where:  # the project's own file: also checked, before it is asked about
            (tmp_path / ".autoagent").mkdir()
            (tmp_path / "hooks.json").rename(tmp_path / ".autoagent" / "hooks.json")
        child = spawn(tmp_path, server, "run", *PROFILE, "-c", **where)
        output = " ".join(strip_terminal_escapes(child.read()).split())  # however it wraps
        assert finish(child) == 1
        assert "Error: The hooks file" in output and problem in output
        assert "Traceback" not in output
    assert server.requests_for("execution") == []
    assert not (tmp_path / "home" / "runs").exists() or not any(
        (tmp_path / "home" / "runs").iterdir()
    )


def test_a_projects_hooks_file_runs_only_once_the_user_said_yes(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / ".autoagent").mkdir()
    project = tmp_path / ".autoagent" / "hooks.json"
    hooks = hooks_file(tmp_path, "PreToolUse", "deny", matcher="write_file")
    project.write_text(hooks.read_text())
    # A continuous run asks no one: the file is left out, and says so.
    server.script("execution", write("a.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("hooks file")
    child.expect_exact("is left out")
    assert finish(child) == 0
    assert files(tmp_path) == ["a.txt"] and seen(tmp_path, "deny") == []
    # Asked once; after a yes, its hooks run, in the folder the run started in.
    server.script("execution", write("b.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact("This folder has its own hooks file")
    child.expect_exact(hook_command(tmp_path, "deny"))
    child.expect_exact("Run these hooks? [y/n]")
    child.sendline("y")
    child.expect_exact("REFUSED:")
    child.expect_exact(PROMPT)  # finish
    child.sendline("y")
    assert finish(child) == 0
    assert files(tmp_path) == ["a.txt"]
    [event] = seen(tmp_path, "deny")
    assert event["cwd"] == str(tmp_path)
    answers = json.loads((tmp_path / "home" / "mcp-approvals.json").read_text())
    assert answers[str(project.resolve())]["approved"] is True
    # The answer is kept: not asked again.
    server.script("execution", write("c.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("REFUSED:")
    assert finish(child) == 0
    assert files(tmp_path) == ["a.txt"]


def test_a_hook_that_fails_denies_and_says_so(tmp_path: Path, server: FakeOpenAIServer) -> None:
    path = tmp_path / "hooks.json"
    entry = {"type": "command", "command": "echo broken >&2; exit 3"}
    path.write_text(
        json.dumps({"hooks": {"PreToolUse": [{"matcher": "write_file", "hooks": [entry]}]}})
    )
    server.script("execution", write("a.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", AUTOAGENT_HOOKS_FILE=str(path))
    child.expect_exact("REFUSED:")
    expect_words(child, "failed with exit code 3: broken")
    assert finish(child) == 0
    assert files(tmp_path) == []
