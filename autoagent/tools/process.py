"""Child processes: a sandbox, a deadline, no stdin, no secrets, bounded output, no leftovers.

Each program runs in its own session (process group), inside the sandbox it is given (see
sandbox.py). When it ends or times out, the whole group is killed; in the sandbox, its PID
namespace goes with it, so even a double-forked daemon dies. It dies with the agent too, also
on `kill -9` of the agent: bubblewrap's --die-with-parent, the Landlock launcher's and the
unconfined child's PR_SET_PDEATHSIG.

Two ways to start one: run_process() runs a program to its end and collects its output;
start_process() starts a long-lived tool process (an MCP stdio server) with pipes to talk to it.
"""

from __future__ import annotations

import ctypes
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..base.errors import CommandError
from ..base.interrupts import ctrl_c_held
from ..base.text import decode
from .cgroups import PidsGroup
from .confine import isolate_from_host, landlock_abi
from .sandbox import Limits, Sandbox

# What a child may inherit from the agent's environment; everything else stays behind.
ALLOWED_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "COLORTERM",
     "NO_COLOR", "COLUMNS", "LINES", "PYTHONIOENCODING", "PYTHONUTF8"}
)  # fmt: skip
ALLOWED_PREFIXES = ("LC_",)
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_CHUNK = 1 << 16
_POLL_SECONDS = 0.05  # how often we check whether the program has ended
_DRAIN_SECONDS = 1.0  # how long we wait for the last output once the group is killed
SAVE_LIMIT = 100_000_000


def child_environment(
    environ: Mapping[str, str] | None = None, allowed: Collection[str] = ()
) -> dict[str, str]:
    """The part of the environment (default: this process's) a child may see.

    Only PATH, HOME, USER, LANG, LC_*, TZ, TERM and the like, plus the names in `allowed`
    (the human's AUTOAGENT_CHILD_ENV): an allowlist, so a secret under any name stays behind.
    """
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES) or name in allowed
    }


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int  # negative when killed by a signal (-9 after a timeout)
    output: str  # stdout and stderr merged, decoded, middle cut to the byte limit
    timed_out: bool
    truncated: bool
    full_output_bytes: int
    saved_to: Path | None = None  # every byte of output (up to SAVE_LIMIT), when asked for


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    max_output_bytes: int,
    save_to: Path | None = None,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> ProcessResult:
    """Run `argv` (never through a shell of ours) in `sandbox` and collect its output.

    Without a sandbox the program runs unconfined (tests, and --no-sandbox through a Sandbox
    that says so). `env` defaults to child_environment(). The output kept in memory is at most
    `max_output_bytes` (head and tail); with `save_to`, all of it is streamed to that file.
    Raises CommandError when the program cannot be started or the output file not written,
    RefusedError when the sandbox forbids running anything.
    """
    if not argv:
        raise CommandError("No program given.")
    save_file: BinaryIO | None = None
    if save_to is not None:
        try:
            save_to.parent.mkdir(parents=True, exist_ok=True)
            save_file = save_to.open("wb")
        except OSError as exc:
            raise CommandError(f"Could not save the output to {save_to}: {exc.strerror}.") from exc
    try:
        capture = _Capture(max_output_bytes, save_file)
        started = _start(
            argv, cwd, child_environment() if env is None else dict(env), sandbox, _OUTPUT
        )
        proc = started.proc
        assert proc.stdout is not None
        try:
            timed_out = _pump(proc, capture, time.monotonic() + timeout)
        finally:
            _kill_group(proc.pid)
            _drain(proc.stdout.fileno(), capture, time.monotonic() + _DRAIN_SECONDS)
            proc.stdout.close()
            exit_code = proc.wait()
            started.release()
    finally:
        if save_file is not None:
            save_file.close()
    return ProcessResult(
        exit_code=exit_code,
        output=capture.text(),
        timed_out=timed_out,
        truncated=capture.truncated,
        full_output_bytes=capture.total,
        saved_to=save_to,
    )


@dataclass
class ToolProcess:
    """A long-lived program started by start_process(): talk through proc.stdin/proc.stdout."""

    proc: subprocess.Popen[bytes]
    group: PidsGroup | None = None
    alive: int | None = None  # the agent's end of the pipe the sandbox checks it by

    def stop(self) -> int:
        """Kill it with everything it started; its exit code."""
        _kill_group(self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with suppress(OSError):
                    stream.close()
        exit_code = self.proc.wait()
        self.release()
        return exit_code

    def release(self) -> None:
        """Once it has ended: remove its group (and what is left in it), close the pipe."""
        if self.group is not None:
            self.group.remove()
        if self.alive is not None:
            os.close(self.alive)
            self.alive = None


def start_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    sandbox: Sandbox | None,
    env: Mapping[str, str] | None = None,
) -> ToolProcess:
    """Start a long-lived tool process (such as an MCP stdio server) in `sandbox`.

    Its stdin and stdout are pipes to talk to it; its stderr goes nowhere. It runs in its own
    process group and dies with the agent; stop it with ToolProcess.stop(). Raises CommandError
    when it cannot be started, RefusedError when the sandbox forbids running anything.
    """
    if not argv:
        raise CommandError("No program given.")
    return _start(argv, cwd, child_environment() if env is None else dict(env), sandbox, _TALK)


_OUTPUT = (subprocess.DEVNULL, subprocess.PIPE, subprocess.STDOUT)  # stdin, stdout, stderr
_TALK = (subprocess.PIPE, subprocess.PIPE, subprocess.DEVNULL)


def _start(
    argv: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    sandbox: Sandbox | None,
    streams: tuple[int, int, int],
) -> ToolProcess:
    group = None
    isolate = False
    stdin, stdout, stderr = streams
    alive = None  # the read end of the pipe the program checks the agent is still there by
    if sandbox is None:
        command, limits = list(argv), None
    else:
        # A program with no input gets, until it starts, a pipe as stdin (see Sandbox.wrap).
        launch = sandbox.wrap(argv, cwd, alive_fd=0 if stdin == subprocess.DEVNULL else None)
        command, limits = launch.argv, launch.limits
        if launch.direct is not None:  # the child isolates itself: no launcher to start
            command, isolate = launch.direct, True
        if launch.checks_agent:
            alive, stdin = os.pipe()
        # Also with no process limit: what a run killed with kill -9 left is found in it.
        group = PidsGroup.create(sandbox.limits.processes if sandbox.confined else None)
    procs = group.open_procs() if group is not None else None
    proc = None
    try:
        with ctrl_c_held():  # a press meanwhile is raised at the end of the block
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=stdin,  # for run_process: a program waiting for input gets EOF at once
                stdout=stdout,
                stderr=stderr,
                bufsize=0,
                start_new_session=True,  # its own process group, killed as a whole
                close_fds=True,
                preexec_fn=_child_setup(os.getpid(), limits, procs, isolate),
            )
    except FileNotFoundError as exc:
        raise CommandError(f"Program not found: {argv[0]!r}.") from exc
    except PermissionError as exc:
        raise CommandError(f"Program {argv[0]!r} cannot be run: permission denied.") from exc
    except OSError as exc:
        raise CommandError(f"Could not start {argv[0]!r}: {exc.strerror}.") from exc
    except KeyboardInterrupt:  # pressed while it started: it is not left running
        if proc is not None:
            ToolProcess(proc, group).stop()
            proc = group = None  # ended, its group removed; the pipe is closed below
        raise
    except subprocess.SubprocessError as exc:  # raised in the child before exec
        raise CommandError(f"Could not start {argv[0]!r}: the sandbox failed ({exc}).") from exc
    finally:
        if procs is not None:
            os.close(procs)
        if alive is not None:
            os.close(stdin)
            if proc is None:
                os.close(alive)
        if proc is None and group is not None:
            group.remove()
    return ToolProcess(proc, group, alive)


def _child_setup(
    parent: int, limits: Limits | None, procs: int | None, isolate: bool = False
) -> Callable[[], None]:
    """What the child does between fork and exec: die with the agent, join its pids cgroup,
    leave the host's keyrings behind (`isolate`), take the limits."""
    abi = landlock_abi() if isolate else 0  # asked before the fork

    def setup() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(137)  # the agent died before the line above
        if procs is not None:
            os.write(procs, str(os.getpid()).encode())
        if isolate:
            isolate_from_host(abi)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits is None:
            return
        for which, value in (
            (resource.RLIMIT_AS, limits.memory),
            (resource.RLIMIT_FSIZE, limits.file_size),
            (resource.RLIMIT_NPROC, limits.processes),
        ):
            if value is not None:
                resource.setrlimit(which, (value, value))
        if limits.cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))

    return setup


def _pump(proc: subprocess.Popen[bytes], capture: _Capture, deadline: float) -> bool:
    """Read output until the program ends (False) or the deadline passes (True)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        reading = True
        while not _has_ended(proc):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if not reading:
                time.sleep(min(remaining, _POLL_SECONDS))
            elif selector.select(min(remaining, _POLL_SECONDS)):
                data = os.read(fd, _CHUNK)
                if data:
                    capture.add(data)
                else:
                    selector.unregister(fd)
                    reading = False
    return False


def _has_ended(proc: subprocess.Popen[bytes]) -> bool:
    # WNOWAIT leaves the leader a zombie, so its pid (and group id) cannot be reused
    # before we kill the group; proc.wait() reaps it afterwards.
    if hasattr(os, "waitid"):
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, proc.pid, flags) is not None
    return proc.poll() is not None


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(pgid, signal.SIGKILL)


def _drain(fd: int, capture: _Capture, deadline: float) -> None:
    """Read what is left in the pipe; give up if an escaped process keeps it open."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                return
            data = os.read(fd, _CHUNK)
            if not data:
                return
            capture.add(data)


class _Capture:
    """Keeps the head and tail of a byte stream within a limit; optionally saves all of it."""

    def __init__(self, limit: int, save: BinaryIO | None) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.save = save
        self.saved = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self._save(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def _save(self, data: bytes) -> None:
        if self.save is None or self.saved >= SAVE_LIMIT:
            return
        piece = data[: SAVE_LIMIT - self.saved]
        self.save.write(piece)
        self.saved += len(piece)
        if self.saved >= SAVE_LIMIT:
            self.save.write(f"\n[... output beyond {SAVE_LIMIT:,} bytes not saved ...]\n".encode())

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return decode(bytes(self.head + self.tail))
        cut = self.total - len(self.head) - len(self.tail)
        marker = f"\n[... {cut:,} bytes of output cut ...]\n"
        return decode(bytes(self.head)) + marker + decode(bytes(self.tail))
