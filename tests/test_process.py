"""Child processes: deadlines, whole-group kills, no stdin, no secrets, bounded output."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from autoagent.base.errors import CommandError
from autoagent.tools.process import ProcessResult, child_environment, run_process

pytestmark = pytest.mark.sandbox

PY = sys.executable


def run_python(
    code: str, tmp_path: Path, timeout: float = 20, save_to: Path | None = None
) -> ProcessResult:
    return run_process(
        [PY, "-c", code], cwd=tmp_path, timeout=timeout, max_output_bytes=10_000, save_to=save_to
    )


def is_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (killed, not yet reaped by init) counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_dead(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return False


# Spawns a grandchild that records its pid and sleeps; `{detach}` lets it leave the group.
GRANDCHILD = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import os, time
{detach}
open("grandchild.pid", "w").write(str(os.getpid()))
time.sleep(1000)
'''])
while True:
    try:
        if open("grandchild.pid").read():
            break
    except FileNotFoundError:
        pass
print("spawned", flush=True)
{then}
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_program_that_never_ends_times_out_and_its_whole_group_dies(tmp_path: Path) -> None:
    code = GRANDCHILD.format(detach="", then="import time; time.sleep(1000)")
    result = run_python(code, tmp_path, timeout=2)
    assert result.timed_out
    assert result.exit_code == -signal.SIGKILL
    assert "spawned" in result.output
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert wait_dead(grandchild)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_background_grandchild_dies_when_the_program_ends(tmp_path: Path) -> None:
    result = run_python(GRANDCHILD.format(detach="", then=""), tmp_path)
    assert not result.timed_out
    assert result.exit_code == 0
    assert wait_dead(int((tmp_path / "grandchild.pid").read_text()))


def test_an_escaped_grandchild_holding_the_output_does_not_hang_the_run(tmp_path: Path) -> None:
    result = run_python(GRANDCHILD.format(detach="os.setsid()", then=""), tmp_path)
    pid = int((tmp_path / "grandchild.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # it left our group on purpose; clean it up here
    assert not result.timed_out
    assert "spawned" in result.output


def test_a_program_waiting_for_input_gets_end_of_file(tmp_path: Path) -> None:
    result = run_python("import sys; print(repr(sys.stdin.read()))", tmp_path)
    assert result.output.strip() == "''"
    result = run_python("input('name? ')", tmp_path)
    assert result.exit_code == 1
    assert "EOFError" in result.output


def test_fifty_megabytes_of_output_stay_bounded(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.stdout.write('START\\n')\n"
        "for _ in range(50):\n"
        "    sys.stdout.write('x' * 1_000_000)\n"
        "sys.stdout.write('\\nEND\\n')\n"
    )
    tracemalloc.start()
    try:
        result = run_python(code, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert result.exit_code == 0
    assert result.truncated
    assert result.full_output_bytes == 50_000_011
    assert len(result.output) < 10_100
    assert result.output.startswith("START\n")
    assert result.output.endswith("\nEND\n")
    assert "bytes of output cut ..." in result.output


def test_all_output_can_be_saved(tmp_path: Path) -> None:
    save_to = tmp_path / "outputs" / "run.log"
    code = "import sys; sys.stdout.write('y' * 300_000); sys.stderr.write('oops')"
    result = run_python(code, tmp_path, save_to=save_to)
    assert result.truncated
    assert result.saved_to == save_to
    saved = save_to.read_bytes()
    assert len(saved) == 300_004
    assert saved.endswith(b"oops")


def test_binary_output_does_not_crash(tmp_path: Path) -> None:
    result = run_python("import sys; sys.stdout.buffer.write(bytes(range(256)) * 8)", tmp_path)
    assert result.exit_code == 0
    assert "\ufffd" in result.output


def test_stdout_and_stderr_are_merged(tmp_path: Path) -> None:
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr); sys.exit(3)"
    result = run_python(code, tmp_path)
    assert result.exit_code == 3
    assert "out" in result.output and "err" in result.output
    assert not result.truncated


def test_secrets_are_not_in_the_child_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("MY_TOKEN", "t0k3n")
    monkeypatch.setenv("db_password", "hunter2")
    monkeypatch.setenv("DATABASE_URL", "postgres://me:hunter2@db/app")
    monkeypatch.setenv("REDIS", "redis://:pw@host")
    monkeypatch.setenv("DB_PWD", "hunter2")
    monkeypatch.setenv("GH_PAT", "ghp_x")
    monkeypatch.setenv("SLACK_HOOK", "https://hooks.slack.com/services/T0/B0/x")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    result = run_python("import json, os; print(json.dumps(dict(os.environ)))", tmp_path)
    env = json.loads(result.output)
    assert env["LC_ALL"] == "C.UTF-8" and "PATH" in env
    for name in ("OPENAI_API_KEY", "MY_TOKEN", "db_password", "DATABASE_URL", "REDIS", "DB_PWD"):
        assert name not in env
    assert "GH_PAT" not in env and "SLACK_HOOK" not in env
    assert "hunter2" not in result.output and "sk-should" not in result.output


def test_the_child_environment_is_an_allowlist() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
        "LC_TIME": "C",
        "TZ": "UTC",
        "TERM": "xterm",
        "GITHUB_TOKEN": "x",
        "DSN": "postgres://u:p@h/db",
        "WEBHOOK": "https://example.com/hook/secret",
        "MY_TOOL_CONFIG": "/etc/tool.conf",
    }
    assert child_environment(environ) == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
        "LC_TIME": "C",
        "TZ": "UTC",
        "TERM": "xterm",
    }
    allowed = child_environment(environ, allowed=["MY_TOOL_CONFIG"])
    assert allowed["MY_TOOL_CONFIG"] == "/etc/tool.conf" and "GITHUB_TOKEN" not in allowed


def test_the_child_runs_in_the_given_folder(tmp_path: Path) -> None:
    result = run_python("import os; print(os.getcwd())", tmp_path)
    assert result.output.strip() == str(tmp_path.resolve())


def test_a_missing_program_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Program not found"):
        run_process(["no-such-program-xyz"], cwd=tmp_path, timeout=5, max_output_bytes=1000)
