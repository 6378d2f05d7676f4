"""A crash of the agent (kill -9 of it alone) leaves nothing of its programs running, and a
resumed run ends whatever a dead run left before it settles the step it left in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, Slow, execution_reply
from autoagent.tools.cgroups import pids_base
from autoagent.tools.sandbox import Mechanism, probe

from .cli_helpers import PROFILE, finish, spawn
from .test_cli_durable import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

# A bubblewrap whose process inside the sandbox outlives its parent before it arms its
# parent-death signal, as the real one does when the agent dies in the first ms of its setup:
# it waits in the background, unarmed, then goes on with the real bubblewrap.
SLOW_BWRAP = """#!/bin/sh
exec 3<&0
( exec 0<&3 3<&-; touch {started}; sleep 1; exec /usr/bin/bwrap "$@" ) &
wait
"""


@pytest.fixture(params=[Mechanism.BWRAP, Mechanism.LANDLOCK], ids=["bwrap", "landlock"])
def mechanism(request: pytest.FixtureRequest) -> str:
    problem = probe(request.param)
    if problem is not None:
        pytest.skip(f"{request.param.value} does not work here: {problem}")
    return str(request.param.value)


def code_that_marks(path: str) -> str:
    return f"import pathlib, time; pathlib.Path({path!r}).write_text('ran'); time.sleep(60)"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_program_bubblewrap_starts_after_the_agent_died_never_runs(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    if (problem := probe(Mechanism.BWRAP)) is not None:
        pytest.skip(f"bwrap does not work here: {problem}")
    shims = tmp_path / "shims"
    shims.mkdir()
    started = tmp_path / "bwrap-started"
    (shims / "bwrap").write_text(SLOW_BWRAP.format(started=started))
    (shims / "bwrap").chmod(0o755)
    server.script("execution", execution_reply("execute_python_code", code=code_that_marks("ran")))
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        "--allow-high-risk",
        AUTOAGENT_SANDBOX="bwrap",
        PATH=f"{shims}:{os.environ['PATH']}",
    )
    wait_for(started.exists)
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    time.sleep(3)  # the unarmed bubblewrap has gone on by now
    assert not (tmp_path / "ws" / "ran").exists()
    found = subprocess.run(["pgrep", "-f", str(tmp_path / "ws")], capture_output=True, text=True)
    assert found.stdout.split() == []  # nothing of the program's is left either


def test_a_resumed_run_first_ends_what_the_killed_run_left_running(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    if pids_base() is None:
        pytest.skip("the agent can make no pids cgroup here (root only)")
    server.script("execution", execution_reply("execute_python_code", code=code_that_marks("ran")))
    child = spawn(
        tmp_path, server, "run", *PROFILE, "-c", "--allow-high-risk", AUTOAGENT_SANDBOX=mechanism
    )
    wait_for((tmp_path / "ws" / "ran").exists)
    [group] = pids_base().glob(f"autoagent-{child.pid}-*")  # type: ignore[union-attr]
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    # One that escaped the death of the agent (as bubblewrap's could), still in its group.
    escaped = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        wait_for(lambda: not (group / "cgroup.procs").read_text().split())
        (group / "cgroup.procs").write_text(str(escaped.pid))
        server.requests.clear()
        server.script("execution", Slow(execution_reply("finish", reason="done"), 30))
        child = spawn(tmp_path, server, "resume", "-c", AUTOAGENT_SANDBOX=mechanism)
        wait_for(lambda: len(server.requests_for("execution")) == 1)
        assert not alive(escaped.pid)  # ended before the resumed run asked the model anything
        assert not group.exists()
        child.expect_exact("Run finished:")
        assert finish(child) == 0
        prompt = str(server.requests_for("execution")[0]["messages"][-1]["content"])
        assert "may or may not have taken effect" in prompt
    finally:
        escaped.kill()
        escaped.wait()
