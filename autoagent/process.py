"""Child processes: a deadline, no stdin, no secrets, bounded output, and no leftovers.

Each program runs in its own session (process group). When it ends or times out, the whole
group is killed, so a grandchild left running in the background dies with it.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import CommandError
from .text import decode

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASS|CREDENTIAL|AUTH|COOKIE|PRIVATE", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")  # e.g. postgres://user:pw@host
_CHUNK = 1 << 16
_POLL_SECONDS = 0.05  # how often we check whether the program has ended
_DRAIN_SECONDS = 1.0  # how long we wait for the last output once the group is killed
SAVE_LIMIT = 100_000_000


def safe_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment (default: this process's) without what looks like a secret.

    Drops every variable whose name contains KEY, TOKEN, SECRET, PASS, CREDENTIAL, AUTH,
    COOKIE or PRIVATE (any case), and every value holding a URL with a password.
    """
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if not _SECRET_NAME.search(name) and not _URL_CREDENTIALS.search(value)
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
) -> ProcessResult:
    """Run `argv` (never through a shell) and collect its output.

    `env` defaults to safe_environment(). The output kept in memory is at most
    `max_output_bytes` (head and tail); with `save_to`, all of it is streamed to that file.
    Raises CommandError when the program cannot be started or the output file not written.
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
        proc = _start(argv, cwd, safe_environment() if env is None else dict(env))
        assert proc.stdout is not None
        try:
            timed_out = _pump(proc, capture, time.monotonic() + timeout)
        finally:
            _kill_group(proc.pid)
            _drain(proc.stdout.fileno(), capture, time.monotonic() + _DRAIN_SECONDS)
            proc.stdout.close()
            exit_code = proc.wait()
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


def _start(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,  # a program waiting for input gets EOF at once
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            start_new_session=True,  # its own process group, killed as a whole
            close_fds=True,
        )
    except FileNotFoundError as exc:
        raise CommandError(f"Program not found: {argv[0]!r}.") from exc
    except PermissionError as exc:
        raise CommandError(f"Program {argv[0]!r} cannot be run: permission denied.") from exc
    except OSError as exc:
        raise CommandError(f"Could not start {argv[0]!r}: {exc.strerror}.") from exc


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
