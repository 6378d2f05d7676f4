"""The workflow of one fleet run: its one activity, the run's process, retried from its journal.

Temporal replays this code, so it imports only what its sandbox allows: the job is carried as
a dataclass, and the activity is called by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from .spec import Job

WORKFLOW = "AutoagentRun"
RUN_AGENT = "run_agent"
REFUSED = "RunRefused"  # a run that cannot start as given: trying again changes nothing


@dataclass
class Outcome:
    """How a fleet run ended: its status and reason as its checkpoint says."""

    status: str
    reason: str
    steps: int
    cost: float


@workflow.defn(name=WORKFLOW)
class AgentRun:
    @workflow.run
    async def run(self, job: Job) -> Outcome:
        # A worker that dies stops heartbeating: the run is given to another after the
        # timeout, which resumes it from its journal. Cancelling waits for the run to stop.
        return await workflow.execute_activity(
            RUN_AGENT,
            job,
            result_type=Outcome,
            start_to_close_timeout=timedelta(days=365),
            heartbeat_timeout=timedelta(seconds=job.heartbeat_timeout),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(seconds=30),
                maximum_attempts=job.attempts,
                non_retryable_error_types=[REFUSED],
            ),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
