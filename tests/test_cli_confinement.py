"""The OS sandbox end to end: code the model writes runs confined, on each mechanism.

Every test drives the installed CLI with `--continuous --allow-high-risk` against the scripted
server, and checks that nothing outside the workspace changed and that nothing secret reached
the model. Each runs once per mechanism that works on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply
from autoagent.tools.sandbox import Mechanism, probe

from .cli_helpers import PROFILE, checkpoints, finish, spawn

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def secret(name: str) -> str:
    """A planted secret, spelled in two parts here: a grep of the tests' own folder (readable
    in the sandbox) must not find it."""
    return "SECRET-" + name


SECRETS = (*(secret(n) for n in ("BESIDE", "SSH", "DOTENV", "DATA")), "sk-" + secret("KEY"))


@pytest.fixture(params=[Mechanism.BWRAP, Mechanism.LANDLOCK], ids=["bwrap", "landlock"])
def mechanism(request: pytest.FixtureRequest) -> str:
    problem = probe(request.param)
    if problem is not None:
        pytest.skip(f"{request.param.value} does not work here: {problem}")
    return str(request.param.value)


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """Secrets beside the workspace, in $HOME/.ssh, in .env and in the data folder."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "secret.txt").write_text(secret("BESIDE"))
    ssh = tmp_path / "userhome" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_rsa").write_text(secret("SSH"))
    (tmp_path / ".env").write_text(f"SOME_PASSWORD={secret('DOTENV')}\n")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text(secret("DATA"))
    return tmp_path


@pytest.fixture
def visible_victim() -> Iterator[Path]:
    """A file outside /tmp and outside any hidden folder: visible, but read-only, inside."""
    folder = Path(tempfile.mkdtemp(prefix="autoagent-victim-", dir="/var/tmp"))
    victim = folder / "victim.txt"
    victim.write_text("intact")
    yield victim
    victim.unlink(missing_ok=True)
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


def confined(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str, *flags: str, **env: str
) -> pexpect.spawn:
    return spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        "--allow-high-risk",
        *flags,
        AUTOAGENT_SANDBOX=mechanism,
        AUTOAGENT_SHELL_ENABLED="true",
        HOME=str(tmp_path / "userhome"),
        OPENAI_API_KEY="sk-" + secret("KEY"),
        **env,
    )


def results(server: FakeOpenAIServer) -> list[str]:
    """What the model was told of each step's command, in order (the last step of each prompt)."""
    prompts = [r["messages"][-1]["content"] for r in server.requests_for("execution")][1:]
    return [prompt.rsplit("Result: ", 1)[-1] for prompt in prompts]


def run_to_end(child: pexpect.spawn) -> None:
    child.expect_exact("Run finished:")
    assert finish(child) == 0


def assert_nothing_secret_sent(server: FakeOpenAIServer) -> None:
    sent = repr(server.requests)
    for secret in SECRETS:
        assert secret not in sent, secret


def python(code: str) -> str:
    return execution_reply("execute_python_code", code=code)


def shell(line: str) -> str:
    return execution_reply("execute_shell", command_line=line)


def test_secrets_outside_the_workspace_stay_hidden(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str, planted: Path
) -> None:
    server.script(
        "execution",
        python("print(open('../secret.txt').read())"),
        shell("cat ../secret.txt ~/.ssh/id_rsa ../.env ../home/notes.txt"),
        shell(f"cat {planted}/secret.txt {planted}/userhome/.ssh/id_rsa; grep -rn SECRET .. /tmp"),
        shell("cat /proc/$PPID/environ /proc/1/environ; env; ls /proc"),
        python("import os; print(sorted(os.environ))"),
    )
    child = confined(tmp_path, server, mechanism)
    run_to_end(child)
    assert_nothing_secret_sent(server)
    seen = results(server)
    assert all(f"Ran sandboxed ({mechanism}; network off)" in text for text in seen[:5])
    assert "OPENAI_API_KEY" not in seen[4] and "'PATH'" in seen[4]


def test_nothing_outside_the_workspace_can_be_written_or_deleted(
    tmp_path: Path,
    server: FakeOpenAIServer,
    mechanism: str,
    planted: Path,
    visible_victim: Path,
) -> None:
    victim = visible_victim
    beside = planted / "secret.txt"
    server.script(
        "execution",
        python(f"open({str(victim.parent / 'new.txt')!r}, 'w').write('pwned')"),
        python(f"import os; os.remove({str(victim)!r})"),
        shell(f"python3 -c \"import os; os.remove('{victim}')\"; rm -f ../secret.txt"),
        shell(f"find {victim.parent} -name victim.txt -exec rm {{}} \\;"),
        shell(f"cp /bin/rm ./tidy && ./tidy -f {victim} {beside} && echo gone"),
        shell(f"echo pwned > {victim}; echo pwned >> ~/.bashrc; touch /usr/pwned /etc/pwned"),
    )
    child = confined(tmp_path, server, mechanism)
    run_to_end(child)
    assert victim.read_text() == "intact"
    assert beside.read_text() == secret("BESIDE")
    assert not (victim.parent / "new.txt").exists()
    assert not (planted / "userhome" / ".bashrc").exists()
    assert not Path("/usr/pwned").exists() and not Path("/etc/pwned").exists()
    assert (tmp_path / "ws" / "tidy").exists()  # the workspace itself is writable


def test_root_inside_can_neither_uncover_remount_nor_write_sysctls(
    tmp_path: Path,
    server: FakeOpenAIServer,
    mechanism: str,
    planted: Path,
    visible_victim: Path,
) -> None:
    """As root (how the agent runs in containers and CI) the program inside must hold no
    capability: what hides a folder stays, read-only binds stay read-only, /proc/sys too."""
    victim = visible_victim
    reveal = f"cat {planted}/secret.txt {planted}/userhome/.ssh/id_rsa {planted}/home/notes.txt"
    uncover = f"umount -l {planted}/home; umount -l {planted}/userhome; umount -l {planted}"
    sysctl = "/proc/sys/vm/swappiness"
    server.script(
        "execution",
        shell("grep CapEff /proc/self/status"),
        shell(f"{uncover}; {reveal}"),
        shell(f"unshare -Urm sh -c '{uncover}; {reveal}'"),
        shell(
            f"mount -o remount,rw {victim.parent}; mount -o remount,bind,rw /; "
            f"echo pwned > {victim}; echo pwned > ~/.profile"
        ),
        shell(f"v=$(cat {sysctl}) && echo $v > {sysctl} && echo SYSCTL-''WRITTEN"),
        shell("echo h > /proc/sysrq-trigger && echo SYSRQ-''WRITTEN"),
    )
    child = confined(tmp_path, server, mechanism)
    run_to_end(child)
    seen = results(server)
    assert "CapEff:\t0000000000000000" in seen[0]
    assert_nothing_secret_sent(server)
    assert victim.read_text() == "intact"
    assert not (planted / "userhome" / ".profile").exists()
    assert "SYSCTL-WRITTEN" not in seen[4] and "SYSRQ-WRITTEN" not in seen[5]


class Listener:
    """A TCP listener on 127.0.0.1 that records whatever reaches it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                with suppress(OSError):
                    self.received.append(conn.recv(1000))

    def probe(self, seconds: float = 10) -> None:
        """Connect once more and wait until that connection is recorded: connections are
        accepted in the order they were made, so every one made before it is recorded too."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=seconds) as probe:
            probe.sendall(b"PROBE")
            deadline = time.monotonic() + seconds
            while b"PROBE" not in self.received:
                assert time.monotonic() < deadline, "the listener never recorded the probe"
                time.sleep(0.01)


def test_the_network_is_off_unless_allowed(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    listener = Listener()
    code = (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {listener.port}), timeout=3)\n"
        "s.sendall(b'LEAKED')\n"
    )
    server.script("execution", python(code))
    child = confined(tmp_path, server, mechanism)
    run_to_end(child)
    listener.probe()
    assert listener.connections == 1 and listener.received == [b"PROBE"]  # the probe alone
    assert "ConnectionRefusedError" in results(server)[0] or "Errno" in results(server)[0]


class Page(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"local page body"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_allow_network_lets_a_program_fetch_a_page(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    page = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{page.server_address[1]}/"
    try:
        server.script(
            "execution",
            python(f"import urllib.request; print(urllib.request.urlopen({url!r}).read())"),
        )
        child = confined(tmp_path, server, mechanism, "--allow-network")
        run_to_end(child)
    finally:
        page.shutdown()
        page.server_close()
    [seen] = results(server)[:1]
    assert "local page body" in seen and f"({mechanism}; network on)" in seen


def host_processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


DAEMON = """
import subprocess, sys
subprocess.Popen(["setsid", sys.executable, "-c", '''
import os, subprocess, sys
if os.fork() == 0:
    os.setsid()
    subprocess.Popen(["sleep", "{token}"])
''']).wait()
print("daemon started")
"""


def test_a_double_forked_daemon_is_gone_after_the_step(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    token = "4242.123"  # a sleep no one else runs
    seen_after_step: list[list[int]] = []
    server.script("execution", python(DAEMON.format(token=token)))
    child = confined(tmp_path, server, mechanism)
    child.expect_exact("daemon started")
    child.expect_exact("Run finished:")
    seen_after_step.append(host_processes_with(token))
    assert finish(child) == 0
    assert seen_after_step == [[]]


def test_killing_the_agent_kills_the_command_at_once(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    token = "4343.321"
    code = (
        "import subprocess\n"
        f"subprocess.Popen(['setsid', 'sleep', '{token}'])\n"
        f"subprocess.Popen(['sleep', '{token}'])\n"
        "open('started', 'w').write('1')\n"
        f"subprocess.run(['sleep', '{token}'])\n"
    )
    server.script("execution", python(code))
    child = confined(tmp_path, server, mechanism)
    deadline = time.monotonic() + 30
    while not (tmp_path / "ws" / "started").exists():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    while len(host_processes_with(token)) < 3:  # the third starts after the file is written
        assert time.monotonic() < deadline, "the third sleep never started"
        time.sleep(0.02)
    assert len(host_processes_with(token)) == 3
    os.kill(child.pid, signal.SIGKILL)
    killed = time.monotonic()
    while host_processes_with(token) and time.monotonic() - killed < 1.0:
        time.sleep(0.02)
    assert host_processes_with(token) == []
    child.expect(pexpect.EOF)
    child.close()
    # A resume never finds the old copy still running (it is gone), and the run goes on.
    server.script("execution", execution_reply("finish", reason="done"))
    again = spawn(
        tmp_path,
        server,
        "resume",
        "-c",
        "--allow-high-risk",
        AUTOAGENT_SANDBOX=mechanism,
        HOME=str(tmp_path / "userhome"),
    )
    again.expect_exact("may or may not have taken effect")
    run_to_end(again)


def test_limits_stop_runaway_programs_and_the_run_goes_on(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    big_file = (
        "chunk = b'x' * (1 << 20)\n"
        "with open('big.bin', 'wb') as f:\n"
        "    for _ in range(2048):\n"
        "        f.write(chunk)\n"
    )
    forks = (
        "import subprocess\n"
        "started = 0\n"
        "try:\n"
        "    for _ in range(500):\n"
        "        subprocess.Popen(['sleep', '30'])\n"
        "        started += 1\n"
        "finally:\n"
        "    print('started', started)\n"
    )
    server.script(
        "execution",
        python("block = bytearray(3 * 2**30)\nprint('allocated')"),
        python(big_file),
        python(forks),
        python("print('still going')"),
    )
    child = confined(
        tmp_path,
        server,
        mechanism,
        AUTOAGENT_SANDBOX_FILE_SIZE="16M",
        AUTOAGENT_SANDBOX_PROCESSES="100",
    )
    run_to_end(child)
    memory, file_size, processes, after = results(server)[:4]
    assert "killed: memory limit 2 GiB" in memory and "allocated" not in memory
    assert "stopped: file size limit 16 MiB" in file_size
    assert (tmp_path / "ws" / "big.bin").stat().st_size <= 16 << 20
    assert "stopped: process limit 100" in processes and "started 500" not in processes
    assert "still going" in after
    [state] = checkpoints(tmp_path)
    assert state["status"] == "finished"


def test_legitimate_work_still_works(
    tmp_path: Path, server: FakeOpenAIServer, mechanism: str
) -> None:
    script = (
        "import json, pathlib\n"
        "print(json.dumps(sorted(p.name for p in pathlib.Path('.').iterdir())))\n"
    )
    server.script(
        "execution",
        execution_reply("write_file", path="notes/a.txt", content="alpha"),
        python(
            "import pathlib\n"
            "pathlib.Path('notes/b.txt').write_text('beta')\n"
            "print(open('notes/a.txt').read())"
        ),
        execution_reply("write_file", path="tool.py", content=script),
        execution_reply("execute_python_file", path="tool.py"),
        shell("ls notes | sort -r | head -1 && echo tmp > /tmp/t && cat /tmp/t"),
    )
    child = confined(tmp_path, server, mechanism)
    run_to_end(child)
    seen = results(server)
    assert "alpha" in seen[1]
    assert "tool.py" in seen[3] and "notes" in seen[3]
    assert "b.txt" in seen[4] and "tmp" in seen[4] and "Exit code 0." in seen[4]
    assert (tmp_path / "ws" / "notes" / "b.txt").read_text() == "beta"


def test_no_sandbox_is_said_on_every_command_and_in_the_audit_log(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", python("print('one')"), shell("echo two"))
    child = spawn(
        tmp_path,
        server,
        "run",
        *PROFILE,
        "-c",
        "--allow-high-risk",
        "--no-sandbox",
        AUTOAGENT_SHELL_ENABLED="true",
    )
    child.expect_exact("Sandbox: NONE. --no-sandbox")
    for _ in range(2):
        child.expect_exact("Ran UNSANDBOXED (--no-sandbox)")
    run_to_end(child)
    assert all("UNSANDBOXED (--no-sandbox)" in text for text in results(server)[:2])
    [run] = (tmp_path / "home" / "runs").iterdir()
    log = (run / "events.jsonl").read_text()
    outputs = [
        e["record"]["result"]["output"]
        for e in map(json.loads, log.splitlines())
        if e["event"] == "CommandDone"
    ]
    assert len(outputs) == 2
    assert all("Ran UNSANDBOXED (--no-sandbox)" in output for output in outputs)
    assert "Sandbox: NONE. --no-sandbox" in log


def test_the_sandbox_command_shows_and_probes_the_sandbox(
    tmp_path: Path, mechanism: str, planted: Path
) -> None:
    child = spawn(
        tmp_path, None, "sandbox", AUTOAGENT_SANDBOX=mechanism, HOME=str(tmp_path / "userhome")
    )
    child.expect_exact(f"Sandbox: {mechanism}")
    child.expect_exact("Network: off")
    child.expect_exact("Limits: memory 2 GiB, CPU time 600 s, file size 1 GiB, processes 256")
    child.expect_exact("Probe (a shell inside the sandbox):")
    for check in ("no capabilities inside", "/proc/sys is read-only", "read-only folders cannot"):
        child.expect_exact(f"ok   {check}")
    assert finish(child) == 0
    assert "FAIL" not in (child.before or "")
