"""Durable, bounded runs through the CLI: crashes, interrupts, resume, faults, limits."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, Fault, Slow, execution_reply

from .cli_helpers import PROFILE, checkpoints, finish, spawn

pytestmark = pytest.mark.slow


def write(name: str, content: str = "x") -> str:
    return execution_reply("write_file", path=name, content=content)


def wait_for(predicate, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kill_9_mid_step_then_resume_repeats_no_finished_step(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", write("f1.txt"), write("f2.txt"), Slow(write("f3.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 3)  # step 3 is thinking
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)

    [state] = checkpoints(tmp_path)
    assert state["step"] == 2 and state["commands_run"] == 2  # the last completed step
    runs = spawn(tmp_path, server, "runs")
    runs.expect_exact("interrupted")
    assert finish(runs) == 0

    server.requests.clear()
    server.script("execution", write("f3.txt"), execution_reply("finish", reason="All written."))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("Resuming run")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["f1.txt", "f2.txt", "f3.txt"]
    first = server.requests_for("execution")[0]["messages"][-1]["content"]
    assert "Step 1: write_file" in first and "Step 2: write_file" in first
    [state] = checkpoints(tmp_path)
    assert state["status"] == "finished" and state["commands_run"] == 3


def test_a_command_cut_by_kill_9_is_shown_not_silently_repeated(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    code = "import time, pathlib; pathlib.Path('started.txt').write_text('1'); time.sleep(60)"
    server.script("execution", execution_reply("execute_python_code", code=code))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk")
    wait_for(lambda: (tmp_path / "ws" / "started.txt").exists())
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    [state] = checkpoints(tmp_path)
    assert state["current"]["status"] == "running"
    assert state["current"]["proposal"]["command"] == "execute_python_code"

    server.requests.clear()
    server.script("execution", execution_reply("finish", reason="ok"))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("NOTE:")
    gap = r"(?:\s|\x1b\[[0-9;]*m|│)+"  # the screen may wrap it, behind the quoting margin
    child.expect(gap.join(["may", "or", "may", "not", "have", "taken", "effect"]))
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    prompt = server.requests_for("execution")[0]["messages"][-1]["content"]
    assert "execute_python_code" in prompt and "may or may not have taken effect" in prompt


def test_ctrl_c_during_a_model_call_stops_after_saving(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", write("a.txt"), Slow(write("b.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 2)
    child.sendintr()
    child.expect_exact("Run interrupted:")
    assert finish(child) == 130
    [state] = checkpoints(tmp_path)
    assert state["status"] == "interrupted" and state["commands_run"] == 1


def test_ctrl_c_during_a_command_kills_its_processes(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    # In the sandbox's PID namespace a pid means nothing outside: the grandchild is found by
    # a sleep no one else runs.
    code = (
        "import subprocess, pathlib, time\n"
        "child = subprocess.Popen(['sleep', '300.123'])\n"
        "pathlib.Path('started.txt').write_text('1')\n"
        "time.sleep(300)\n"
    )
    server.script("execution", execution_reply("execute_python_code", code=code))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk")
    wait_for(lambda: (tmp_path / "ws" / "started.txt").exists())
    wait_for(lambda: bool(_running("300.123")))
    child.sendintr()
    child.expect_exact("Run interrupted:")
    assert finish(child) == 130
    wait_for(lambda: not _running("300.123"), 10)


def _running(token: str) -> list[str]:
    """Live processes (not zombies) whose command line holds `token`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if token.encode() in cmdline and state not in ("Z", "X"):
            found.append(entry.name)
    return found


def test_a_second_ctrl_c_exits_at_once_with_the_journal_consistent(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", write("a.txt"), Slow(write("b.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 2)
    child.sendintr()
    child.sendintr()
    child.expect_exact(["Stopped at once", "Run interrupted:"])
    assert finish(child) == 130
    [state] = checkpoints(tmp_path)  # readable: whichever Ctrl-C won, the file is whole
    assert state["status"] in {"running", "interrupted"} and state["commands_run"] == 1
    for line in (
        (next((tmp_path / "home" / "runs").iterdir()) / "events.jsonl").read_text().splitlines()
    ):
        json.loads(line)


def test_budget_reached_stops_then_resume_with_more_goes_on(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", *(write(f"f{i}.txt") for i in range(6)))
    prices = json.dumps({"gpt-4o-mini": [500, 500]})
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--budget", "1", AUTOAGENT_PRICES=prices)
    child.expect(r"of \$1\.00")  # the status line shows spend against the budget
    child.expect_exact("The budget of $1.00 is spent")
    assert finish(child) == 5
    [state] = checkpoints(tmp_path)
    assert state["status"] == "stopped"
    done = state["commands_run"]
    child = spawn(
        tmp_path,
        server,
        "resume",
        "-c",
        "--budget",
        "100",
        "--max-steps",
        str(state["step"] + 2),
        AUTOAGENT_PRICES=prices,
    )
    child.expect_exact("Run stopped:")
    assert finish(child) == 3
    assert checkpoints(tmp_path)[0]["commands_run"] > done


def test_429_500_and_timeouts_are_retried(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script(
        "execution",
        Fault(429, headers={"Retry-After": "0"}),
        Fault(500),
        Fault(503, delay=3),  # longer than the request timeout below
        write("a.txt"),
        execution_reply("finish", reason="done"),
    )
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        AUTOAGENT_MAX_RETRIES="4",
        AUTOAGENT_REQUEST_TIMEOUT="1",
    )
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert (tmp_path / "ws" / "a.txt").read_text() == "x"  # written once, not once per retry


def test_an_endpoint_that_keeps_failing_leaves_a_resumable_run(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", write("a.txt"), *[Fault(500)] * 3)
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", AUTOAGENT_MAX_RETRIES="2")
    child.expect_exact("Run failed:")
    child.expect_exact("answered HTTP 500")
    assert finish(child) == 1
    assert checkpoints(tmp_path)[0]["status"] == "failed"
    server.script("execution", execution_reply("finish", reason="done"))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0


def test_a_corrupt_checkpoint_is_refused_and_left_alone(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", Slow(write("a.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 1)
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    path = next((tmp_path / "home" / "runs").iterdir()) / "checkpoint.json"
    path.write_text('{"run_id": "broken", "step": ')
    child = spawn(tmp_path, server, "resume", path.parent.name, "-c")
    child.expect_exact("cannot be read")
    child.expect_exact("left as it is")
    assert finish(child) == 1
    assert path.read_text() == '{"run_id": "broken", "step": '


def test_an_unusable_data_folder_is_a_clear_error(tmp_path: Path, server: FakeOpenAIServer) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", AUTOAGENT_HOME=str(blocker / "home"))
    child.expect_exact("Error:")
    child.expect_exact(str(blocker / "home"))
    assert finish(child) == 1
    assert blocker.read_text() == "a file where the data folder should be"


def test_show_prints_the_audit_trail(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script(
        "execution",
        write("notes.md", "# Notes"),
        execution_reply(
            "finish", reason="Notes written.", goal_report=["Write files as asked: met (notes.md)"]
        ),
    )
    child = spawn(tmp_path, server, "run", *PROFILE)
    child.expect_exact("Enter 'y'")
    child.sendline("y")
    child.expect_exact("Enter 'y'")
    child.sendline("y")
    child.expect_exact("Write files as asked: met (notes.md)")
    child.expect_exact("Files made or changed: notes.md")
    assert finish(child) == 0
    run_id = next((tmp_path / "home" / "runs").iterdir()).name
    child = spawn(tmp_path, server, "show", run_id)
    for text in (
        "Goal 1: Write files as asked",
        "COMMAND = write_file",
        "approve by human (terminal, ",  # then the OS user and the request id
        "RESULT (write_file):",
        "Wrote 7 characters to notes.md",
        "Run finished:",
        "Write files as asked: met (notes.md)",
        "Files made or changed: notes.md",
        "Status:",
        "model calls",
    ):
        child.expect_exact(text)
    assert finish(child) == 0
