"""The fleet as its users see it: submit runs, list them, one's status, cancel one.

Everything comes from Temporal's own state: a workflow per run, its pending activity (which
worker holds it, its attempt, the last heartbeat's step, spend and request) and its result.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TemporalError,
    WorkflowAlreadyStartedError,
)
from temporalio.service import RPCError

from ..base.errors import AutoAgentError
from ..base.settings import Settings
from .spec import Job, new_job_id
from .workflow import WORKFLOW, AgentRun, Outcome


class FleetError(AutoAgentError):
    """The fleet's server cannot be reached, or a run is not there."""


HEARTBEAT_STATES = ("running", "waiting", "queued", "stopping")


@dataclass
class RunState:
    """One fleet run, as `fleet list` and `fleet status` show it."""

    id: str
    name: str
    status: str  # queued, running, waiting, stopping, finished, stopped, failed, cancelled
    step: int = 0
    spend: float = 0.0
    worker: str = ""
    attempt: int = 0
    reason: str = ""  # why it stopped or failed, or what it was last told
    request: dict[str, str] = field(default_factory=dict)  # what it waits for a human on

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def refused(exc: RPCError, settings: Settings) -> FleetError:
    """A call the Temporal server refused (a wrong namespace, a denied key, gone away)."""
    return FleetError(
        f"The Temporal server at {settings.temporal_address} refused the call: {exc.message}"
    )


async def connect(settings: Settings) -> Client:
    tls = settings.temporal_tls or bool(settings.temporal_api_key)
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            api_key=settings.temporal_api_key,
            tls=tls,
        )
    except RuntimeError as exc:
        raise FleetError(
            f"No Temporal server answers at {settings.temporal_address}: start one with "
            "`autoagent fleet server`, or set AUTOAGENT_TEMPORAL_ADDRESS."
        ) from exc


async def submit(
    client: Client, settings: Settings, jobs: Iterable[Job], on_submitted: Callable[[str], None]
) -> None:
    """Start a workflow per job; each id (the run's) is told to `on_submitted` once it is in,
    so that a failure midway leaves no submitted run unnamed."""
    for job in jobs:
        for _ in range(3):  # a run id drawn twice is drawn again
            try:
                await client.start_workflow(
                    AgentRun.run,
                    job,
                    id=job.run_id,
                    task_queue=settings.fleet_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    memo={"name": job.name},
                )
                break
            except WorkflowAlreadyStartedError:
                job = replace(job, run_id=new_job_id(job.name))
        on_submitted(job.run_id)


async def list_runs(client: Client) -> list[RunState]:
    """Every fleet run, newest first."""
    handles = []
    async for execution in client.list_workflows(f'WorkflowType="{WORKFLOW}"'):
        handles.append(_handle(client, execution.id, execution.run_id))
    return list(await asyncio.gather(*(state_of(client, handle) for handle in handles)))


async def status(client: Client, run_id: str) -> RunState:
    return await state_of(client, _handle(client, run_id))


def _handle(
    client: Client, run_id: str, temporal_run: str | None = None
) -> WorkflowHandle[Any, Outcome]:
    return client.get_workflow_handle(run_id, run_id=temporal_run, result_type=Outcome)


async def cancel(client: Client, run_id: str) -> None:
    """Ask the run to stop at its next safe point; its worker stops it as Ctrl-C does."""
    try:
        await client.get_workflow_handle(run_id).cancel()
    except RPCError as exc:
        raise FleetError(f"No fleet run {run_id!r} to cancel: {exc.message}") from exc


async def state_of(client: Client, handle: WorkflowHandle[Any, Any]) -> RunState:
    try:
        description = await handle.describe()
    except RPCError as exc:
        raise FleetError(f"No fleet run {handle.id!r}: `autoagent fleet list` lists them.") from exc
    memo = await description.memo()
    state = RunState(id=handle.id, name=str(memo.get("name", "?")), status="queued")
    match description.status:
        case WorkflowExecutionStatus.RUNNING:
            pending = description.raw_description.pending_activities
            if pending:
                await _read_activity(client, pending[0], state)
        case WorkflowExecutionStatus.COMPLETED:
            outcome: Outcome = await handle.result()
            state.status, state.reason = outcome.status, outcome.reason
            state.step, state.spend = outcome.steps, outcome.cost
        case WorkflowExecutionStatus.CANCELED:
            state.status = "cancelled"
        case _:
            state.status = "failed"
            state.reason = await _failure(handle, description.status)
    return state


async def _read_activity(client: Client, pending: Any, state: RunState) -> None:
    state.attempt = pending.attempt
    state.worker = pending.last_worker_identity
    if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED:
        state.status = "stopping"
    elif pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
        state.status = "running"
    if pending.HasField("last_failure"):
        state.reason = pending.last_failure.message
    if pending.heartbeat_details.payloads:
        decoded = await client.data_converter.decode(pending.heartbeat_details.payloads)
        details = decoded[-1]
        if isinstance(details, dict):
            _read_heartbeat(details, state)


def _read_heartbeat(details: dict[str, Any], state: RunState) -> None:
    """What a worker last said of the run; anything malformed in it is left out."""
    said = details.get("state")
    if state.status == "running" and said in HEARTBEAT_STATES:
        state.status = said
    with contextlib.suppress(TypeError, ValueError):
        state.step = int(details.get("step", state.step))
    with contextlib.suppress(TypeError, ValueError):
        state.spend = float(details.get("cost", state.spend))
    if "request" in details:
        state.request = {"id": str(details["request"]), "command": str(details.get("command"))}


async def _failure(handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus | None) -> str:
    """Why a run failed: its last attempt's own words (the activity's error), else how."""
    try:
        await handle.result()
    except WorkflowFailureError as exc:
        cause: BaseException | None = exc.cause
        while isinstance(cause, ActivityError):  # "activity failed", around the real error
            cause = cause.__cause__
        return cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
    except TemporalError as exc:
        return str(exc)
    return status.name.lower().replace("_", " ") if status else "failed"  # timed out, terminated
