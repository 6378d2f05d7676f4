"""`fleet server`: Temporal's dev server for one machine, and a memory server its runs share.

Both keep their data in AUTOAGENT_HOME/fleet, so a restart loses no submitted run and no
memory. Workers on this machine find the memory server in `server.json` there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..base.errors import ConfigError
from .worker import SERVER_FILE

START_WAIT = 60.0  # seconds for both servers to answer


def program(name: str) -> str:
    """A program installed beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise ConfigError(f"`{name}` is not installed: install the fleet extra (autoagent[fleet]).")
    return found


def serve(home: Path, port: int, memory_port: int, say: Callable[[str], None]) -> int:
    """Run both servers until Ctrl-C (SIGINT) or SIGTERM, or until one of them stops."""
    folder = home / "fleet"
    folder.mkdir(parents=True, exist_ok=True)
    for wanted in (port, memory_port):
        if _answers(wanted):
            raise ConfigError(f"Port {wanted} on 127.0.0.1 is taken: give another one.")
    temporal_program, chroma_program = program("temporal"), program("chroma")
    log = (folder / "server.log").open("ab")
    temporal = subprocess.Popen(
        [
            temporal_program,
            *("server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)),
            *("--db-filename", str(folder / "temporal.db"), "--headless"),
            *("--log-level", "warn"),
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    memory = subprocess.Popen(
        [
            *(chroma_program, "run", "--path", str(folder / "memory")),
            *("--host", "127.0.0.1", "--port", str(memory_port)),
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    served = folder / SERVER_FILE
    see = f"see {folder / 'server.log'}"
    try:
        deadline = time.monotonic() + START_WAIT
        while not (_answers(port) and _answers(memory_port)):
            if temporal.poll() is not None or memory.poll() is not None:
                raise ConfigError(f"The fleet's servers did not start: {see}.")
            if time.monotonic() > deadline:
                raise ConfigError(f"The fleet's servers did not answer: {see}.")
            time.sleep(0.1)
        memory_url = f"http://127.0.0.1:{memory_port}"
        address = f"127.0.0.1:{port}"
        served.write_text(
            json.dumps({"temporal": address, "memory_url": memory_url, "pid": os.getpid()}),
            encoding="utf-8",
        )
        say(f"Temporal at 127.0.0.1:{port}, memory at {memory_url}; data in {folder}.")
        while temporal.poll() is None and memory.poll() is None:
            time.sleep(0.5)
        return 1  # one of them stopped by itself
    except KeyboardInterrupt:
        return 0
    finally:
        served.unlink(missing_ok=True)
        for child in (temporal, memory):
            if child.poll() is None:
                child.terminate()
        for child in (temporal, memory):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        log.close()


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
