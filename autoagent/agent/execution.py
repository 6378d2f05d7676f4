"""Running a step's command (the workspace captured around it, its hooks, the human's undo), and
the ways a run ends from inside the loop: a command's failure is an observation for the model
and the run goes on; a harness's (the input ended, the workspace is gone) or a limit stops it,
saying why."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from typing import Any

from ..base.errors import CommandError, InputEnded, SnapshotError, WorkspaceGone
from ..base.settings import Settings
from ..base.status import StopCause
from ..human.authorize import Proposal
from ..human.hooks import Hooks
from ..tools.commands.base import Command, CommandContext
from .changes import WorkspaceChanges
from .events import CaptureFailed, CommandDone, Event
from .keeper import RunKeeper
from .recall import Recall
from .record import StepRecord, StepResult, StepStatus
from .state import RunState
from .undo import undo_at_prompt

log = logging.getLogger(__name__)


class RunOver(Exception):
    """Raised inside the loop to end the run, saying why."""

    def __init__(self, cause: StopCause, reason: str) -> None:
        super().__init__(reason)
        self.cause = cause
        self.reason = reason


def run_command(command: Command, context: CommandContext, args: dict[str, Any]) -> StepResult:
    """The command's result; InputEnded and WorkspaceGone go up (the caller stops the run)."""
    try:
        return StepResult(output=command(context, args), ok=True)
    except (InputEnded, WorkspaceGone):
        raise
    except CommandError as exc:
        return StepResult(output=f"Error: {exc}", ok=False, error=repr(exc))
    except Exception as exc:  # a command's own bug: logged in full, and the run goes on
        log.exception("command %s failed unexpectedly", command.name)
        return StepResult(
            output=f"Error: {command.name} failed ({type(exc).__name__}: {exc}).",
            ok=False,
            error=repr(exc),
        )


def without_workspace(gone: WorkspaceGone, run_id: str) -> RunOver:
    """The stop of a run whose workspace was removed; it goes on with `resume`."""
    return RunOver(
        StopCause.WORKSPACE_GONE,
        f"{gone}; put the folder back and go on with `autoagent resume {run_id}` "
        "(an empty one is made if it is still missing).",
    )


def check_limits(state: RunState, settings: Settings, commands_at_start: int) -> None:
    """Raise RunOver when the run reached its step limit or, continuous, its command limit
    (counted from `commands_at_start`, the commands run when this process began)."""
    if state.step >= settings.max_steps:
        raise RunOver(
            StopCause.MAX_STEPS,
            f"Reached the limit of {settings.max_steps} steps (--max-steps).",
        )
    limit = settings.continuous_limit
    ran = state.commands_run - commands_at_start
    if settings.continuous and limit is not None and ran >= limit:
        raise RunOver(
            StopCause.CONTINUOUS_LIMIT,
            f"Ran {limit} commands, the continuous limit (--continuous-limit).",
        )


class CommandRunner:
    """The command side of a step: the workspace captured before and after a command that can
    change it, the command itself, its PostToolUse hooks, and the human's 'u' (the last
    step's command undone)."""

    def __init__(
        self,
        state: RunState,
        context: CommandContext,
        keeper: RunKeeper,
        recall: Recall,
        changes: WorkspaceChanges,
        hooks: Hooks | None,
    ) -> None:
        self.state = state
        self.context = context
        self.keeper = keeper
        self.recall = recall
        self.changes = changes
        self.hooks = hooks  # PostToolUse; the gate runs PreToolUse
        self.timings = keeper.caller.timings

    def capture_before(self, step: int) -> Iterator[Event]:
        """Capture the workspace before a command that can change it; a failure is said."""
        with self.timings.phase("capture"):
            problem = self.changes.before(step)
        if problem is not None:
            yield self.keeper.emit(CaptureFailed(step, problem))

    def run(self, record: StepRecord, command: Command) -> Generator[Event, None, StepRecord]:
        """Run a started step's command; the step with its result and workspace changes, on
        the disk the moment it returned (a step number is never used twice)."""
        state = self.state
        self.context.step = record.step
        captured = command.changes_things
        try:
            self.context.workspace.check_present()  # e.g. removed while the human was asked
            if captured:
                yield from self.capture_before(record.step)
            with self.timings.phase("command"):
                result = run_command(command, self.context, record.proposal.args)
        except InputEnded as exc:  # nothing was done: the step is not pending
            state.current = None
            raise RunOver(StopCause.INPUT_ENDED, str(exc)) from exc
        except WorkspaceGone as exc:  # the same: a command finds it gone before doing anything
            state.current = None
            raise without_workspace(exc, state.run_id) from exc
        state.commands_run += 1
        record = record.advance(StepStatus.RAN, result=result)
        if captured:
            with self.timings.phase("capture"):
                changes, more, problem = self.changes.after(record.step)
            update = {"changes": changes, "changes_more": more, "changes_problem": problem}
            record = record.model_copy(update=update)
        state.current = record
        yield self.keeper.durable(CommandDone(record))
        return record

    def finish(self, record: StepRecord, command: Command) -> str:
        """Run the command that ends the run; what it says."""
        self.context.step = record.step
        return run_command(command, self.context, record.proposal.args).output

    def after(self, record: StepRecord, command: Command) -> None:
        """The PostToolUse hooks of a command that ran; what they say goes to the agent."""
        if self.hooks is None or record.result is None:
            return
        hooked = Proposal(record.step, command.name, record.proposal.args, command.risk)
        said = self.hooks.after(hooked, record.result.output, record.result.ok)
        self.state.notices = [*self.state.notices, *said]

    def undo(self, step: int, record: StepRecord) -> Iterator[Event]:
        """The human's 'u': step `step`'s command undone before `record`'s would run."""
        state = self.state
        try:
            rewound, undone = undo_at_prompt(
                self.keeper.journal, state, self.changes.snapshots, step, record.command
            )
        except SnapshotError as exc:
            state.notices = [
                *state.notices,
                f"The human asked to undo step {step}, but it could not be: {exc} Your "
                f"proposed {record.command} was not run.",
            ]
            yield self.keeper.emit(CaptureFailed(record.step, str(exc)))
            return
        yield rewound  # journaled, synced, as it was applied
        yield self.keeper.emit(undone)
        self.recall.forget(undone.steps)
        self.changes.files = {f for f in self.changes.files if (self.changes.root / f).exists()}
        # The workspace as it is now is how it was before this step, for a later rewind.
        yield from self.capture_before(record.step)
