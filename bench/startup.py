"""Start-up: `autoagent --help`, and from `autoagent run` to the first model request."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .common import Figure, median, timed

REPO = Path(__file__).resolve().parent.parent
HELP_TARGET = 0.2


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOAGENT_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env | extra


def _help_seconds(command: list[str], runs: int) -> float:
    def once() -> None:
        subprocess.run(command, env=_env(), capture_output=True, check=True)

    once()  # warm the file cache
    return median([timed(once) for _ in range(runs)])


def _first_request_seconds(server: FakeOpenAIServer, folder: Path) -> float:
    """From starting the CLI until the server holds its first chat request."""
    before = len(server.requests)
    server.script("execution", execution_reply("finish", reason="Start-up measured."))
    env = _env(
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="bench",
        AUTOAGENT_HOME=str(folder / "home"),
        AUTOAGENT_WORKSPACE=str(folder / "ws"),
    )
    command = [sys.executable, "-m", "autoagent", "run", "-c", "--max-steps", "1"]
    command += ["--name", "Starter", "--role", "a start-up probe", "--goal", "Start"]
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while len(server.requests) == before:
            if process.poll() is not None:
                raise RuntimeError(f"autoagent run ended (code {process.returncode}) first")
            time.sleep(0.001)
        seconds = time.perf_counter() - start
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return seconds


def run(quick: bool) -> list[Figure]:
    runs = 3 if quick else 10
    figures = []
    python = [sys.executable, "-c", "pass"]
    figures.append(
        Figure(
            "Start-up", "python -c pass (the interpreter alone)", _help_seconds(python, runs), "s"
        )
    )
    seconds = _help_seconds([sys.executable, "-m", "autoagent", "--help"], runs)
    figures.append(
        Figure(
            "Start-up",
            "python -m autoagent --help",
            seconds,
            "s",
            f"< {HELP_TARGET} s",
            seconds < HELP_TARGET,
        )
    )
    script = shutil.which("autoagent", path=str(Path(sys.executable).parent))
    if script:
        seconds = _help_seconds([script, "--help"], runs)
        figures.append(
            Figure(
                "Start-up",
                "autoagent --help (installed script)",
                seconds,
                "s",
                f"< {HELP_TARGET} s",
                seconds < HELP_TARGET,
            )
        )
    with FakeOpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        samples = []
        for n in range(2 if quick else 5):
            folder = Path(tmp) / f"run{n}"
            folder.mkdir()
            samples.append(_first_request_seconds(server, folder))
    figures.append(
        Figure(
            "Start-up",
            "autoagent run -> first model request",
            median(samples),
            "s",
            note="settings, the endpoint check; memory (Chroma, embedders) loads alongside",
        )
    )
    return figures
