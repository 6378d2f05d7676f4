"""`--output json`: a run as JSON Lines on stdout, checked against `autoagent schema events`, as
a program reading it would; what needs a human, with no terminal; the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import jsonschema
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, cli_env

pytestmark = pytest.mark.slow


def autoagent(
    tmp_path: Path, server: FakeOpenAIServer | None, *args: str
) -> subprocess.CompletedProcess[str]:
    """The CLI as a program runs it: stdin, stdout and stderr are not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "autoagent", *args],
        cwd=tmp_path,
        env=cli_env(tmp_path, server),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def schema(tmp_path: Path) -> dict[str, Any]:
    printed = autoagent(tmp_path, None, "schema", "events")
    assert printed.returncode == 0, printed.stderr
    loaded: dict[str, Any] = json.loads(printed.stdout)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def lines_of(stdout: str, checked_by: dict[str, Any]) -> list[dict[str, Any]]:
    """Every line of stdout, each one JSON object valid under the schema."""
    lines = [json.loads(line) for line in stdout.splitlines()]
    validator = jsonschema.Draft202012Validator(checked_by)
    for line in lines:
        validator.validate(line)
    return lines


def test_a_run_is_one_valid_json_line_per_event_and_a_summary_on_stderr(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "old.txt").write_text("keep me")
    server.script(
        "execution",
        execution_reply("write_file", path="notes.txt", content="hello"),
        execution_reply("delete_file", path="old.txt"),  # high risk: nobody to ask
        execution_reply("finish", reason="Wrote the notes."),
    )
    done = autoagent(tmp_path, server, "run", *PROFILE, "--output", "json")
    assert done.returncode == 0, done.stderr

    lines = lines_of(done.stdout, schema(tmp_path))
    types = [line["type"] for line in lines]
    assert types[0] == "RunStarted" and types[-1] == "RunEnded"
    assert {line["schema"] for line in lines} == {1}
    run_id = lines[0]["data"]["run_id"]
    assert {line["run"] for line in lines} == {run_id}

    def steps(kind: str) -> list[dict[str, Any]]:
        return [line for line in lines if line["type"] == kind]

    assert [line["step"] for line in steps("Proposed")] == [1, 2, 3]
    thoughts = steps("Proposed")[0]["data"]["record"]["proposal"]["thoughts"]
    assert thoughts["text"] == "Working on it."
    wrote, refused, finished = (line["data"]["record"] for line in steps("Authorized"))
    assert (wrote["decision"]["kind"], wrote["decision"]["by"]) == ("approve", "continuous")
    assert refused["proposal"]["command"] == "delete_file"
    assert (refused["decision"]["kind"], refused["decision"]["by"]) == ("deny", "continuous")
    assert "needs a human's approval" in refused["decision"]["text"]
    assert finished["proposal"]["command"] == "finish"
    [result] = steps("CommandDone")
    assert result["step"] == 1 and result["data"]["record"]["result"]["ok"] is True
    assert steps("StepFinished")[-1]["data"]["spend"]["calls"] >= 2
    assert steps("TasksChanged") and steps("Thinking")
    end = lines[-1]
    assert (end["data"]["status"], end["data"]["cause"]) == ("finished", "finished")
    assert end["data"]["files"] == ["notes.txt"] and end["step"] == 3
    assert (tmp_path / "ws" / "old.txt").exists()

    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("Run finished (finished) after 3 steps, ")
    assert "exit 0: Wrote the notes." in summary
    assert "{" not in done.stderr  # the events are on stdout only


def test_each_kind_of_stop_has_its_exit_code(tmp_path: Path, server: FakeOpenAIServer) -> None:
    server.script("execution", execution_reply("write_file", path="a.txt", content="a"))
    capped = autoagent(tmp_path, server, "run", *PROFILE, "--output", "json", "--max-steps", "1")
    assert capped.returncode == 3, capped.stderr
    end = json.loads(capped.stdout.splitlines()[-1])
    assert (end["type"], end["data"]["cause"]) == ("RunEnded", "max-steps")
    assert "exit 3" in capped.stderr.splitlines()[-1]


def test_with_no_profile_and_no_terminal_nothing_is_asked(tmp_path: Path) -> None:
    refused = autoagent(tmp_path, None, "run", "--output", "json")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "No agent profile: give --name, --role and --goal" in refused.stderr
    assert not (tmp_path / "home" / "runs").exists() or not any(
        (tmp_path / "home" / "runs").iterdir()
    )


def next_line(stdout: IO[str], deadline: float) -> dict[str, Any]:
    assert time.monotonic() < deadline, "the stream stopped"
    line = stdout.readline()
    assert line, "the stream ended"
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_held_request_is_an_event_and_another_shell_answers_it(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "old.txt").write_text("remove me")
    server.script("execution", execution_reply("delete_file", path="old.txt"))
    checked_by = schema(tmp_path)
    flags = ["--output", "json", "--wait-for-approval"]
    process = subprocess.Popen(
        [sys.executable, "-m", "autoagent", "run", *PROFILE, *flags],
        cwd=tmp_path,
        env=cli_env(tmp_path, server),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        deadline = time.monotonic() + 60
        seen = [next_line(process.stdout, deadline)]
        while seen[-1]["type"] != "HumanAsked":
            seen.append(next_line(process.stdout, deadline))
        asked = seen[-1]["data"]
        assert (asked["asks"], asked["command"], asked["args"], asked["risk"]) == (
            "approval",
            "delete_file",
            {"path": "old.txt"},
            "high",
        )
        assert seen[-1]["step"] == 1 and (tmp_path / "ws" / "old.txt").exists()

        approved = autoagent(tmp_path, None, "approve", asked["request"])
        assert approved.returncode == 0, approved.stdout + approved.stderr

        rest, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    lines = lines_of("\n".join(json.dumps(line) for line in seen) + "\n" + rest, checked_by)
    decided = next(line for line in lines if line["type"] == "Authorized")["data"]["record"]
    assert decided["decision"]["kind"] == "approve"
    assert (decided["decision"]["channel"], decided["decision"]["request"]) == (
        "cli",
        asked["request"],
    )
    assert not (tmp_path / "ws" / "old.txt").exists()
    assert lines[-1]["data"]["cause"] == "finished"
    assert "Waiting for a human" in stderr
