"""Requests to a human when their files fail: damaged, or a disk that is full."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoagent.model.testing import FakeOpenAIServer

from .cli_helpers import PROMPT, finish, spawn
from .test_cli_approvals import ANSWERED_APPROVE, killed_while_waiting, one_pending, shell, start

pytestmark = pytest.mark.slow


def request_file(tmp_path: Path, request_id: str) -> Path:
    [run_dir] = (tmp_path / "home" / "runs").iterdir()
    return run_dir / "requests" / f"{request_id}.json"


def one_sentence(text: str) -> None:
    assert "Traceback" not in text and "skipped" not in text, text
    assert text.startswith("Error: ") and text.rstrip().endswith("cancels it."), text


def test_a_damaged_request_of_a_waiting_run_is_written_again_and_approved(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = start(tmp_path, server, "-c", "--wait-for-approval")
    request = one_pending(tmp_path)
    request_file(tmp_path, request["id"]).write_text('{"id": "trunc')

    child.expect_exact(f"Request {request['id']}'s file was damaged; the run wrote it again.")
    approved = shell(tmp_path, "approve", request["id"])
    assert approved.returncode == 0, approved.stdout + approved.stderr
    child.expect(ANSWERED_APPROVE)
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "old.txt").exists()


def test_a_damaged_request_that_cannot_be_written_again_is_answered_at_the_terminal(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = start(tmp_path, server)
    child.expect_exact(PROMPT)
    request = one_pending(tmp_path)
    path = request_file(tmp_path, request["id"])
    path.unlink()
    path.mkdir()  # neither readable as a request nor replaceable by one

    child.expect_exact(f"Request {request['id']}'s file is damaged and cannot be written again")
    child.expect_exact("answer here")
    child.expect_exact(PROMPT)  # shown again under the note
    listed = shell(tmp_path, "approvals")
    assert f"Request {request['id']} of run" in listed.stderr
    assert "cannot be read (Is a directory" in listed.stderr
    refused = shell(tmp_path, "approve", request["id"])
    assert refused.returncode == 1
    assert f"Request {request['id']} of run" in refused.stdout
    assert "cannot be shown or approved" in refused.stdout
    assert f"`autoagent deny {request['id']}` cancels it" in refused.stdout
    one_sentence(refused.stdout + refused.stderr)

    child.sendline("y")
    child.expect_exact(PROMPT)  # the next command, finish
    child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "old.txt").exists()


def test_a_damaged_request_of_a_waiting_run_can_be_denied_from_a_shell(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    request = killed_while_waiting(tmp_path, server)
    request_file(tmp_path, request["id"]).write_text("\0\0\0")

    refused = shell(tmp_path, "approve", request["id"])
    assert refused.returncode == 1 and "cannot be shown or approved" in refused.stdout
    assert "No request" not in refused.stdout
    denied = shell(tmp_path, "deny", request["id"], "--feedback", "not now")
    assert denied.returncode == 0, denied.stdout + denied.stderr
    assert "Recorded: deny" in denied.stdout
    again = shell(tmp_path, "deny", request["id"])
    assert again.returncode == 1 and "already answered" in again.stdout

    # Resumed, the run asks again with a request of its own, answered as any other.
    resumed = spawn(tmp_path, server, "resume")
    resumed.expect_exact(PROMPT)
    fresh = one_pending(tmp_path)
    assert fresh["id"] != request["id"] and fresh["args"] == {"path": "old.txt"}
    resumed.sendline("y")
    resumed.expect_exact(PROMPT)
    resumed.sendline("y")
    resumed.expect_exact("Run finished:")
    assert finish(resumed) == 0
