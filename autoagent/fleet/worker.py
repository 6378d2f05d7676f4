"""A fleet worker: polls the fleet's task queue and runs each run it takes as its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from temporalio.worker import Worker

from ..base.settings import Settings
from .activity import RunActivity, WorkerPlace
from .client import connect
from .workflow import AgentRun

SERVER_FILE = "server.json"  # what `fleet server` serves, in AUTOAGENT_HOME/fleet


def shared_memory_url(home: Path) -> str | None:
    """The memory server `fleet server` started for this data folder, if it did."""
    try:
        served = json.loads((home / "fleet" / SERVER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = served.get("memory_url") if isinstance(served, dict) else None
    return url if isinstance(url, str) and url.startswith("http") else None


def place_of(settings: Settings) -> WorkerPlace:
    home = settings.home.expanduser().resolve()
    return WorkerPlace(
        home=home,
        workspaces=settings.fleet_workspaces.expanduser().resolve(),
        memory_url=settings.memory_url or shared_memory_url(home),
        max_runs=settings.fleet_max_runs,
    )


async def serve(settings: Settings, concurrency: int, on_ready: Callable[[str], None]) -> None:
    """Take runs until SIGINT or SIGTERM; then stop the runs under way, which another worker
    resumes. `on_ready` is told the worker's identity once it polls."""
    client = await connect(settings)
    place = place_of(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    identity = f"{socket.gethostname()}:{os.getpid()}"
    worker = Worker(
        client,
        task_queue=settings.fleet_queue,
        workflows=[AgentRun],
        activities=[RunActivity(place).run_agent],
        max_concurrent_activities=concurrency,
        # Heartbeats reach the server at least this often: `fleet list` is this fresh.
        max_heartbeat_throttle_interval=timedelta(seconds=place.beat),
        default_heartbeat_throttle_interval=timedelta(seconds=place.beat),
        graceful_shutdown_timeout=timedelta(seconds=0),
        identity=identity,
    )
    async with worker:
        on_ready(identity)
        await stop.wait()
