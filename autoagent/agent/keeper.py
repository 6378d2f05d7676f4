"""What the loop keeps on disk as it goes: each event in the journal, the run's state in its
checkpoint, and the model calls made meanwhile; each write timed as its step's journal or
checkpoint phase."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..store.journal import RunJournal
from .agents import ModelCaller
from .events import RunEnded, RunStarted, StepFinished, to_data
from .record import StepRecord
from .state import RunState

log = logging.getLogger(__name__)


class RunKeeper:
    def __init__(self, state: RunState, journal: RunJournal, caller: ModelCaller) -> None:
        self.state = state
        self.journal = journal
        self.caller = caller
        self.timings = caller.timings

    def emit(self, event: Any) -> Any:
        """Journal `event` and give it back, to be yielded."""
        with self.timings.phase("journal"):
            self.journal.record(event.event, **to_data(event))
        return event

    def durable(self, event: Any, *, wait: bool = True) -> Any:
        """Journal the event, then save the checkpoint (synced), before anything goes on
        (`wait=False`: in the background, for a point whose loss is safe).

        The checkpoint holds the same record and is synced right after, so the journal line
        is not synced on its own: a killed process leaves both (the kernel has them); only a
        power cut in the moment between the two can leave neither, and then the step counts
        as cut (its command is never run again)."""
        with self.timings.phase("journal"):
            self.journal.record(event.event, **to_data(event))
        self.record_calls()
        self.save(wait=wait)
        return event

    def save(self, *, wait: bool = True) -> None:
        self.state.updated = time.time()
        with self.timings.phase("checkpoint"):
            self.journal.save_checkpoint(self.state.model_dump(mode="json"), wait=wait)

    def record_calls(self) -> None:
        with self.timings.phase("journal"):
            for call in self.caller.drain():
                self.journal.record("model_call", **asdict(call))

    def step_finished(self, record: StepRecord) -> StepFinished:
        timings = {name: round(seconds, 6) for name, seconds in self.timings.take().items()}
        log.debug("step %d took %s", record.step, timings)
        return self.emit(
            StepFinished(record, self.state.spend.model_copy(), self.caller.budget, timings)
        )

    def started(self, workspace: Path, resumed: bool, notes: list[str]) -> RunStarted:
        state = self.state
        run_dir, root = str(self.journal.run_dir), str(workspace)
        return self.emit(
            RunStarted(state.run_id, run_dir, root, resumed, notes, state.profile, state.config)
        )

    def ended(self, workspace: Path, findings: str | None) -> RunEnded:
        state = self.state
        return self.emit(
            RunEnded(
                state.status,
                state.reason,
                str(self.journal.run_dir),
                str(workspace),
                state.spend.model_copy(),
                state.step,
                state.goal_report,
                state.files,
                cause=state.cause,
                findings=findings,
            )
        )
