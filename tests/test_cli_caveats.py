"""Limits that hold through the CLI: what reaches the screen, the reply format, the memory
store, the budget."""

from __future__ import annotations

import io
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, finish, spawn

pytestmark = pytest.mark.slow


def test_long_model_text_is_cut_on_the_screen_as_program_output_is(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    said = "It is long. " * 4_000  # 48 KB, said three times: a reply of 150 KB
    plan = [f"part {n}" for n in range(500)]
    reply = execution_reply("finish", thought=said, reason=said)
    reply = reply.replace('["run finish", "check the result"]', str(plan).replace("'", '"'))
    server.script("execution", reply)
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.logfile_read = screen = io.StringIO()
    child.expect_exact("Run finished:")
    child.expect(pexpect.EOF)
    assert finish(child) == 0
    shown = screen.getvalue()
    assert len(shown) < 30_000, len(shown)
    assert shown.count("characters cut ...]") >= 3  # thoughts, speak, the reason
    assert "[... 488 more ...]" in shown
