"""Humans answering a run from elsewhere, through the CLI: another shell, a timeout, a webhook,
and a kill -9 while a request waits."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pexpect
import pytest

from autoagent.cli.inbox import find
from autoagent.human.requests import AUDIT_LOG, check_link
from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .cli_helpers import PROFILE, PROMPT, checkpoints, cli_env, finish, spawn

pytestmark = pytest.mark.slow

WAIT = "Waiting for a human"
ANSWERED_APPROVE = (
    r"Answered elsewhere: (\x1b\[[0-9;]*m)*approve by \S+( \(sudo from \S+\))? through the cli"
)


def shell(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Another shell's autoagent command, on the same data folder."""
    return subprocess.run(
        [sys.executable, "-m", "autoagent", *args],
        cwd=tmp_path,
        env=cli_env(tmp_path, None, NO_COLOR="1", COLUMNS="200", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def pending(tmp_path: Path) -> list[dict[str, Any]]:
    listed = shell(tmp_path, "approvals", "--json")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def one_pending(tmp_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while not (found := pending(tmp_path)):
        assert time.monotonic() < deadline, "no request appeared"
        time.sleep(0.2)
    [request] = found
    return request


def prompts_seen(server: FakeOpenAIServer) -> list[str]:
    return [r["messages"][-1]["content"] for r in server.requests_for("execution")]


def start(tmp_path: Path, server: FakeOpenAIServer, *flags: str) -> pexpect.spawn:
    (tmp_path / "ws").mkdir(exist_ok=True)
    (tmp_path / "ws" / "old.txt").write_text("keep me?")
    server.script("execution", execution_reply("delete_file", path="old.txt"))
    return spawn(tmp_path, server, "run", *PROFILE, *flags)


def killed_while_waiting(tmp_path: Path, server: FakeOpenAIServer) -> dict[str, Any]:
    """A continuous run killed with SIGKILL while its request waits; the request."""
    child = start(tmp_path, server, "-c", "--wait-for-approval")
    request = one_pending(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    return request


def test_a_continuous_run_waits_and_is_approved_from_another_shell(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = start(tmp_path, server, "-c", "--wait-for-approval")
    child.expect_exact(WAIT)
    request = one_pending(tmp_path)
    assert (request["kind"], request["command"], request["args"], request["risk"]) == (
        "approval",
        "delete_file",
        {"path": "old.txt"},
        "high",
    )
    assert request["step"] == 1 and (tmp_path / "ws" / "old.txt").exists()

    approved = shell(tmp_path, "approve", request["id"])
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "Recorded: approve" in approved.stdout and "delete_file" in approved.stdout
    child.expect(ANSWERED_APPROVE)
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "old.txt").exists()

    again = shell(tmp_path, "deny", request["id"])
    assert again.returncode == 1 and "already answered: approve" in again.stdout
    unknown = shell(tmp_path, "approve", "ffffffff")
    assert unknown.returncode == 1 and "No request 'ffffffff'" in unknown.stdout
    [entry] = [json.loads(x) for x in (tmp_path / "home" / AUDIT_LOG).read_text().splitlines()]
    assert (entry["reply"], entry["channel"], entry["request"]) == ("approve", "cli", request["id"])
    [state] = checkpoints(tmp_path)
    decision = state["recent"][0]["decision"]
    assert (decision["by"], decision["channel"], decision["request"]) == (
        "human",
        "cli",
        request["id"],
    )


def test_a_deny_with_feedback_reaches_the_model_and_the_run_goes_on(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = start(tmp_path, server, "-c", "--wait-for-approval")
    request = one_pending(tmp_path)
    denied = shell(tmp_path, "deny", request["id"], "--feedback", "Keep it; rename it instead.")
    assert denied.returncode == 0, denied.stdout
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert (tmp_path / "ws" / "old.txt").read_text() == "keep me?"
    after = prompts_seen(server)[1]
    assert "Keep it; rename it instead." in after and "did not allow" in after


def test_an_answer_given_while_the_run_was_down_applies_when_it_resumes(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    request = killed_while_waiting(tmp_path, server)

    assert pending(tmp_path) == [request]  # still waiting, although its run is down
    assert shell(tmp_path, "approve", request["id"]).returncode == 0
    resumed = spawn(tmp_path, server, "resume", "-c", "--wait-for-approval")
    resumed.expect(ANSWERED_APPROVE)
    resumed.expect_exact("Run finished:")
    assert finish(resumed) == 0
    assert not (tmp_path / "ws" / "old.txt").exists()
    # The step was not proposed again, and no second request was made for it.
    assert len(server.requests_for("execution")) == 2
    [run_dir] = (tmp_path / "home" / "runs").iterdir()
    assert len(list((run_dir / "requests").glob("*.answer.json"))) == 1
    assert len([p for p in (run_dir / "requests").glob("*.json") if ".answer" not in p.name]) == 1


def test_a_run_killed_while_waiting_waits_on_the_same_request_when_resumed(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    request = killed_while_waiting(tmp_path, server)

    resumed = spawn(tmp_path, server, "resume", "-c", "--wait-for-approval")
    resumed.expect_exact(WAIT)
    assert pending(tmp_path) == [request]
    assert shell(tmp_path, "deny", request["id"]).returncode == 0
    resumed.expect_exact("Run finished:")
    assert finish(resumed) == 0
    assert (tmp_path / "ws" / "old.txt").exists()


def test_a_request_no_one_answers_is_denied_at_the_timeout_and_the_agent_told(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = start(tmp_path, server, "-c", "--wait-for-approval", "--approval-timeout", "1")
    child.expect(r"Timed out: (\x1b\[[0-9;]*m)*expired")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert (tmp_path / "ws" / "old.txt").exists()
    assert "No one decided within 1 seconds" in prompts_seen(server)[1]
    assert pending(tmp_path) == []


def test_without_wait_for_approval_a_continuous_run_refuses_at_once(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = start(tmp_path, server, "-c")
    child.expect_exact("REFUSED")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert pending(tmp_path) == [] and (tmp_path / "ws" / "old.txt").exists()


def test_a_question_is_answered_from_another_shell(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script("execution", execution_reply("ask_user", question="Which city, Lisbon or Porto?"))
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--wait-for-approval")
    child.expect_exact("The agent asks:")
    request = one_pending(tmp_path)
    assert request["kind"] == "question"
    refused = shell(tmp_path, "approve", request["id"])
    assert refused.returncode == 1 and "is a question" in refused.stdout
    assert shell(tmp_path, "answer", request["id"], "Porto, by train").returncode == 0
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert "The human answered: Porto, by train" in prompts_seen(server)[1]


def test_the_terminal_prompt_gives_way_to_an_answer_from_another_shell(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    child = start(tmp_path, server)
    child.expect_exact(PROMPT)
    request = one_pending(tmp_path)
    assert shell(tmp_path, "approve", request["id"]).returncode == 0
    child.expect(ANSWERED_APPROVE)
    child.expect_exact(PROMPT)  # the next command, finish, is asked at the terminal again
    child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert not (tmp_path / "ws" / "old.txt").exists()


@pytest.mark.sandbox
def test_the_audit_trail_names_the_effective_user_whatever_USER_says(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "old.txt").write_text("x")
    server.script(
        "execution",
        execution_reply("delete_file", path="old.txt"),
        execution_reply("write_file", path="new.txt", content="fresh"),
    )
    # The run's own terminal, in a shell that claims to be ana's, under sudo from ana.
    child = spawn(tmp_path, server, "run", *PROFILE, USER="ana", LOGNAME="ana", SUDO_USER="ana")
    child.expect_exact(PROMPT)
    child.sendline("y")
    child.expect_exact("write_file")
    child.expect_exact(PROMPT)
    second = one_pending(tmp_path)
    # Another shell that claims to be ana's, not under sudo.
    approved = shell(tmp_path, "approve", second["id"], USER="ana", LOGNAME="ana", SUDO_USER="")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert f"approve by {me} through the cli" in approved.stdout, approved.stdout
    child.expect_exact(PROMPT)  # finish
    child.sendline("y")
    child.expect_exact("Run finished:")
    assert finish(child) == 0

    entries = [json.loads(x) for x in (tmp_path / "home" / AUDIT_LOG).read_text().splitlines()]
    assert [(e["channel"], e["by"]) for e in entries[:2]] == [
        ("terminal", f"{me} (sudo from ana)"),
        ("cli", me),
    ]
    shown = shell(tmp_path, "show", second["run_id"])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    text = " ".join(shown.stdout.split())
    assert f"by human (terminal, {me} (sudo from ana), request" in text, text
    assert f"by human (cli, {me}, request {second['id']})" in text, text
    assert "ana," not in text.replace("(sudo from ana)", "")


class Webhook:
    """A local webhook receiver that fails its first delivery."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(body))
                self.send_response(500 if len(hook.bodies) == 1 else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_each_request_is_posted_to_the_webhook_with_single_use_links(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hook = Webhook()
    try:
        child = start(tmp_path, server, "-c", "--wait-for-approval", "--notify", hook.url)
        request = one_pending(tmp_path)
        deadline = time.monotonic() + 30
        while len(hook.bodies) < 2:  # the first delivery failed and was retried
            assert time.monotonic() < deadline, "the webhook was not retried"
            time.sleep(0.1)
    finally:
        hook.close()
    body = hook.bodies[-1]
    assert body == hook.bodies[0]
    assert (body["id"], body["command"], body["args"], body["risk"], body["agent"]) == (
        request["id"],
        "delete_file",
        {"path": "old.txt"},
        "high",
        "Scout",
    )
    assert body["step"] == 1 and body["run_id"] == request["run_id"]
    saved, _ = find(tmp_path / "home", request["id"])
    for action in ("approve", "deny"):
        link = urlparse(body[f"{action}_url"])
        assert link.path == f"/link/{request['id']}/{action}"
        check_link(saved, action, parse_qs(link.query)["token"][0])
    log = (Path(next((tmp_path / "home" / "runs").iterdir())) / "notify.log").read_text()
    assert "attempt 1 of 4 failed (HTTP 500)" in log and "delivered (HTTP 204)" in log
    assert shell(tmp_path, "approve", request["id"]).returncode == 0
    child.expect_exact("Run finished:")
    assert finish(child) == 0


@pytest.mark.sandbox
def test_the_webhooks_secrets_never_reach_the_debug_log(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    hook = Webhook()
    secret_url = (
        hook.url.replace("http://", "http://bot:pa55-word@") + "?key=s3cret-query#s3cret-frag"
    )
    try:
        child = start(
            tmp_path, server, "-c", "--wait-for-approval", "--debug", "--notify", secret_url
        )
        request = one_pending(tmp_path)
        deadline = time.monotonic() + 30
        while len(hook.bodies) < 2:  # the first delivery failed (and httpx logged it)
            assert time.monotonic() < deadline, "the webhook was not retried"
            time.sleep(0.1)
        assert shell(tmp_path, "approve", request["id"]).returncode == 0
        child.expect_exact("Run finished:")
        assert finish(child) == 0
    finally:
        hook.close()
    links = [hook.bodies[-1]["approve_url"], hook.bodies[-1]["deny_url"]]
    tokens = [parse_qs(urlparse(link).query)["token"][0] for link in links]
    [run_dir] = (tmp_path / "home" / "runs").iterdir()
    debug = (run_dir / "debug.log").read_text()
    port = hook.server.server_address[1]
    assert f"POST http://***@127.0.0.1:{port}/***?key=***#***" in debug  # httpx's line
    for secret in ("pa55-word", "s3cret", *tokens):
        for log in ("debug.log", "notify.log"):
            assert secret not in (run_dir / log).read_text(), (secret, log)


def test_answers_piped_on_stdin_answer_the_requests_in_order(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "old.txt").write_text("x")
    server.script(
        "execution",
        execution_reply("delete_file", path="old.txt"),
        execution_reply("write_file", path="new.txt", content="fresh"),
        execution_reply("write_file", path="never.txt", content="no"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "autoagent", "run", *PROFILE],
        cwd=tmp_path,
        env=cli_env(tmp_path, server),
        input="y\ny\nnot this one, thanks\n",  # ends there: the next request stops
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 7, done.stdout + done.stderr  # the end of the answers stops it
    assert not (tmp_path / "ws" / "old.txt").exists()
    assert (tmp_path / "ws" / "new.txt").read_text() == "fresh"
    assert not (tmp_path / "ws" / "never.txt").exists()
    assert "not this one, thanks" in prompts_seen(server)[3]
    assert "Stopped by the human" in done.stdout
