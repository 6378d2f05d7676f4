"""A GGUF model run in a process of its own, so that nothing it does can take the agent down.

`start_local_model` checks the file, starts `autoagent.model.local_worker` (which loads the model
and runs one token through it), and returns a `LocalModel`: the ordinary OpenAI-compatible
client pointed at that process. If the process dies (a native crash, an out-of-memory kill),
the call in flight ends with one sentence that says what happened; the run can be resumed.
The process is stopped with the run, on Ctrl-C and errors too, and dies with the agent.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import ModelError
from .llm import Completion, Message, OpenAIChatModel

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
START_TIMEOUT = 120.0  # loading a large model from a slow disk takes a while
REBUILD_HINT = (
    "llama.cpp was probably built for other CPU instructions than this machine runs: "
    "rebuild it with portable flags (AUTOAGENT_REBUILD_LLAMA=1 ./run.sh)"
)


@dataclass(frozen=True)
class LocalModelConfig:
    """How the worker runs the model (see `local_llm.LocalChatModel` for the meaning)."""

    path: Path
    n_ctx: int = 8192
    max_tokens: int = 1024
    max_string: int = 1000
    max_items: int = 16
    repeat_penalty: float = 1.1
    seed: int | None = None
    command_first: bool = False

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "autoagent.model.local_worker",
            "--model",
            str(self.path),
            "--parent-pid",
            str(os.getpid()),
            "--n-ctx",
            str(self.n_ctx),
            "--max-tokens",
            str(self.max_tokens),
            "--max-string",
            str(self.max_string),
            "--max-items",
            str(self.max_items),
            "--repeat-penalty",
            str(self.repeat_penalty),
        ]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        if self.command_first:
            argv.append("--command-first")
        return argv


def check_model_file(path: Path) -> None:
    """One sentence, before anything starts, for a file that cannot be a usable model."""
    if not path.is_file():
        raise ModelError(f"No model file at {path}: give the path of a .gguf file.")
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise ModelError(f"Cannot read the model file {path} ({exc.strerror}).") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF model file (it does not start with 'GGUF'); llama.cpp "
            "reads only GGUF: convert the model or pick a .gguf file."
        )
    available = _available_memory()
    needed = path.stat().st_size * 1.2 + 256 * 2**20  # the weights, the context, the runtime
    if available is not None and needed > available:
        raise ModelError(
            f"{path.name} needs about {needed / 2**30:.1f} GiB of memory and "
            f"{available / 2**30:.1f} GiB is available: pick a smaller or more quantized model."
        )


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe_exit(code: int) -> str:
    """How a process ended, in words a user can act on."""
    if code >= 0:
        return f"exited with code {code}"
    number = -code
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGKILL:
        return f"was killed ({name}: out of memory, or killed by someone)"
    if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT):
        return f"crashed ({name}, inside llama.cpp)"
    return f"was stopped by {name}"


class LocalModelProcess:
    """The worker process: started, health-checked through its READY line, and stopped."""

    def __init__(self, config: LocalModelConfig, log_file: Path) -> None:
        self.config = config
        self.log_file = log_file
        self._process: subprocess.Popen[str] | None = None
        self.port: int | None = None

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start the worker and wait until it serves; return its base URL."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log_out:
            self._process = subprocess.Popen(
                self.config.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_out,  # llama.cpp's own messages, never on the user's screen
                text=True,
                start_new_session=True,  # Ctrl-C reaches the agent, which stops it in order
            )
        atexit.register(self.stop)
        line = self._first_line(timeout)
        if line.startswith("READY "):
            self.port = int(line.split()[1])
            log.debug("local model %s serves on port %d", self.config.path.name, self.port)
            return f"http://127.0.0.1:{self.port}/v1"
        self.stop()
        if line.startswith("FAILED "):
            raise ModelError(line.removeprefix("FAILED ").strip())
        code = self._process.returncode
        if code is not None and code < 0 and -code != signal.SIGKILL:
            raise ModelError(
                f"The local model process {describe_exit(code)} while loading "
                f"{self.config.path.name} and running its first token: {REBUILD_HINT}. "
                f"Its log: {self.log_file}."
            )
        if code is None:
            raise ModelError(
                f"The local model did not start within {timeout:g} s "
                f"({self.config.path.name}); its log: {self.log_file}."
            )
        raise ModelError(
            f"The local model process {describe_exit(code)} while starting; its log: "
            f"{self.log_file}."
        )

    def _first_line(self, timeout: float) -> str:
        """The worker's first line on stdout: "" when it exits first or the time runs out."""
        process = self._process
        assert process is not None and process.stdout is not None
        stdout = process.stdout
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if found and not found[0]:  # end of output: the process is exiting
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        return found[0] if found else ""

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_description(self) -> str:
        assert self._process is not None
        code = self._process.poll()
        return describe_exit(code) if code is not None else "is running"

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalModel:
    """A ChatModel over the worker: the OpenAI-compatible client, plus what to say when the
    worker is gone."""

    def __init__(self, process: LocalModelProcess, base_url: str, timeout: float) -> None:
        self.process = process
        self.name = process.config.path.stem
        # One attempt: a local model that timed out or died is not helped by asking again.
        self._client = OpenAIChatModel(
            api_key=None, base_url=base_url, timeout=timeout, max_retries=0
        )
        self._client.stream = False  # the worker answers whole replies
        self._client.format_kind = "json_schema"
        self.timeout = timeout

    def complete(
        self, messages: list[Message], *, model: str, schema: dict[str, Any] | None = None
    ) -> Completion:
        if not self.process.alive:
            raise self._died()
        try:
            return self._client.complete(messages, model=self.name, schema=schema)
        except ModelError as exc:
            if not self.process.alive:
                raise self._died() from exc
            if "did not answer in time" in str(exc):
                raise ModelError(
                    f"The local model {self.name} did not answer within {self.timeout:g} s "
                    "(AUTOAGENT_REQUEST_TIMEOUT): raise it for a slow machine, or use a "
                    "smaller model."
                ) from exc
            raise

    def _died(self) -> ModelError:
        return ModelError(
            f"The local model process {self.process.exit_description()} during the call; "
            f"the run is saved: `autoagent resume` starts the model again and goes on. "
            f"Its log: {self.process.log_file}."
        )

    def close(self) -> None:
        self.process.stop()


def start_local_model(config: LocalModelConfig, log_file: Path, timeout: float) -> LocalModel:
    check_model_file(config.path)
    process = LocalModelProcess(config, log_file)
    base_url = process.start()
    return LocalModel(process, base_url, timeout)
