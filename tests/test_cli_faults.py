"""Faults, limits and hostile text through the CLI: each test failed before its fix."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, Fault, Slow, execution_reply

from .cli_helpers import PROFILE, PROMPT, checkpoints, finish, spawn
from .test_cli_mcp import SERVER, config, server_entry, servers_left

pytestmark = pytest.mark.slow


def write(name: str, content: str = "x") -> str:
    return execution_reply("write_file", path=name, content=content)


def done(reason: str = "All goals met.") -> str:
    return execution_reply("finish", reason=reason)


def expect_words(child: pexpect.spawn, phrase: str) -> None:
    """Expect `phrase`, wherever the screen wraps it (and quotes the wrapped part)."""
    words = (re.escape(word) for word in phrase.split())
    child.expect(r"(?:\s|\x1b\[[0-9;]*m|│)+".join(words))


def plain_lines(screen: str) -> list[str]:
    """The screen's lines without styles and cursor moves."""
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", line) for line in screen.split("\n")]


def wait_for(predicate, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# 11


def test_a_503_while_the_response_format_is_probed_is_retried(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", Fault(503), write("a.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert (tmp_path / "ws" / "a.txt").exists()
    formats = [(r.get("response_format") or {}).get("type") for r in server.requests]
    assert formats[:2] == ["json_schema", "json_schema"]  # the same format, asked again


# 12


def test_a_reply_with_several_commands_runs_the_first_and_tells_the_model(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    several = json.dumps([json.loads(write("first.txt")), json.loads(write("second.txt"))])
    server.script("execution", several, done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["first.txt"]
    next_prompt = server.requests_for("execution")[1]["messages"][-1]["content"]
    assert "held 2 commands" in next_prompt and "write_file did not run" in next_prompt


# 13


def test_ask_user_in_a_continuous_run_is_refused_at_once(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("ask_user", question="Which city?"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", timeout=20)
    expect_words(child, "REFUSED: Refused: ask_user needs someone to answer")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert "Your answer:" not in (child.before or "")
    second = server.requests_for("execution")[1]["messages"][-1]["content"]
    assert "ask_user needs someone to answer" in second


# 14


def test_end_of_input_at_a_question_stops_the_run_resumably(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("ask_user", question="Which city?"))
    child = spawn(tmp_path, server, "run", *PROFILE, timeout=20)
    child.expect_exact("Your answer:")
    child.sendeof()
    child.expect_exact("Run stopped:")
    expect_words(child, "The input ended while the agent asked a question")
    assert finish(child) == 8
    assert len(server.requests_for("execution")) == 1
    [state] = checkpoints(tmp_path)
    assert state["status"] == "stopped" and state["current"] is None

    server.script("execution", done())
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("Resuming run")
    child.expect_exact("Run finished:")
    assert finish(child) == 0


# 15


def test_a_goal_too_long_for_the_prompt_is_refused_when_the_profile_is_made(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = spawn(tmp_path, server, "run", "--name", "Scout", "--role", "r", "--goal", "g" * 5000)
    expect_words(child, "Error: Invalid agent profile")
    expect_words(child, "goal 1 has 5000 characters, more than 1000")
    assert finish(child) == 1
    assert not server.requests and not (tmp_path / "home" / "runs").exists()


def test_a_system_prompt_over_half_the_budget_is_refused_before_the_run(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    goals = [arg for n in range(5) for arg in ("--goal", f"{n} " + "g" * 990)]
    child = spawn(
        tmp_path,
        server,
        "run",
        *("--name", "Scout", "--role", "r" * 1500, *goals),
        AUTOAGENT_PROMPT_TOKENS="3000",
    )
    expect_words(child, "Error: The agent's role, goals and commands make a system prompt")
    child.expect_exact("AUTOAGENT_PROMPT_TOKENS")
    assert finish(child) == 1
    assert not server.requests and not (tmp_path / "home" / "runs").exists()


# 16


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (
            lambda tmp: (tmp / ".env").write_bytes(b"AUTOAGENT_MODEL=caf\xe9\n"),
            [*PROFILE],
            ".env is not UTF-8 text (byte 0xe9 at position 19)",
        ),
        (
            lambda tmp: (tmp / "ai_settings.yaml").write_bytes(
                b"ai_name: Scout\nai_role: caf\xe9\nai_goals: [a]\n"
            ),
            ["-y"],
            "ai_settings.yaml is not UTF-8 text",
        ),
        (
            lambda tmp: (tmp / "afile").write_text("not a folder"),
            [*PROFILE, "--workspace", "afile"],
            "afile is a file",
        ),
    ],
    ids=["dotenv", "ai_settings", "workspace"],
)
def test_unreadable_settings_are_one_sentence_without_a_traceback(
    tmp_path: Path, server: FakeOpenAIServer, setup, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    child = spawn(tmp_path, server, "run", *args)
    child.expect_exact("Error:")
    expect_words(child, message)
    assert finish(child) == 1
    assert "Traceback" not in (child.before or "")
    assert not (tmp_path / "home" / "runs").exists()


# 17


def test_ctrl_c_while_waiting_on_the_model_exits_within_a_second(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", Slow(write("a.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 1)
    started = time.monotonic()
    child.sendintr()
    child.expect(pexpect.EOF)
    seconds = time.monotonic() - started
    assert "Run interrupted:" in (child.before or "")
    assert finish(child) == 130
    assert seconds < 1.0, f"took {seconds:.2f} s"
    [state] = checkpoints(tmp_path)
    assert state["status"] == "interrupted"


# 18


def test_debug_writes_each_log_line_once(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", "not json at all", done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--debug")
    child.logfile_read = io.StringIO()
    child.expect(r"Debug log: (\S+debug\.log)")
    log_path = Path(child.match.group(1).strip())
    assert finish(child) == 0
    asked_again = "unusable reply from the execution agent"
    assert asked_again not in child.logfile_read.getvalue()  # a quiet retry on the screen
    log = log_path.read_text()
    assert log.count(asked_again) == 1
    assert log.count("reply from execution in") == 2


# 19

HOSTILE_MODEL = (
    "gpt-evil\x1b]52;c;cHduZWQ=\x07\x1b]0;pwned\x07[/dim][link=http://evil.example]click[/link]"
)
SHOWN_MODEL = "gpt-evil[/dim][link=http://evil.example]click[/link]"


def assert_inert(screen: str) -> None:
    assert SHOWN_MODEL in screen
    for sequence in ("\x1b]52;", "\x1b]0;", "\x1b]8;", "pwned"):
        assert sequence not in screen


def test_a_hostile_model_name_is_inert_text_in_status_spent_resume_and_show(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer(served_model=HOSTILE_MODEL) as server:
        server.script("execution", write("a.txt"))
        child = spawn(tmp_path, server, "run", *PROFILE)
        child.logfile_read = io.StringIO()
        child.expect_exact(PROMPT)
        child.sendline("y")
        child.expect(r"Step 1 · [\d,]+ tokens · \$0\.0000 \(tokens only for ")
        child.expect_exact(PROMPT)
        child.sendline("n")
        child.expect_exact("Run stopped:")
        child.expect_exact("Spent:")
        assert finish(child) == 7
        assert_inert(child.logfile_read.getvalue())
        [state] = checkpoints(tmp_path)
        assert HOSTILE_MODEL in state["spend"]["unpriced_models"]

        child = spawn(tmp_path, server, "resume", "-c")
        child.logfile_read = io.StringIO()
        child.expect_exact("Run finished:")
        assert finish(child) == 0
        assert_inert(child.logfile_read.getvalue())

        child = spawn(tmp_path, server, "show", state["run_id"])
        child.logfile_read = io.StringIO()
        child.expect_exact("model calls:")
        assert finish(child) == 0
        assert_inert(child.logfile_read.getvalue())


# 20

LOOKALIKE = (
    "Thanks for reading.\n"
    "Enter 'y' to authorise, 'y -N' to run N commands without asking, 'n' to stop, "
    "or type feedback: "
)


def test_keys_typed_at_a_lookalike_prompt_never_answer_the_real_one(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_text(LOOKALIKE)
    (tmp_path / "ws" / "precious.txt").write_text("keep me")
    server.script(
        "execution",
        execution_reply("read_file", path="notes.txt"),
        Slow(execution_reply("delete_file", path="precious.txt"), 2.0),
    )
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.logfile_read = io.StringIO()
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("RESULT (read_file)")
    child.expect_exact(PROMPT)  # the file's lookalike
    child.sendline("y")  # answered too early: the agent is still thinking
    child.expect_exact("COMMAND = delete_file")
    child.expect_exact(PROMPT)  # the real prompt: had the early "y" answered it, the file
    child.sendline("n")  # would be gone before the run stops (checked below)
    child.expect_exact("Run stopped:")
    assert finish(child) == 7
    assert (tmp_path / "ws" / "precious.txt").exists()
    lines = plain_lines(child.logfile_read.getvalue())
    prompts = [line for line in lines if "Enter 'y' to authorise" in line]
    assert len(prompts) == 3
    # The file's lookalike is quoted behind the margin; the real prompts start their line.
    assert prompts[1].startswith("│ ") and "Enter 'y'" not in prompts[1][:2]
    assert prompts[0].startswith("Enter 'y'") and prompts[2].startswith("Enter 'y'")


# 22


@pytest.mark.parametrize(
    "policy, problem",
    [
        ("commands:\n  delete_files: deny\n", "unknown command 'delete_files'"),
        ("commands:\n  Delete_File: DENY\n", "(did you mean 'delete_file'?)"),
        ("commands:\n  delete_file: DENY\n", "'DENY' is not allow, ask or deny"),
        ("rules:\n  delete_file: deny\n", "unknown key 'rules'"),
    ],
    ids=["unknown-command", "wrong-case-name", "wrong-case-rule", "unknown-key"],
)
def test_a_policy_that_would_not_be_obeyed_is_refused(
    tmp_path: Path, server: FakeOpenAIServer, policy: str, problem: str
) -> None:
    (tmp_path / "policy.yaml").write_text(policy)
    child = spawn(
        tmp_path, server, "run", *PROFILE, AUTOAGENT_POLICY_FILE=str(tmp_path / "policy.yaml")
    )
    expect_words(child, "Error: The policy file")
    expect_words(child, problem)
    assert finish(child) == 1
    assert not server.requests


# 23


def test_y_dash_n_does_not_cover_a_high_risk_command(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        write("a.txt"),
        execution_reply("delete_file", path="a.txt"),
        write("b.txt"),
    )
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact(PROMPT)
    child.sendline("y -5")
    child.expect_exact("COMMAND = delete_file")
    expect_words(child, "High risk: asked although 4 commands are authorised in advance")
    child.expect_exact(PROMPT)
    assert (tmp_path / "ws" / "a.txt").exists()
    child.sendline("y")  # this one only; the rest of 'y -5' still holds
    child.expect_exact("COMMAND = write_file")
    child.expect_exact("Authorised in advance")
    child.expect_exact("COMMAND = finish")
    child.expect_exact("Authorised in advance")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["b.txt"]


# issue 23, item 6


def test_a_workspace_removed_during_the_run_stops_it_in_one_sentence_and_resume_goes_on(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    workspace = tmp_path / "ws"
    server.script("execution", write("a.txt"), write("b.txt"))
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.logfile_read = io.StringIO()
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("RESULT (write_file)")
    child.expect_exact(PROMPT)
    shutil.rmtree(workspace)
    child.sendline("y")
    child.expect_exact("Run stopped:")
    expect_words(child, f"The workspace {workspace} was removed during the run")
    child.expect_exact("autoagent resume")
    assert finish(child) == 9
    assert "Traceback" not in child.logfile_read.getvalue()
    assert not workspace.exists()  # it may have been removed on purpose: not made again
    [state] = checkpoints(tmp_path)
    assert state["status"] == "stopped" and state["current"] is None

    server.script("execution", write("b.txt"), done())
    child = spawn(tmp_path, server, "resume", "-c")
    expect_words(child, f"The workspace {workspace} was not there: the run goes on in an empty one")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert sorted(p.name for p in workspace.iterdir()) == ["b.txt"]
    # The write that found no workspace is proposed again, with nothing lost or counted twice.
    assert len(server.requests_for("execution")) == 4


# issue 23, item 7


def test_an_mcp_server_that_writes_stray_lines_on_stdout_is_noted_once_without_tracebacks(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    entry = server_entry(risk="low", env={"MCP_TEST_GARBAGE": "1"})
    mcp = config(tmp_path, t=entry)
    server.script(
        "execution",
        execution_reply("mcp__t__echo", text="one"),
        execution_reply("mcp__t__echo", text="two"),
        done(),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--debug", AUTOAGENT_MCP_CONFIG=str(mcp))
    child.logfile_read = io.StringIO()
    child.expect(r"Debug log: (\S+debug\.log)")
    log_path = Path(child.match.group(1).strip())
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    screen = child.logfile_read.getvalue()
    assert screen.count("mcp__t__echo answered.") == 2
    assert "Traceback" not in screen and "JSONRPC" not in screen
    assert len(re.findall(r"wrote\s+lines\s+that\s+are\s+not\s+MCP\s+messages", screen)) == 1
    assert log_path.read_text().count("Failed to parse JSONRPC message from server") == 2


# issue 23, item 12


def test_an_ai_settings_that_is_a_folder_is_said_before_anything_is_asked(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "ai_settings.yaml").mkdir()
    child = spawn(tmp_path, server, "run", timeout=15)
    child.expect_exact("Error:")
    expect_words(child, "ai_settings.yaml is a folder, not a file")
    assert finish(child) == 1
    assert "Name:" not in (child.before or "") and "Traceback" not in (child.before or "")
    assert not server.requests and not (tmp_path / "home" / "runs").exists()


# issue 23, item 13


def test_an_unconfined_mcp_server_that_outstays_its_stdin_dies_with_the_agent(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    # Started as npx or uvx start one: through a program that waits for it.
    wrapped = f"{shlex.quote(sys.executable)} {shlex.quote(SERVER)}; exit $?"
    entry = {"command": "/bin/sh", "args": ["-c", wrapped], "env": {"MCP_TEST_LINGER": "1"}}
    mcp = config(tmp_path, t=entry)
    server.script("execution", execution_reply("mcp__t__echo", text="hi"))
    child = spawn(tmp_path, server, "run", *PROFILE, "--no-sandbox", AUTOAGENT_MCP_CONFIG=str(mcp))
    child.expect_exact(PROMPT)
    started = servers_left(tmp_path)
    try:
        assert len(started) >= 2  # the shell and the server it waits for
        os.kill(child.pid, signal.SIGKILL)  # as a crash: the agent alone, not its children
        child.expect(pexpect.EOF)
        child.close()
        wait_for(lambda: servers_left(tmp_path) == [], seconds=10)
    finally:
        for pid in servers_left(tmp_path):
            os.kill(pid, signal.SIGKILL)
