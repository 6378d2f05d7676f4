"""A fleet run's activity: the run's own process, watched, on the worker that took it.

The first attempt starts `autoagent run --run-id ID`; a later one (its worker died, or the
run failed) resumes the run from its journal, so nothing done is lost and no command runs
twice. The process gets SIGKILL if the worker dies (PR_SET_PDEATHSIG), as if its machine went,
and SIGINT when the run is cancelled or the worker shuts down: it stops at its next safe
point, as at Ctrl-C. Heartbeats carry where the run stands, for `fleet list`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..base.errors import JournalError
from ..base.files import runs_dir
from ..base.status import RunStatus, StepStatus
from ..human.requests import RequestStore, unanswered
from ..store.journal import RunJournal, is_live
from ..store.locks import try_lock
from ..store.runs import RunView, read_run
from .spec import Job
from .workflow import REFUSED, RUN_AGENT, Outcome

STOP_WAIT = 60.0  # seconds a run has to stop cleanly once asked, before it is killed
BAD_COMMAND_LINE = 2  # the CLI's exit code when it refuses its arguments
# Run in the run's process before the CLI: die with the worker, whichever way it goes.
ORPHAN_GUARD = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)  # the worker died already\n"
    "sys.argv = ['autoagent', *sys.argv[2:]]\n"
    "from autoagent.cli.app import main\n"
    "main()\n"
)


@dataclass(frozen=True)
class WorkerPlace:
    """What a worker's runs share: the data folder, where workspaces go, the memory server
    and the fleet-wide cap on runs at once (0: none), from the worker's own settings."""

    home: Path
    workspaces: Path
    memory_url: str | None
    max_runs: int
    beat: float = 1.0  # seconds between heartbeats (AUTOAGENT_FLEET_HEARTBEAT_TIMEOUT >= 5)

    @property
    def logs(self) -> Path:
        return self.home / "fleet" / "logs"


def progress(view: RunView | None, state: str = "running") -> dict[str, Any]:
    """A heartbeat's details: the run as its folder says now."""
    if view is None or not view.readable:
        return {"state": state, "step": 0, "cost": 0.0}
    details: dict[str, Any] = {"state": state, "step": view.steps, "cost": view.cost}
    if view.current is not None and view.current.status is StepStatus.AWAITING:
        store = RequestStore(view.folder)
        waiting = [r for r in store.requests() if unanswered(store, r)]
        if waiting:
            first = waiting[0]
            details.update(state="waiting", request=first.id, command=first.command)
    return details


def command_line(job: Job, place: WorkerPlace, *, resumed_in: str | None = None) -> list[str]:
    """The CLI's arguments for this attempt: unattended, anything for a human held. A new run
    gets its workspace from the job or this worker; a resumed one (`resumed_in`) keeps the one
    it has. Every attempt names it: a worker's own AUTOAGENT_WORKSPACE must not move it."""
    workspace = resumed_in or job.workspace or str(place.workspaces / job.run_id)
    common = ["--workspace", workspace, "-c", "--wait-for-approval", "--output", "json"]
    if place.memory_url:
        common += ["--memory-url", place.memory_url]
    if job.budget is not None:
        common += ["--budget", str(job.budget)]
    if job.max_steps is not None:
        common += ["--max-steps", str(job.max_steps)]
    if job.model is not None:
        common += ["--model", job.model]
    if resumed_in is not None:
        return ["resume", job.run_id, *common]
    goals = [arg for goal in job.goals for arg in ("--goal", goal)]
    profile = ["--name", job.name, "--role", job.role, *goals]
    return ["run", "--run-id", job.run_id, *profile, *common]


class RunActivity:
    def __init__(self, place: WorkerPlace) -> None:
        self.place = place

    @activity.defn(name=RUN_AGENT)
    async def run_agent(self, job: Job) -> Outcome:
        try:
            return await self._attempt(job)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.worker_shutdown:
                # Not the run's end: another worker resumes it.
                raise ApplicationError("Its worker shut down.", type="WorkerShutdown") from None
            raise

    async def _attempt(self, job: Job) -> Outcome:
        folder = runs_dir(self.place.home) / job.run_id
        async with self._slot():
            await self._wait_for_earlier_attempt(folder)
            view = read_run(folder) if folder.is_dir() else None
            if view is not None and view.status in (RunStatus.FINISHED, RunStatus.STOPPED):
                return _outcome(view)  # it ended before its worker could say so
            workspace = _saved_workspace(folder) if view is not None else None
            code, tail = await self._watch(job, folder=folder, resumed_in=workspace)
        view = read_run(folder) if folder.is_dir() else None
        if code == BAD_COMMAND_LINE:
            raise ApplicationError(_last_words(tail, code), type=REFUSED, non_retryable=True)
        if view is not None and view.status in (RunStatus.FINISHED, RunStatus.STOPPED):
            return _outcome(view)
        reason = view.reason if view is not None and view.reason else _last_words(tail, code)
        attempt = activity.info().attempt
        raise ApplicationError(f"Attempt {attempt} failed: {reason}", type="RunFailed")

    async def _wait_for_earlier_attempt(self, folder: Path) -> None:
        """An attempt given up on (its worker cut off, not dead) may still hold the run: wait
        for its process to stop rather than fail on the run's lock."""
        while is_live(folder):
            activity.heartbeat({"state": "queued", "why": "an earlier attempt is still stopping"})
            await asyncio.sleep(self.place.beat)

    async def _watch(
        self, job: Job, *, folder: Path, resumed_in: str | None
    ) -> tuple[int, deque[str]]:
        """Run the attempt's process to its end, heartbeating; its exit code and last lines.
        `resumed_in`: the workspace of a run that exists, as its checkpoint says."""
        self.place.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.place.logs / f"{job.run_id}.log"
        args = command_line(job, self.place, resumed_in=resumed_in)
        with log_path.open("ab") as log:
            log.write(f"--- attempt {activity.info().attempt}: {' '.join(args[:2])}\n".encode())
            log.flush()
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",  # not the worker's folder first on sys.path, where a run could write
                "-c",
                ORPHAN_GUARD,
                str(os.getpid()),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C at the worker's terminal is the worker's
            )
            tail: deque[str] = deque(maxlen=20)
            reader = asyncio.create_task(_keep_tail(child, tail, log))
            try:
                while child.returncode is None:
                    state = progress(read_run(folder) if folder.is_dir() else None)
                    activity.heartbeat(state)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(child.wait()), self.place.beat)
            except asyncio.CancelledError:
                await _stop(child)
                await reader
                raise
            await reader
        return child.returncode, tail

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the fleet's `max_runs` places, held while the run's process lives; a lock
        file each in the shared data folder, so the cap holds across workers."""
        if self.place.max_runs <= 0:
            yield
            return
        slots = self.place.home / "fleet" / "slots"
        slots.mkdir(parents=True, exist_ok=True)
        while True:
            for number in range(self.place.max_runs):
                fd = try_lock(slots / f"{number}.lock")
                if fd is not None:
                    try:
                        yield
                    finally:
                        os.close(fd)
                    return
            activity.heartbeat({"state": "queued", "why": "the fleet is at its cap of runs"})
            await asyncio.sleep(self.place.beat)


async def _keep_tail(child: asyncio.subprocess.Process, tail: deque[str], log: Any) -> None:
    """The process's stderr, into its log, its last lines kept for a failure's reason."""
    assert child.stderr is not None
    async for line in child.stderr:
        log.write(line)
        log.flush()
        text = line.decode("utf-8", "replace").strip()
        if text:
            tail.append(text)


async def _stop(child: asyncio.subprocess.Process) -> None:
    """Ask the run to stop, as Ctrl-C does; kill it if it has not within STOP_WAIT."""
    if child.returncode is not None:
        return
    child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_WAIT
    while child.returncode is None and time.monotonic() < deadline:
        activity.heartbeat({"state": "stopping"})  # the stop is waited for, not timed out
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child.wait()), 1.0)
    if child.returncode is None:
        child.kill()
        await child.wait()


def _saved_workspace(folder: Path) -> str:
    """The workspace a run's checkpoint names (where its files are), for its resume."""
    try:
        return str(RunJournal(folder).load_checkpoint()["config"]["workspace"])
    except (JournalError, KeyError, TypeError) as exc:
        raise ApplicationError(f"The run cannot be resumed: {exc}", type=REFUSED) from exc


def _outcome(view: RunView) -> Outcome:
    assert view.status is not None
    return Outcome(status=view.status.value, reason=view.reason, steps=view.steps, cost=view.cost)


def _last_words(tail: deque[str], code: int) -> str:
    """What the process last said, for a failure's reason: its last error, whole (the CLI
    wraps it over lines), else its last line; and how it ended."""
    lines = list(tail)
    starts = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    said = " ".join(lines[starts[-1] :]) if starts else (lines[-1] if lines else "")
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return f"{said} ({how})" if said else how
