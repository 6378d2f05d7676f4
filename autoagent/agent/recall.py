"""The run's side of long-term memory: what a step recalls, what it leaves, and the bookkeeping
that keeps a crash from losing a memory on its way to the store."""

from __future__ import annotations

from ..base.settings import Settings
from ..base.text import trim_middle
from ..store.memory import Memory
from .record import StepRecord
from .state import RunState
from .timing import Timings

UNWRITTEN_KEPT = 20  # steps out of the window whose memory may still be on its way
# A memory in the prompt is a reminder of an earlier step (its task, command and how the
# result began); kept short, the prompt stays flat as the run goes on.
MEMORY_CHARS_IN_PROMPT = 300
PREPARED_TASKS = 3  # the next tasks whose recall is embedded ahead


class Recall:
    """Memory as the loop uses it; with no memory (`None`), it recalls and keeps nothing."""

    def __init__(
        self, memory: Memory | None, state: RunState, settings: Settings, timings: Timings
    ) -> None:
        self.memory = memory
        self.state = state
        self.settings = settings
        self.timings = timings

    def prepare(self) -> None:
        """Embed the queries of the next few tasks now, on the memory's own thread, so that
        their recall needs no embedding: a task is embedded once, while it waits near the top
        of the list. Not those further down: they may never be done, and a transformer run
        costs tens of milliseconds (every new task's was, two a step when two were added)."""
        if self.memory is not None and self.settings.memory_recall:
            self.memory.prepare_queries([t.text for t in self.state.tasks.open[:PREPARED_TASKS]])

    def recall(self, query: str) -> list[str]:
        """The memories nearest to `query`, but for the steps still in the prompt's window."""
        if self.memory is None or self.settings.memory_recall == 0:
            return []
        in_window = {(self.state.run_id, s.step) for s in self.state.recent}
        in_window |= {(self.state.run_id, step) for step in self.state.undone}
        with self.timings.phase("memory_query"):
            found = self.memory.recall(query, self.settings.memory_recall + len(in_window))
        texts = [
            m.text
            for m in found
            if (m.metadata.get("run_id"), m.metadata.get("step")) not in in_window
        ]
        return [
            trim_middle(t, MEMORY_CHARS_IN_PROMPT) for t in texts[: self.settings.memory_recall]
        ]

    def forget(self, steps: list[int]) -> None:
        """Delete the memories of undone steps (recall skips them even if this fails)."""
        if self.memory is not None:
            self.memory.forget([f"{self.state.run_id}-step-{step}" for step in steps])

    def remember(self, record: StepRecord) -> None:
        """Write a step that ran to long-term memory, under the step's own id."""
        text = record.memory_text()
        if text is None or self.memory is None:
            return
        with self.timings.phase("memory_write"):
            self.memory.add(
                text, memory_id=record.memory_id, run_id=record.run_id, step=record.step
            )

    def keep(self, record: StepRecord, window: int) -> None:
        """Keep a finished step in the recent window. A step leaving it is no longer checked
        on resume, so while its memory is not in the store (still being written, or the store
        still loading) it is kept among the unwritten; past UNWRITTEN_KEPT, the loop waits."""
        state = self.state
        left = state.add_step(record, window)
        if self.memory is None:
            return
        if left is not None and left.memory_text():
            state.unwritten = [*state.unwritten, left]
        state.unwritten = [r for r in state.unwritten if not self.memory.written(r.memory_id)]
        if len(state.unwritten) > UNWRITTEN_KEPT:
            with self.timings.phase("memory_write"):
                self.memory.flush(through=state.unwritten[0].memory_id)
            state.unwritten = state.unwritten[1:]

    def restore(self) -> None:
        """Write to memory the kept steps that a crash kept from it (each has a fixed id).
        The step in flight, if any, is written when it is completed."""
        if self.memory is None:
            return
        state = self.state
        records = [r for r in [*state.unwritten, *state.recent] if r.memory_text()]
        missing = set(self.memory.missing([r.memory_id for r in records]))
        for record in records:
            if record.memory_id in missing:
                self.remember(record)
        state.unwritten = [r for r in state.unwritten if r.memory_id in missing]
