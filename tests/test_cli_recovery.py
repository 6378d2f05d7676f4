"""What survives a crash, through the CLI: results, notes, memories, the journal, the settings."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, Slow, execution_reply
from autoagent.store.chroma import lock_store

from .cli_helpers import PROFILE, checkpoints, finish, spawn
from .test_cli_durable import wait_for, write

pytestmark = pytest.mark.slow


def kill(child: pexpect.spawn) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)


def run_folder(tmp_path: Path) -> Path:
    [folder] = [p for p in (tmp_path / "home" / "runs").iterdir()]
    return folder


def first_prompt(server: FakeOpenAIServer) -> str:
    return str(server.requests_for("execution")[0]["messages"][-1]["content"])


def killed_during_task_creation(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", write("a.txt", "hello"))
    server.script("task-creation", Slow(json.dumps({"tasks": []}), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("task-creation")) == 1)
    kill(child)
    server.requests.clear()
    server.script("execution", execution_reply("finish", reason="done"))


def test_a_result_recorded_before_a_kill_is_restored_on_resume(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 2: killed during task creation, after the command returned."""
    killed_during_task_creation(tmp_path, server)
    [state] = checkpoints(tmp_path)
    assert state["current"]["status"] == "ran" and state["commands_run"] == 1
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("RECOVERED:")
    child.expect_exact("Run finished:")
    assert "may or may not" not in child.before
    assert finish(child) == 0
    prompt = first_prompt(server)
    assert "Step 1: write_file" in prompt and "Result: Wrote 5 characters to a.txt." in prompt
    assert "may or may not" not in prompt
    [state] = checkpoints(tmp_path)
    assert state["commands_run"] == 1 and state["recent"][0]["status"] == "done"


def test_a_result_only_in_the_journal_is_restored_from_it(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 2, the narrow case: the result reached events.jsonl, not yet the checkpoint."""
    killed_during_task_creation(tmp_path, server)
    path = run_folder(tmp_path) / "checkpoint.json"
    state = json.loads(path.read_text())
    state["current"] |= {"status": "running", "result": None}  # as saved before it ran
    state["commands_run"] = 0
    path.write_text(json.dumps(state))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect(r"its\s+result,\s+recorded\s+in\s+the\s+run's\s+journal,\s+is\s+restored")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    prompt = first_prompt(server)
    assert "Result: Wrote 5 characters to a.txt." in prompt and "may or may not" not in prompt
    assert (tmp_path / "ws" / "a.txt").read_text() == "hello"  # not run again
    assert checkpoints(tmp_path)[0]["commands_run"] == 1


def test_the_note_about_a_cut_command_survives_a_second_kill(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 3: the note stays saved until the model has received it."""
    code = "import time, pathlib; pathlib.Path('started.txt').write_text('1'); time.sleep(60)"
    server.script("execution", execution_reply("execute_python_code", code=code))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk")
    wait_for(lambda: (tmp_path / "ws" / "started.txt").exists())
    kill(child)

    server.requests.clear()
    server.script("execution", Slow(execution_reply("finish", reason="ok"), 60))
    child = spawn(tmp_path, server, "resume", "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 1)
    kill(child)  # before the model's reply: it never received the note

    server.requests.clear()
    server.script("execution", execution_reply("finish", reason="ok"))
    child = spawn(tmp_path, server, "resume", "-c")
    gap = r"(?:\s|\x1b\[[0-9;]*m|│)+"  # the screen may wrap it, behind the quoting margin
    child.expect(gap.join(["may", "or", "may", "not", "have", "taken", "effect"]))
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    prompt = first_prompt(server)
    assert "Step 1's command execute_python_code" in prompt
    assert "may or may not have taken effect" in prompt


def test_a_step_killed_right_after_is_in_memory_after_resume(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 4: a step whose result is saved is in memory, whatever the kill cut short."""
    server.script("execution", write("a.txt", "remember me"), Slow(write("b.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 2)
    kill(child)
    run_id = run_folder(tmp_path).name
    # Lose the memory store's last write, as a crash before it landed would.
    memory = tmp_path / "home" / "memory"
    from autoagent.store.embeddings import LocalEmbedder
    from autoagent.store.memory import Memory

    store = Memory.open_local(memory, "Scout", LocalEmbedder())
    store._collection.delete(ids=[f"{run_id}-step-1"])
    assert store.missing([f"{run_id}-step-1"]) == [f"{run_id}-step-1"]
    store.close()

    server.script("execution", execution_reply("finish", reason="done"))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    child = spawn(tmp_path, server, "memory", "list", "--agent", "Scout")
    child.expect_exact(f"run {run_id} step 1")
    child.expect_exact("Command: write_file")
    child.expect_exact("1 memories of Scout.")
    assert finish(child) == 0


def test_memories_still_waiting_at_a_kill_are_written_on_resume(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Memories go to the store in batches, and the store loads while the run starts: steps
    that left the recent window before theirs were in are kept in the checkpoint until then."""
    notes = [write(f"n{n}.txt", f"note {n}") for n in range(1, 6)]
    # Killed in the middle of step 6's command: the step is cut, which moves step 5 out of
    # the window too, before the memories are restored.
    code = "import time, pathlib; pathlib.Path('started.txt').write_text('1'); time.sleep(60)"
    server.script("execution", *notes, execution_reply("execute_python_code", code=code))
    child = spawn(
        tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk", AUTOAGENT_RECENT_STEPS="1"
    )
    wait_for(lambda: (tmp_path / "ws" / "started.txt").exists())
    kill(child)
    run_id = run_folder(tmp_path).name

    server.script("execution", execution_reply("finish", reason="done"))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    from autoagent.store.embeddings import LocalEmbedder
    from autoagent.store.memory import Memory

    store = Memory.open_local(tmp_path / "home" / "memory", "Scout", LocalEmbedder())
    assert store.missing([f"{run_id}-step-{n}" for n in range(1, 6)]) == []
    store.close()


def test_a_torn_last_line_is_repaired_before_resume_appends(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 5: resume appends after a torn line; show must still read the whole log."""
    server.script("execution", write("a.txt"), Slow(write("b.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 2)
    kill(child)
    folder = run_folder(tmp_path)
    with open(folder / "events.jsonl", "a") as log:
        log.write('{"time": 1, "event": "Thinking", "ro')  # a kill mid-write
    server.script("execution", execution_reply("finish", reason="done"))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    for line in (folder / "events.jsonl").read_text().splitlines():
        json.loads(line)
    assert '"ro' in (folder / "events.torn").read_text()
    child = spawn(tmp_path, server, "show", folder.name)
    child.expect_exact("COMMAND = write_file")
    child.expect_exact("Resumed")
    child.expect_exact("Run finished:")
    assert finish(child) == 0


@pytest.mark.parametrize(
    "damage",
    [
        "garbage from a full disk\n",  # not an event, though a newline ends it
        '{"time": 1, "event": "CommandDone", "record": {"step": "two"}}\n',  # JSON, not an event
    ],
    ids=["garbage-line", "invalid-event"],
)
def test_a_damaged_last_line_neither_stops_resume_nor_show(
    tmp_path: Path, server: FakeOpenAIServer, damage: str
) -> None:
    server.script("execution", write("a.txt"), Slow(write("b.txt"), 60))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    wait_for(lambda: len(server.requests_for("execution")) == 2)
    kill(child)
    folder = run_folder(tmp_path)
    with open(folder / "events.jsonl", "a") as log:
        log.write(damage)
    server.script("execution", execution_reply("finish", reason="done"))
    child = spawn(tmp_path, server, "resume", "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert "Traceback" not in (child.before or "")
    child = spawn(tmp_path, server, "show", folder.name)
    child.expect_exact("COMMAND = write_file")
    child.expect_exact("Resumed")
    child.expect_exact("Run finished:")
    assert finish(child) == 0


def test_a_run_without_its_checkpoint_is_shown_from_its_journal(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 6: `show` reads the journal; `runs` and `resume` say what is wrong."""
    server.script("execution", write("a.txt"), execution_reply("finish", reason="All done."))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    folder = run_folder(tmp_path)
    (folder / "checkpoint.json").unlink()

    child = spawn(tmp_path, server, "show", folder.name)
    child.expect_exact("Goal 1: Write files as asked")
    child.expect_exact("no checkpoint.json")
    child.expect_exact("COMMAND = write_file")
    child.expect_exact("Run finished:")
    child.expect_exact("Status:")
    child.expect_exact("finished")
    assert finish(child) == 0

    child = spawn(tmp_path, server, "runs")
    child.expect_exact("no checkpoint")
    child.expect(r"its\s+event\s+log\s+is\s+intact")
    assert finish(child) == 0

    child = spawn(tmp_path, server, "resume", folder.name, "-c")
    child.expect_exact(f"Run {folder.name} has no checkpoint.json")
    assert finish(child) == 1
    child = spawn(tmp_path, server, "resume", "-c")  # the latest: it says why it skips this one
    child.expect_exact(f"Run {folder.name} has no checkpoint.json")
    child.expect_exact("No unfinished run")
    assert finish(child) == 1


def test_a_run_that_cannot_start_leaves_no_run_folder(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 7: a refused run (its memory store in use) and a kill at start-up."""
    fd = lock_store(tmp_path / "home" / "memory")  # as a second agent would hold it
    try:
        child = spawn(tmp_path, server, "run", *PROFILE, "-c")
        child.expect_exact("in use by another autoagent process")
        assert finish(child) == 1
    finally:
        os.close(fd)
    runs = tmp_path / "home" / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []

    abandoned = runs / ".new-20250101-000000-dead"  # a process killed while starting
    abandoned.mkdir(parents=True)
    (abandoned / "run.lock").write_text("")
    child = spawn(tmp_path, server, "runs")
    child.expect_exact("No runs yet")
    assert finish(child) == 0
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert [p.name.startswith(".") for p in runs.iterdir()] == [False]


def test_resume_keeps_the_runs_own_workspace_and_model(tmp_path: Path) -> None:
    """Failure 8: without flags, a resumed run uses its own settings; overrides are shown."""
    with FakeOpenAIServer(models=("gpt-4o-mini", "small-model")) as server:
        server.script("execution", write("a.txt"), Slow(write("b.txt"), 60))
        child = spawn(
            tmp_path,
            server,
            "run",
            *PROFILE,
            "-c",
            "--workspace",
            "mine",
            "--model",
            "small-model",
            AUTOAGENT_WORKSPACE="",
        )
        wait_for(lambda: len(server.requests_for("execution")) == 2)
        kill(child)

        server.requests.clear()
        server.script("execution", write("c.txt"), Slow(write("d.txt"), 60))
        child = spawn(tmp_path, server, "resume", "-c", AUTOAGENT_WORKSPACE="")
        child.expect_exact(str(tmp_path / "mine"))
        wait_for(lambda: len(server.requests_for("execution")) == 2)
        kill(child)
        assert (tmp_path / "mine" / "c.txt").exists()
        assert not (tmp_path / "workspace").exists()
        assert {r["model"] for r in server.requests_for("execution")} == {"small-model"}

        server.script("execution", execution_reply("finish", reason="done"))
        child = spawn(
            tmp_path, server, "resume", "-c", "--workspace", "other", AUTOAGENT_WORKSPACE=""
        )
        child.expect(r"This\s+run's\s+workspace\s+was\s+\S+mine;\s+it\s+now\s+uses\s+\S+other")
        child.expect_exact("Run finished:")
        assert finish(child) == 0


def test_the_loop_detector_remembers_across_resumes(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    """Failure 9: the same command twice, resume, once more: that is three times."""
    server.script("execution", *[execution_reply("list_files", directory=".")] * 4)
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "-l", "2")
    child.expect_exact("continuous limit")
    assert "Loop noticed" not in child.before
    assert finish(child) == 4
    child = spawn(tmp_path, server, "resume", "-c", "-l", "1")
    child.expect_exact("Loop noticed")
    child.expect_exact("ran 3 times with the same result")
    assert finish(child) == 4
