"""What a resumed run does first: settle the step the last process left in flight, from its
record and the journal, so that no command runs twice and none is lost without a word."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import ValidationError

from ..base.status import StepStatus
from ..store.journal import RunJournal
from ..tools.cgroups import end_leftovers
from ..tools.commands.base import Command
from .events import CommandDone, from_data
from .record import StepRecord
from .state import RunState

log = logging.getLogger(__name__)


class Recovery:
    def __init__(
        self,
        state: RunState,
        journal: RunJournal,
        available: Callable[[str], Command | None],
        keep: Callable[[StepRecord], None],
    ) -> None:
        self.state = state
        self.journal = journal
        self.available = available  # a command by name, unless it is gone
        self.keep = keep  # a finished step into the recent window

    def settle(self) -> tuple[list[StepRecord], list[str]]:
        """Settle the step that was in flight when the last process ended: a result found in
        the journal is restored; a command with no recorded result is noted for the model.

        First, whatever the last process left running (killed with kill -9) is ended, so that
        a command cut short cannot go on beside the resumed run."""
        state = self.state
        ended = end_leftovers()
        if ended:
            log.warning("ended %d processes an earlier agent process left running", ended)
        current = state.unfinished_step()
        if current is None:
            return [], []
        if current.status is StepStatus.AWAITING or self.asks_again(current):
            return [], []
        if current.status is StepStatus.RAN:
            note = (
                f"Step {current.step}'s command {current.command} had returned before the run "
                "was interrupted; its saved result is used to complete the step."
            )
            return [current], [note]
        found = self.result_in_journal(current)
        if found is not None:
            state.current = found
            state.commands_run += 1
            note = (
                f"Step {found.step}'s command {found.command} had returned before the run was "
                "interrupted; its result, recorded in the run's journal, is restored."
            )
            return [found], [note]
        cut = current.advance(StepStatus.CUT)
        state.current = None
        state.commands_run += 1
        state.notices = [*state.notices, cut.cut_note()]
        self.keep(cut)
        return [cut], []

    def asks_again(self, record: StepRecord) -> bool:
        """A question to the human that was waiting when the run stopped is asked again, on
        the same request: asking has no effect to lose or repeat."""
        if record.status is not StepStatus.RUNNING or self.result_in_journal(record):
            return False
        command = self.available(record.command)
        return command is not None and command.asks_human

    def result_in_journal(self, record: StepRecord) -> StepRecord | None:
        for entry in reversed(self.journal.events()):
            if entry.get("event") != "CommandDone":
                continue
            try:
                event = from_data("CommandDone", entry)
            except ValidationError:  # a damaged line: whether it held this result is unknown
                log.warning("an unreadable CommandDone in the journal of %s", self.journal.run_dir)
                continue
            if isinstance(event, CommandDone) and event.record.step == record.step:
                return event.record
            if isinstance(event, CommandDone) and event.record.step < record.step:
                return None
        return None
