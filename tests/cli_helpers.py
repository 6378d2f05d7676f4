"""Start the installed CLI in a real pseudo-terminal against the local test server."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pexpect

from autoagent.model.testing import FakeOpenAIServer

PROMPT = "Enter 'y' to authorise"
PROFILE = ["--name", "Scout", "--role", "a careful test agent", "--goal", "Write files as asked"]


def cli_env(tmp_path: Path, server: FakeOpenAIServer | None, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOAGENT_", "OTEL_"))
    }
    env.update(
        {
            "AUTOAGENT_HOME": str(tmp_path / "home"),
            "AUTOAGENT_WORKSPACE": str(tmp_path / "ws"),
            "AUTOAGENT_MAX_RETRIES": "1",
            "AUTOAGENT_REQUEST_TIMEOUT": "20",
            "TERM": "xterm",
            "NO_COLOR": "1",  # keeps styled words contiguous for expect; layout is unchanged
            "PYTHONUNBUFFERED": "1",
            # The tests' own programs (an MCP server script) stay readable in the sandbox,
            # also from a clone under /tmp, which the sandbox replaces with a private one.
            "AUTOAGENT_SANDBOX_READABLE": str(Path(__file__).parent),
        }
    )
    if server is not None:
        env["OPENAI_BASE_URL"] = server.base_url
    env.update(extra)
    return env


def spawn(
    tmp_path: Path,
    server: FakeOpenAIServer | None,
    *args: str,
    timeout: float = 60,
    **env: str,
) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "autoagent", *args],
        cwd=str(tmp_path),
        env=cli_env(tmp_path, server, **env),
        encoding="utf-8",
        codec_errors="replace",
        timeout=timeout,
        dimensions=(60, 220),
        # Ctrl-C must reach the CLI even when the tests run as a background job, whose
        # children start with SIGINT ignored (and Python then installs no handler for it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def expect_words(child: pexpect.spawn, text: str, timeout: float = -1) -> None:
    """Wait for `text` on the screen, however its lines wrap: between its words, any spaces,
    line breaks, quote bars and styles (a long path before it moves where the lines break)."""
    gap = r"(?:\s|│|\x1b\[[0-9;]*m)+"
    child.expect(gap.join(re.escape(word) for word in text.split()), timeout=timeout)


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus if child.exitstatus is not None else -(child.signalstatus or 0)


def run_to_end(tmp_path: Path, server: FakeOpenAIServer, *args: str, **env: str) -> str:
    """The screen, on one line, of a continuous run that ends by itself: finished (exit 0),
    or at its --max-steps (exit 3); never with a traceback."""
    child = spawn(tmp_path, server, *args, **env)
    child.expect(pexpect.EOF)
    screen = " ".join(child.before.split())
    child.close()
    limited = "--max-steps" in args
    assert child.exitstatus == (3 if limited else 0), screen
    assert "Traceback" not in screen
    return screen


def checkpoints(tmp_path: Path) -> list[dict[str, Any]]:
    runs = sorted((tmp_path / "home" / "runs").iterdir())
    return [json.loads((run / "checkpoint.json").read_text()) for run in runs]
