"""The sandbox at its seams: choosing a mechanism, refusing without one, limits, tool processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from autoagent.base.errors import ConfigError, RefusedError
from autoagent.base.settings import Settings, load_settings
from autoagent.tools import sandbox as sandbox_module
from autoagent.tools.commands.base import CommandContext
from autoagent.tools.commands.execute import execute_python_code
from autoagent.tools.doctor import probe_report
from autoagent.tools.host_paths import python_paths, runtime_folders
from autoagent.tools.process import start_process
from autoagent.tools.sandbox import Limits, Mechanism, Sandbox, build_sandbox, probe
from autoagent.tools.workspace import Workspace

from .test_process import wait_dead

pytestmark = pytest.mark.sandbox


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(home=tmp_path / "home", workspace=tmp_path / "ws", **values)


def working_mechanism() -> Mechanism:
    for mechanism in (Mechanism.BWRAP, Mechanism.LANDLOCK):
        if probe(mechanism) is None:
            return mechanism
    pytest.skip("no sandbox mechanism works here")


def test_without_a_mechanism_code_is_refused_and_nothing_is_saved(tmp_path: Path) -> None:
    box = Sandbox(Mechanism.NONE, tmp_path / "ws", problem="bwrap is not installed")
    ctx = CommandContext(
        workspace=Workspace(tmp_path / "ws"),
        settings=settings(tmp_path),
        run_dir=tmp_path / "run",
        sandbox=box,
    )
    with pytest.raises(RefusedError, match=r"no sandbox works.*bubblewrap.*--no-sandbox"):
        execute_python_code(ctx, {"code": "print(1)"})
    assert not (tmp_path / "ws" / "scripts").exists()
    assert "code-running commands are refused" in box.describe()[0]


def test_no_sandbox_runs_unconfined_and_says_so(tmp_path: Path) -> None:
    box = build_sandbox(settings(tmp_path, sandbox="none"), tmp_path)
    assert not box.confined and box.unconfined_by_choice
    box.check_can_run()
    assert box.label().startswith("UNSANDBOXED (--no-sandbox)")


def test_a_named_mechanism_that_does_not_work_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "probe", lambda mechanism: "user namespaces are off")
    with pytest.raises(ConfigError, match=r"AUTOAGENT_SANDBOX=bwrap.*user namespaces are off"):
        build_sandbox(settings(tmp_path, sandbox="bwrap"), tmp_path)
    box = build_sandbox(settings(tmp_path), tmp_path)  # auto: said at start, code refused
    assert not box.confined and "user namespaces are off" in box.problem
    with pytest.raises(RefusedError):
        box.check_can_run()


def test_hidden_paths_and_limits_come_from_the_settings(tmp_path: Path) -> None:
    environ = {
        "AUTOAGENT_SANDBOX": "none",
        "AUTOAGENT_SANDBOX_MEMORY": "512M",
        "AUTOAGENT_SANDBOX_FILE_SIZE": "1.5G",
        "AUTOAGENT_SANDBOX_PROCESSES": "0",
        "AUTOAGENT_ALLOW_NETWORK": "true",
        "AUTOAGENT_HOME": str(tmp_path / "data"),
    }
    loaded = load_settings(environ=environ, dotenv_file=None)
    assert Settings().sandbox_memory == 2 << 30 and Settings().sandbox_file_size == 1 << 30
    box = build_sandbox(loaded, tmp_path / "ws")
    assert box.limits == Limits(
        memory=512 << 20, cpu_seconds=600, file_size=3 << 29, processes=None
    )
    assert box.network
    assert (tmp_path / "data").resolve() in box.hidden


def test_each_limit_is_named_when_hit(tmp_path: Path) -> None:
    box = Sandbox(Mechanism.BWRAP, tmp_path)
    assert box.explain(-signal.SIGXCPU, "") == "killed: CPU time limit 600 s"
    assert box.explain(1, "OSError: [Errno 27] File too large") == "stopped: file size limit 1 GiB"
    assert box.explain(1, "MemoryError") == "killed: memory limit 2 GiB"
    assert box.explain(1, "BlockingIOError: [Errno 11] Resource temporarily unavailable") == (
        "stopped: process limit 256"
    )
    assert box.explain(0, "fine") is None


def test_a_tool_process_runs_confined_and_talks_through_pipes(tmp_path: Path) -> None:
    box = Sandbox(working_mechanism(), tmp_path.resolve(), readable=tuple(python_paths()))
    code = (
        "import os, sys\n"
        "pids = [name for name in os.listdir('/proc') if name.isdigit()]\n"
        "for line in sys.stdin:\n"
        "    print(line.strip(), len(pids) < 5, flush=True)\n"
    )
    tool = start_process([sys.executable, "-c", code], cwd=tmp_path, sandbox=box)
    assert tool.proc.stdin is not None and tool.proc.stdout is not None
    tool.proc.stdin.write(b"ping\n")
    tool.proc.stdin.flush()
    assert tool.proc.stdout.readline() == b"ping True\n"
    pid = tool.proc.pid
    tool.stop()
    assert wait_dead(pid, 2)


AGENT = """
import sys
from pathlib import Path
from autoagent.tools.process import run_process
code = "import os, time; open('child.pid', 'w').write(str(os.getpid())); time.sleep(1000)"
run_process([sys.executable, "-c", code], cwd=Path("."), timeout=1000, max_output_bytes=1000)
"""


def test_an_unconfined_child_dies_with_the_agent_on_kill_9(tmp_path: Path) -> None:
    agent = subprocess.Popen([sys.executable, "-c", AGENT], cwd=tmp_path)
    deadline = time.monotonic() + 20
    while not (tmp_path / "child.pid").exists() or not (tmp_path / "child.pid").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int((tmp_path / "child.pid").read_text())
    agent.kill()
    agent.wait()
    assert wait_dead(child, 1.0)


class CapableBwrap(Sandbox):
    """bwrap as it was called before: as root, the program kept every capability inside."""

    def _bwrap_argv(self, cwd: Path) -> list[str]:
        args = super()._bwrap_argv(cwd)
        for flag in ("--disable-userns", "--unshare-user"):
            args.remove(flag)
        cap = args.index("--cap-drop")
        del args[cap : cap + 2]
        while "--ro-bind-try" in args:
            at = args.index("--ro-bind-try")
            del args[at : at + 3]
        return args


@pytest.mark.skipif(os.geteuid() != 0, reason="only root keeps capabilities inside bwrap")
def test_the_probe_fails_loudly_when_root_keeps_its_capabilities(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if probe(Mechanism.BWRAP) is not None:
        pytest.skip("bwrap does not work here")
    hidden = Path(tempfile.mkdtemp(prefix="autoagent-hidden-", dir="/var/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(hidden))
    (hidden / "secret").write_text("x")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    fields = {
        "workspace": workspace.resolve(),
        "hidden": (hidden.resolve(), *runtime_folders()),
        "readable": tuple(python_paths()),  # the probe's Python, also from a clone under /tmp
    }
    report = dict(probe_report(CapableBwrap(Mechanism.BWRAP, **fields)))
    failed = {check for check, ok in report.items() if not ok}
    assert {"no capabilities inside", "/proc/sys is read-only"} <= failed
    assert {
        f"what hides {hidden.resolve()} cannot be unmounted",
        "what hides /tmp cannot be unmounted",
    } <= failed
    assert all(dict(probe_report(Sandbox(Mechanism.BWRAP, **fields))).values())
