"""A fleet's throughput: N runs of S steps with 1, 2 and 4 workers (concurrency 2 each), against
the scripted server with a model latency a call, on the real Temporal dev server.

Runs finished per minute, and the CPU per step of every fleet process (server, workers and the
runs they start: all are this process's children, so their CPU is counted when they end),
beside one plain `autoagent run` of S steps. Since the model's latency dominates, more workers
should finish more runs a minute, until the machine's cores are full.

    python -m bench.fleet [--runs 40] [--steps 10] [--latency 0.3] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autoagent.model.testing import FakeOpenAIServer, Slow, execution_reply

from .whole import environment

AUTOAGENT = [sys.executable, "-m", "autoagent"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scripted(steps: int, latency: float) -> FakeOpenAIServer:
    """Every call takes `latency`; each run appends `steps - 1` lines, then finishes."""
    server = FakeOpenAIServer()
    counts: dict[str, int] = {}

    def execution(request: dict[str, Any]) -> Slow:
        who = request["messages"][0]["content"].split(",", 1)[0]
        counts[who] = counts.get(who, 0) + 1
        if counts[who] < steps:
            reply = execution_reply("append_to_file", path="log.txt", content=f"{counts[who]}\n")
        else:
            reply = execution_reply("finish", reason="done")
        return Slow(reply, latency)

    server.respond("execution", execution)
    server.respond("task-creation", lambda request: Slow(json.dumps({"tasks": []}), latency))
    return server.start()


def env_for(folder: Path, server: FakeOpenAIServer, port: int) -> dict[str, str]:
    return environment(
        AUTOAGENT_HOME=str(folder / "home"),
        AUTOAGENT_FLEET_WORKSPACES=str(folder / "workspaces"),
        AUTOAGENT_TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="bench",
    )


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*AUTOAGENT, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return done.stdout


def fleet_round(runs: int, steps: int, latency: float, workers: int) -> dict[str, float]:
    """Submit `runs` runs to a new fleet with `workers` workers; time them to the last."""
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folder = Path(tmp)
        server = scripted(steps, latency)
        port = free_port()
        env = env_for(folder, server, port)
        memory = str(free_port())
        before = children_cpu()
        fleet = [
            subprocess.Popen(
                [*AUTOAGENT, "fleet", "server", "--port", str(port), "--memory-port", memory],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        while not (folder / "home" / "fleet" / "server.json").exists():
            time.sleep(0.2)
        agents = [{"name": f"A{n}", "role": "r", "goals": ["g"]} for n in range(runs)]
        (folder / "fleet.yaml").write_text(json.dumps({"agents": agents}))
        ids = cli(env, "fleet", "submit", str(folder / "fleet.yaml")).split()
        start = time.monotonic()
        fleet += [
            subprocess.Popen(
                [*AUTOAGENT, "fleet", "worker", "--concurrency", "2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        polling = 0.0  # the bench's own `fleet list` calls, not the fleet's CPU
        while True:
            polled = children_cpu()
            listed = cli(env, "fleet", "list", "--json").splitlines()
            polling += children_cpu() - polled
            states = [json.loads(line) for line in listed if line]
            ended = [s for s in states if s["status"] in ("finished", "failed", "cancelled")]
            if len(ended) == len(ids):
                break
            time.sleep(1.0)
        wall = time.monotonic() - start
        finished = sum(s["status"] == "finished" for s in states)
        for process in reversed(fleet):
            process.send_signal(signal.SIGINT)
            process.wait(120)
        cpu = children_cpu() - before - polling
        server.stop()
    return {
        "workers": workers,
        "runs": runs,
        "finished": finished,
        "wall_s": round(wall, 1),
        "runs_per_minute": round(finished / wall * 60, 2),
        "cpu_per_step_ms": round(cpu / (runs * steps) * 1000, 1),
    }


def single_run(steps: int, latency: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folder = Path(tmp)
        server = scripted(steps, latency)
        env = env_for(folder, server, free_port())
        env["AUTOAGENT_WORKSPACE"] = str(folder / "ws")
        before = children_cpu()
        start = time.monotonic()
        subprocess.run(
            [*AUTOAGENT, "run", "--name", "A0", "--role", "r", "--goal", "g", "-c"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=600,
        )
        wall = time.monotonic() - start
        cpu = children_cpu() - before
        server.stop()
    return {"wall_s": round(wall, 1), "cpu_per_step_ms": round(cpu / steps * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    print(json.dumps({"load_before": os.getloadavg(), "cores": os.cpu_count()}))
    print(json.dumps({"single_run": single_run(args.steps, args.latency)}))
    rounds = []
    for workers in (int(n) for n in args.workers.split(",")):
        rounds.append(fleet_round(args.runs, args.steps, args.latency, workers))
        print(json.dumps(rounds[-1]), flush=True)
    if len(rounds) > 1:
        gain = rounds[-1]["runs_per_minute"] / max(rounds[0]["runs_per_minute"], 1e-9)
        print(json.dumps({"gain": round(gain, 2), "load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
