"""A kill -9 during a command, or during a rewind, leaves a workspace a rewind brings back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, PROMPT, cli_env, finish, spawn
from .test_cli_rewind import make_workspace, one_step_run, run_id, tree_hash

pytestmark = pytest.mark.slow

FILES = 3000


def rewind(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoagent", "rewind", *args, "--yes"],
        cwd=tmp_path,
        env=cli_env(tmp_path, None),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_kill_during_a_command_is_rewound(tmp_path: Path, server: FakeOpenAIServer) -> None:
    ws = tmp_path / "ws"
    make_workspace(ws)
    original = tree_hash(ws)
    line = "rm -rf sub old.txt && printf 'half' > new.txt && chmod 600 run.sh && sleep 4"
    server.script("execution", execution_reply("execute_shell", command_line=line))
    child = spawn(tmp_path, server, "run", *PROFILE, AUTOAGENT_SHELL_ENABLED="1")
    child.expect_exact(PROMPT)
    child.sendline("y")
    deadline = time.monotonic() + 30
    while not (ws / "new.txt").exists():
        assert time.monotonic() < deadline, "the command never ran"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)  # mid-command: its result is never recorded
    assert finish(child) == -signal.SIGKILL
    run = run_id(tmp_path)

    done = rewind(tmp_path, run, "--to-step", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    time.sleep(4.5)  # whatever the command would still do (it only sleeps) is over
    assert tree_hash(ws) == original


def test_a_kill_during_a_rewind_leaves_a_workspace_a_rewind_brings_to_either_side(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for number in range(FILES):
        (ws / f"f{number:05}.txt").write_text(f"file {number}\n" * 20)
    original = tree_hash(ws)
    code = (
        "import os\n"
        "for name in sorted(os.listdir('.')):\n"
        "    os.remove(name)\n"
        "    open('g' + name[1:], 'w').write('rewritten ' + name)\n"
    )
    one_step_run(tmp_path, server, execution_reply("execute_python_code", code=code))
    after_run = tree_hash(ws)
    run = run_id(tmp_path)

    killed = subprocess.Popen(
        [sys.executable, "-m", "autoagent", "rewind", run, "--to-step", "1", "--yes"],
        cwd=tmp_path,
        env=cli_env(tmp_path, None),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = ws / "f00000.txt"  # the first file brought back (in path order)
    deadline = time.monotonic() + 60
    while not first.exists():
        assert killed.poll() is None, "the rewind ended before it could be killed"
        assert time.monotonic() < deadline
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    back = sum(1 for n in range(FILES) if (ws / f"f{n:05}.txt").exists())
    assert 0 < back < FILES, f"not killed mid-restore ({back} of {FILES} back)"

    # One side: as the run left it (the interrupted rewind undone).
    done = rewind(tmp_path, run, "--undo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert tree_hash(ws) == after_run
    # The other: as before step 1.
    done = rewind(tmp_path, run, "--to-step", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert tree_hash(ws) == original
    lines = (tmp_path / "home/runs" / run / "events.jsonl").read_text().splitlines()
    rewound = [e for e in map(json.loads, lines) if e["event"] == "Rewound"]
    assert [(e["rewind"], e["to_step"], e["undo_of"]) for e in rewound] == [
        (2, None, 1),  # the killed rewind was number 1
        (3, 1, None),
    ]
