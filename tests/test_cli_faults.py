"""Faults, limits and hostile text through the CLI: each test failed before its fix."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pexpect
import pytest

from autoagent.testing import FakeOpenAIServer, Fault, execution_reply

from .cli_helpers import PROFILE, finish, spawn

pytestmark = pytest.mark.slow


def write(name: str, content: str = "x") -> str:
    return execution_reply("write_file", path=name, content=content)


def done(reason: str = "All goals met.") -> str:
    return execution_reply("finish", reason=reason)


def expect_words(child: pexpect.spawn, phrase: str) -> None:
    """Expect `phrase`, wherever the screen wraps it (and quotes the wrapped part)."""
    words = (re.escape(word) for word in phrase.split())
    child.expect(r"(?:\s|\x1b\[[0-9;]*m|│)+".join(words))


def plain_lines(screen: str) -> list[str]:
    """The screen's lines without styles and cursor moves."""
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", line) for line in screen.split("\n")]


def wait_for(predicate, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# 11


def test_a_503_while_the_response_format_is_probed_is_retried(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", Fault(503), write("a.txt"), done())
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert (tmp_path / "ws" / "a.txt").exists()
    formats = [(r.get("response_format") or {}).get("type") for r in server.requests]
    assert formats[:2] == ["json_schema", "json_schema"]  # the same format, asked again
