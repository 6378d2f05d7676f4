"""What of the host a confined program cannot reach besides files: the services listening on
unix sockets, the agent's keyrings, host memory through its private /tmp and /dev/shm.

Each test drives the installed CLI against the scripted server, once per mechanism that works,
and checks what reached the listener, the model and the host.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer
from autoagent.tools.doctor import probe_report
from autoagent.tools.host_paths import python_paths
from autoagent.tools.sandbox import Launch, Mechanism, Sandbox, probe

from .cli_helpers import PROFILE, cli_env, finish, spawn
from .test_cli_confinement import (
    confined,
    python,
    results,
    run_to_end,
    secret,
    shell,
)

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


@pytest.fixture(params=[Mechanism.BWRAP, Mechanism.LANDLOCK], ids=["bwrap", "landlock"])
def mechanism(request: pytest.FixtureRequest) -> str:
    problem = probe(request.param)
    if problem is not None:
        pytest.skip(f"{request.param.value} does not work here: {problem}")
    return str(request.param.value)


class UnixListener:
    """A service listening on a socket file, recording every connection."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "sock"
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(self.path))
        self.sock.listen()
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                self.received.append(b"connected")
                with suppress(OSError):
                    self.received.append(conn.recv(100))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listeners() -> Iterator[dict[str, UnixListener]]:
    """Listeners in a folder under /run (as root: only root may write there), in a folder given
    as the user's runtime folder, and in /var/tmp (visible, read-only, in the sandbox)."""
    places = {"runtime": "/var/tmp", "elsewhere": "/var/tmp"}
    if os.access("/run", os.W_OK):
        places["run"] = "/run"
    folders = {
        name: Path(tempfile.mkdtemp(prefix="autoagent-test-", dir=place))
        for name, place in places.items()
    }
    made = {name: UnixListener(folder) for name, folder in folders.items()}
    yield made
    for listener in made.values():
        listener.close()
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)


def connect_to(path: Path) -> str:
    return (
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(path)!r})\n"
        "s.sendall(b'LEAKED')\n"
        "print('REACHED')\n"
    )


def test_host_services_on_unix_sockets_are_out_of_reach(
    tmp_path: Path,
    server: FakeOpenAIServer,
    mechanism: str,
    listeners: dict[str, UnixListener],
) -> None:
    """Network off must cover the Docker, D-Bus and systemd sockets (in /run and the user's
    runtime folder) and a socket file listening anywhere else in sight, such as /var/tmp."""
    names = sorted(listeners)
    server.script("execution", *(python(connect_to(listeners[n].path)) for n in names))
    runtime = listeners["runtime"].path.parent
    child = confined(tmp_path, server, mechanism, XDG_RUNTIME_DIR=str(runtime))
    run_to_end(child)
    seen = dict(zip(names, results(server), strict=False))
    for name in names:
        assert listeners[name].received == [], name
        assert "REACHED" not in seen[name], name
    if "run" in listeners:  # the whole of /run is an empty folder
        assert "No such file or directory" in seen["run"]
    assert "No such file or directory" in seen["runtime"]
    # Elsewhere, /dev/null lies over the socket file: it is no socket any more.
    assert "Connection refused" in seen["elsewhere"]


@pytest.mark.skipif(shutil.which("keyctl") is None, reason="keyutils is not installed")
def test_the_agent_session_keyring_stays_out_of_reach(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    """A key in the session keyring the agent runs in: the program gets a new, empty one, and
    cannot link the agent's keyrings back in by number from /proc/keys."""
    planted = secret("KEYRING")
    relink = (
        "for id in $(cut -d' ' -f1 /proc/keys); do keyctl link 0x$id @s; "
        "keyctl print 0x$id; done 2>&1; keyctl show @s"
    )
    server.script(
        "execution",
        shell("keyctl show @s; keyctl print $(keyctl search @s user autoagent-test) 2>&1"),
        shell(relink),
    )
    env = cli_env(
        tmp_path,
        server,
        AUTOAGENT_SANDBOX=mechanism,
        AUTOAGENT_SHELL_ENABLED="true",
        HOME=str(tmp_path / "userhome"),
    )
    plant = f'keyctl add user autoagent-test {planted} @s >/dev/null && exec "$@"'
    agent = [sys.executable, "-m", "autoagent", "run", *PROFILE, "-c", "--allow-high-risk"]
    child = pexpect.spawn(
        "keyctl",
        ["session", "-", "/bin/sh", "-c", plant, "sh", *agent],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        dimensions=(60, 220),
    )
    run_to_end(child)
    direct, relinked = results(server)[:2]
    assert planted not in repr(server.requests)
    assert "Ran sandboxed" in direct and "autoagent-test" not in direct.split("Ran sandboxed")[0]
    assert "Operation not permitted" in relinked


def test_tmp_and_shm_hold_no_more_than_the_memory_limit(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    """Writing more than the memory limit into /tmp (or /dev/shm) fails with "No space left
    on device" instead of pinning host memory, and the run goes on."""
    server.script(
        "execution",
        shell("for i in 1 2 3; do head -c 100M /dev/zero > /tmp/fill$i || exit 1; done"),
        shell("head -c 100M /dev/zero > /dev/shm/fill"),
        shell("echo x > /dev/made-up; echo exit $?"),
        python("print('still going')"),
    )
    child = confined(tmp_path, server, mechanism, AUTOAGENT_SANDBOX_MEMORY="256M")
    run_to_end(child)
    tmp, shm, dev, after = results(server)[:4]
    assert "No space left on device" in tmp
    assert "No space left on device" in shm
    assert "Read-only file system" in dev
    assert "still going" in after


def test_the_sandbox_command_probes_sockets_keyrings_and_tmp(
    tmp_path: Path, mechanism: str
) -> None:
    child = spawn(tmp_path, None, "sandbox", AUTOAGENT_SANDBOX=mechanism)
    child.expect_exact("a private /tmp and /dev/shm (1.5 GiB and 512 MiB)")
    child.expect_exact("Probe (a shell inside the sandbox):")
    for check in (
        "/tmp holds no more than the memory limit",
        "/dev/shm holds no more than the memory limit",
        "/dev takes no files",
        "no unix socket in /run",
        "a host socket in /var/tmp is covered",
        "a new session keyring; the agent's keyrings out of reach",
    ):
        child.expect_exact(f"ok   {check}")
    assert finish(child) == 0


class Unisolated(Sandbox):
    """bubblewrap as it ran before: the agent's keyrings, /run and other sockets in sight,
    /tmp and /dev/shm as large as the host lets them be."""

    def wrap(  # type: ignore[override]
        self, argv: list[str], cwd: Path, alive_fd: int | None = None
    ) -> Launch:
        launch = super().wrap(argv, cwd, alive_fd)
        assert launch.direct is not None
        args, kept = launch.direct, []
        skip = 0
        for at, arg in enumerate(args):
            if skip:
                skip -= 1
            elif arg == "--size" or (arg == "--tmpfs" and args[at + 1] == "/run"):
                skip = 1
            elif arg == "--ro-bind" and args[at + 1] == "/dev/null" and "probe" in args[at + 2]:
                skip = 2
            else:
                kept.append(arg)
        return Launch(kept, launch.limits)


def test_the_probe_fails_loudly_when_sockets_keyrings_or_tmp_are_not_held(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0 or not Path("/run").is_dir():
        pytest.skip("only root can plant a socket in /run")
    if probe(Mechanism.BWRAP) is not None:
        pytest.skip("bwrap does not work here")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    box = Sandbox(
        Mechanism.BWRAP,
        workspace.resolve(),
        hidden=(Path("/run"),),
        readable=tuple(python_paths()),  # the probe's Python, also from a clone under /tmp
    )
    failed = {check for check, ok in probe_report(Unisolated(**vars(box))) if not ok}
    assert {
        "/tmp holds no more than the memory limit",
        "/dev/shm holds no more than the memory limit",
        "no unix socket in /run",
        "a host socket in /var/tmp is covered",
        "a new session keyring; the agent's keyrings out of reach",
    } <= failed
    assert all(ok for _, ok in probe_report(replace(box)))
