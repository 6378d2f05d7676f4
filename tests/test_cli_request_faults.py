"""Requests to a human when their files fail: damaged, or a disk that is full."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from autoagent.model.testing import FakeOpenAIServer, Slow, execution_reply

from .cli_helpers import PROFILE, PROMPT, cli_env, finish, spawn
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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An empty 8 MB file system for the runs' folders (the memory store stays apart: its
    own full disk is another matter)."""
    runs = tmp_path / "home" / "runs"
    runs.mkdir(parents=True)
    mounted = os.geteuid() == 0 and mount_tmpfs(runs, "8m")
    if not mounted:
        pytest.skip("mounting a small file system needs root")
    yield runs
    subprocess.run(["umount", "-l", str(runs)], check=False)


def mount_tmpfs(folder: Path, size: str) -> bool:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to its last byte; the file that fills it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 4096)
    assert shutil.disk_usage(folder).free == 0
    return filler


def words(text: str) -> str:
    """A pattern for `text` however the terminal wraps it."""
    return r"\s+".join(re.escape(word) for word in text.split())


def console_session(tmp_path: Path) -> tuple[subprocess.Popen[str], httpx.Client]:
    served = subprocess.Popen(
        [sys.executable, "-m", "autoagent", "serve", "--port", "0"],
        cwd=tmp_path,
        env=cli_env(tmp_path, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert served.stdout is not None
    match = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([\w-]+)", served.stdout.readline())
    assert match
    client = httpx.Client(base_url=match.group(1))
    assert client.get(f"/?token={match.group(2)}").status_code == 303
    return served, client


def test_a_full_disk_refuses_answers_from_a_shell_and_the_console_in_one_sentence(
    tmp_path: Path, server: FakeOpenAIServer, small_disk: Path
) -> None:
    child = start(tmp_path, server, "-c", "--wait-for-approval")
    request = one_pending(tmp_path)
    served, client = console_session(tmp_path)
    page = client.get("/approvals").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf
    filler = fill(small_disk)

    full = f"The answer to request {request['id']} could not be saved in "
    for reply in ("approve", "deny"):
        refused = shell(tmp_path, reply, request["id"])
        said = " ".join(refused.stdout.split())
        assert refused.returncode == 1 and not refused.stderr, refused.stderr
        assert said.startswith(f"Error: {full}"), said
        assert said.endswith("(No space left on device); nothing was decided."), said
    form = {"csrf": csrf.group(1), "digest": request["digest"], "action": "approve"}
    response = client.post(f"/requests/{request['id']}", data=form)
    assert response.status_code == 507
    assert "No space left on device" in response.text and "nothing was decided" in response.text

    filler.unlink()
    approved = shell(tmp_path, "approve", request["id"])
    assert approved.returncode == 0, approved.stdout + approved.stderr
    child.expect(ANSWERED_APPROVE)
    child.expect_exact("Run finished:")
    assert finish(child) == 0, child.before
    served.terminate()
    log, _ = served.communicate(timeout=10)
    assert "Traceback" not in log and "Error" not in log, log


def test_a_request_the_run_cannot_save_is_answered_at_its_terminal(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "old.txt").write_text("keep me?")
    # The model's reply comes late: meanwhile the run's requests folder becomes a full disk.
    server.script("execution", Slow(execution_reply("delete_file", path="old.txt"), 4))
    child = spawn(tmp_path, server, "run", *PROFILE)
    deadline = time.monotonic() + 30
    while not server.requests_for("execution"):
        assert time.monotonic() < deadline, "the run asked the model nothing"
        time.sleep(0.05)
    [run_dir] = [p for p in (tmp_path / "home" / "runs").iterdir() if not p.name.startswith(".")]
    folder = run_dir / "requests"
    folder.mkdir()
    assert mount_tmpfs(folder, "4k")
    try:
        fill(folder)
        child.expect_exact("could not be saved in")
        child.expect(
            words("(No space left on device), so no other channel can see it: answer here.")
        )
        child.expect_exact(PROMPT)
        child.sendline("y")
        child.expect_exact("The answer to request")
        child.expect(
            words("could not be saved (No space left on device); the run goes on with it.")
        )
        child.expect_exact(PROMPT)  # the next command, finish: its request is not saved either
        child.sendline("y")
        child.expect_exact("Run finished:")
        output = child.before
        assert finish(child) == 0
        assert "Traceback" not in output
        assert not (tmp_path / "ws" / "old.txt").exists()
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
