"""Limits that hold through the CLI: what reaches the screen, the reply format, the memory
store, the budget."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pexpect
import pytest

from autoagent.model.testing import FakeOpenAIServer, Fault, execution_reply

from .cli_helpers import PROFILE, checkpoints, cli_env, finish, spawn

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


def test_the_console_answers_forty_clients_at_once_without_a_retry(tmp_path: Path) -> None:
    served = subprocess.Popen(
        [sys.executable, "-m", "autoagent", "serve", "--port", "0"],
        cwd=tmp_path,
        env=cli_env(tmp_path, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert served.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", served.stdout.readline())
        assert match
        port = int(match.group(1))
        start = threading.Barrier(40)
        took: list[float] = []

        def client() -> None:
            start.wait()
            began = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"GET /static/console.css HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                assert conn.recv(64).startswith(b"HTTP/1.0")
            took.append(time.perf_counter() - began)

        clients = [threading.Thread(target=client) for _ in range(40)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(30)
        assert len(took) == 40
        # A connection the listener had no room for is tried again only after a second.
        assert max(took) < 0.9, sorted(took)
    finally:
        served.terminate()
        served.wait(10)


def test_one_http_500_on_the_first_call_keeps_the_reply_format(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        Fault(500),
        execution_reply("write_file", path="a.txt", content="x"),
        execution_reply("finish", reason="Done."),
    )
    child = spawn(tmp_path, server, "run", *PROFILE, "-c")
    child.expect_exact("Run finished:")
    assert finish(child) == 0
    assert (tmp_path / "ws" / "a.txt").exists()
    formats = [(r.get("response_format") or {}).get("type") for r in server.requests]
    assert set(formats) - {None} == {"json_schema"}, formats


def test_the_budget_stops_the_run_before_a_call_that_would_pass_it(
    tmp_path: Path, server: FakeOpenAIServer
) -> None:
    server.script(
        "execution",
        *(execution_reply("write_file", path=f"f{i}.txt", content="x") for i in range(9)),
    )
    prices = json.dumps({"gpt-4o-mini": [400, 400]})  # a call costs about $0.2 to $0.4
    child = spawn(tmp_path, server, "run", *PROFILE, "-c", "--budget", "1", AUTOAGENT_PRICES=prices)
    child.expect_exact("The budget of $1.00 is spent: the next model call (about $")
    assert finish(child) == 5  # the budget's exit code
    [state] = checkpoints(tmp_path)
    assert state["status"] == "stopped"
    assert 0.5 < state["spend"]["cost"] <= 1.0, state["spend"]


def store_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "autoagent.lock"
    }


def test_memory_list_of_a_damaged_store_says_so_and_writes_nothing(tmp_path: Path) -> None:
    from autoagent.store.embeddings import WordEmbedder
    from autoagent.store.memory import Memory

    store = tmp_path / "home" / "memory"
    memory = Memory.open_local(store, "Scout", WordEmbedder())
    memory.add("Task: facts\nCommand: write_file fact.txt", "run-step-1", run_id="run", step=1)
    memory.close()
    sqlite = store / "chroma.sqlite3"
    data = bytearray(sqlite.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4096] = b"\xff" * 4096  # a page or more damaged
    sqlite.write_bytes(bytes(data))
    before = store_bytes(store)

    listed = subprocess.run(
        [sys.executable, "-m", "autoagent", "memory", "list", "--agent", "Scout"],
        cwd=tmp_path,
        env=cli_env(tmp_path, None, COLUMNS="300"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert store_bytes(store) == before
    said = listed.stdout + listed.stderr
    assert listed.returncode == 1, said
    assert said.startswith(f"Error: The memory store at {store} cannot be read, it is damaged")
    assert said.rstrip().endswith("it was left as it is.") and "Traceback" not in said, said
