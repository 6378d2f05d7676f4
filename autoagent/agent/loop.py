"""The agent loop: a generator of small typed events. It knows nothing of the terminal.

Each step has one record (record.py), made durable at fixed points: before its command runs
(pending), the moment the command returns (its result, before any planning call), and at the
end of the step. A resumed run finishes the step it finds in flight from that record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from ..base.decision import DecisionKind
from ..base.errors import AutoAgentError, CommandError, WorkspaceGone
from ..base.settings import Settings
from ..base.status import RunStatus, StopCause
from ..base.text import trim_middle
from ..human.authorize import Gate, Proposal
from ..human.hooks import Hooks
from ..store.journal import RunJournal
from ..store.memory import Memory
from ..tools.commands.base import Command, CommandContext, Registry
from .agents import NO_TASK, BudgetExceeded, ExecutionAgent, ModelCaller
from .changes import WorkspaceChanges
from .events import (
    Authorized,
    CommandStarted,
    CommandsWithdrawn,
    Event,
    Invalid,
    Proposed,
    StepRecovered,
    StepsUndone,
    Thinking,
)
from .execution import CommandRunner, RunOver, check_limits, without_workspace
from .findings import write_findings
from .keeper import RunKeeper
from .parts import close_model, uses_local_model
from .planning import Planner
from .recall import Recall
from .record import StepProposal, StepRecord, StepStatus
from .recovery import Recovery
from .state import RunState
from .undo import undoable_step

log = logging.getLogger(__name__)

# What the checkpoint keeps of a done task's result (the whole result is in the journal and
# in memory); the checkpoint is written three times a step, so it must not grow much.
DONE_RESULT_CHARS = 200


class AgentLoop:
    """Runs one run. It owns the run's journal, memory and model: `close` (or leaving a
    `with` block) releases them all."""

    def __init__(
        self,
        *,
        state: RunState,
        settings: Settings,
        caller: ModelCaller,
        registry: Registry,
        memory: Memory | None,
        gate: Gate,
        journal: RunJournal,
        context: CommandContext,
        resumed: bool = False,
        notes: list[str] | None = None,
        instructions: str = "",
        undone: StepsUndone | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.state = state
        self.settings = settings
        self.caller = caller
        self.registry = registry
        self.memory = memory
        self.gate = gate
        self.journal = journal
        self.context = context
        self.resumed = resumed
        self.hooks = hooks  # Stop; the gate runs PreToolUse, the command runner PostToolUse
        profile = state.profile
        self.executor = ExecutionAgent(
            caller,
            settings.model,
            profile,
            registry,
            settings.prompt_tokens,
            instructions=instructions,  # the project's AGENTS.md, marked
            read_only=settings.read_only,
            small_model=uses_local_model(settings),
        )
        self.timings = caller.timings
        self.keeper = RunKeeper(state, journal, caller)
        self.recall = Recall(memory, state, settings, caller.timings)
        self.planner = Planner(state, settings, caller, self.keeper, self.recall, gate)
        self.recovery = Recovery(
            state, journal, self._available, lambda record: self.recall.keep(record, self._window)
        )
        self.notes = notes or []  # for the human, shown when the run starts
        self.undone = undone  # steps `resume --from-step` undid
        self._window = settings.recent_steps
        self.changes = WorkspaceChanges(
            journal.run_dir, context.workspace.root, settings.rewind_file_limit
        )
        self.commands = CommandRunner(state, context, self.keeper, self.recall, self.changes, hooks)
        self._commands_at_start = state.commands_run  # --continuous-limit counts from here
        self._listener: Callable[[Event], None] | None = None
        # Set by the CLI on Ctrl-C: a press whose KeyboardInterrupt was swallowed on its way (in
        # a finalizer, or in a child between fork and exec) stops the run all the same.
        self.interrupted = False

    # Resources.

    @property
    def run_dir(self) -> Path:
        return self.journal.run_dir

    @property
    def detector(self) -> Any:
        return self.state.detector

    def on_progress(self, callback: Callable[[int], None]) -> None:
        """Call `callback` with the tokens received so far while a reply streams in."""
        if hasattr(self.caller.model, "on_progress"):
            self.caller.model.on_progress = callback

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call `callback` with the events that come while the loop itself waits, so are not
        yielded: a request for a human, opened while the gate waits for its answer."""
        self._listener = callback

    def announce(self, event: Event) -> None:
        """Journal an event that comes while the loop waits, and pass it to the listener."""
        self.keeper.emit(event)
        if self._listener is not None:
            self._listener(event)

    def close(self) -> None:
        """Finish memory writes, let other processes use the store and the run."""
        try:
            self.registry.close()  # MCP servers stop: nothing is left running
            if self.memory is not None:
                self.memory.close()
        finally:
            self.changes.snapshots.close()
            self.journal.release()
            close_model(self.caller.model)

    def __enter__(self) -> AgentLoop:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # The run.

    def run(self) -> Generator[Event, None, None]:
        """Run until finish, a limit, a human stop or a failure; always ends with RunEnded."""
        state = self.state
        recovered, human_notes = self.recovery.settle() if self.resumed else ([], [])
        state.status = RunStatus.RUNNING
        self.recall.prepare()
        self.keeper.save()
        notes = [*self.notes, *human_notes, *state.notices]
        yield self.keeper.started(self.context.workspace.root, self.resumed, notes)
        try:
            if self.undone is not None:
                yield self.keeper.emit(self.undone)
                self.recall.forget(self.undone.steps)
            for record in recovered:
                yield self.keeper.emit(StepRecovered(record))
            self.recall.restore()
            if (current := state.unfinished_step()) is not None:
                yield from self._finish_unfinished(current)
            while True:
                self._stop_if_interrupted()
                check_limits(self.state, self.settings, self._commands_at_start)
                yield from self._step()
        except RunOver as over:
            state.stop(over.cause, over.reason)
        except BudgetExceeded as exc:
            state.stop(StopCause.BUDGET, str(exc))
        except KeyboardInterrupt:
            state.stop(StopCause.INTERRUPTED, "Interrupted with Ctrl-C.")
        except AutoAgentError as exc:
            state.stop(StopCause.ERROR, str(exc))
        state.files = sorted(set(state.files) | self.changes.files)
        findings = write_findings(state, self.run_dir) if self.settings.read_only else None
        self.keeper.record_calls()
        self.keeper.save()
        if self.hooks is not None:
            self.hooks.at_end(
                status=state.status.value,
                cause=state.cause.value if state.cause else None,
                reason=state.reason,
                steps=state.step,
            )
        yield self.keeper.ended(self.context.workspace.root, findings)

    def _finish_unfinished(self, record: StepRecord) -> Iterator[Event]:
        """Go on with the step the last process left: waiting for a human (the same request
        is pending again), asking the human (the same question), or planning from a result."""
        if record.status is StepStatus.RAN:
            yield from self._complete(record)
            return
        try:
            command = self.registry.get(record.command)
        except CommandError as exc:  # e.g. its MCP server is not configured any more
            invalid = record.advance(StepStatus.INVALID, invalid=str(exc))
            self.state.current = None
            yield self.keeper.emit(Invalid(invalid))
            yield from self._conclude(invalid)
            return
        if record.status is StepStatus.AWAITING:
            yield self.keeper.emit(Proposed(record))
            yield from self._authorize_and_run(record.advance(StepStatus.PROPOSED), command)
        else:
            yield from self._run(record, command)

    # One step: propose, check, authorize, run, remember, plan.

    def _step(self) -> Iterator[Event]:
        for gone in self.registry.refresh():  # e.g. the tools of an MCP server that stopped
            self.executor.use_commands(self.registry)
            if not gone.reported:
                self.state.notices = [*self.state.notices, gone.message]
                yield self.keeper.emit(CommandsWithdrawn(gone.message, list(gone.commands)))
        state = self.state
        try:
            self.context.workspace.check_present()  # before the model is asked for a step
        except WorkspaceGone as exc:
            raise without_workspace(exc, state.run_id) from exc
        state.step += 1
        task = state.tasks.current
        task_text = task.text if task else NO_TASK

        yield self.keeper.emit(Thinking("execution"))
        # The task says what to look for; the goals only when no task is left. Adding the goals
        # to every query made it several times slower to embed and blurred it toward them.
        query = "\n".join(self.state.profile.goals) if task is None else task_text
        memories = self.recall.recall(query)
        with self.timings.phase("prompt"):
            reply = self.executor.propose(
                task=task_text,
                open_tasks=[t.text for t in state.tasks.open[1:]],
                memories=memories,
                recent_steps=[r.view() for r in state.recent],
                earlier_steps=state.earlier,
                notices=state.notices,
                feedback=state.feedback,
            )
        # The model has them now; this is saved at the step's next durable point, so a crash
        # before it sends them again.
        state.notices, state.feedback = [], None
        call = reply.command
        proposal = StepProposal(
            task=task_text,
            task_id=task.id if task else None,
            thoughts=reply.thoughts,
            command=call.name,
            args=call.args,
        )
        record = StepRecord(run_id=state.run_id, step=state.step, proposal=proposal)
        yield self.keeper.emit(Proposed(record))

        try:
            with self.timings.phase("parse"):
                command = self.registry.get(call.name)
                args = command.validate(call.args)
        except CommandError as exc:
            record = record.advance(StepStatus.INVALID, invalid=str(exc))
            yield self.keeper.emit(Invalid(record))
            yield from self._conclude(record)
            return
        record = record.model_copy(update={"proposal": proposal.model_copy(update={"args": args})})
        yield from self._authorize_and_run(record, command)

    def _authorize_and_run(self, record: StepRecord, command: Command) -> Iterator[Event]:
        """The gate's decision on a valid proposal, and what follows from it."""
        state, args = self.state, record.proposal.args
        gate_proposal = Proposal(
            record.step,
            command.name,
            args,
            command.risk,
            command.needs_approval,
            undo_step=undoable_step(state),
        )
        decision = self.gate.screen(gate_proposal)
        if decision is None:  # a human is asked: saved first, so a resumed run asks again
            if command.changes_things and not command.ends_run:  # a failure is said first
                yield from self.commands.capture_before(record.step)
            state.current = record.advance(StepStatus.AWAITING)
            self.keeper.save()
            decision = self.gate.ask(gate_proposal)
            state.current = None
        if decision.reason is not None:
            record = record.advance(StepStatus.REFUSED, decision=decision)
            yield self.keeper.emit(Authorized(record))
            yield from self._conclude(record)
            return
        if decision.kind is DecisionKind.STOP:
            yield self.keeper.emit(
                Authorized(record.advance(StepStatus.STOPPED, decision=decision))
            )
            raise RunOver(StopCause.HUMAN, f"Stopped by the human before running {command.name}.")
        if decision.kind is DecisionKind.UNDO and gate_proposal.undo_step is not None:
            record = record.advance(StepStatus.FEEDBACK, decision=decision)
            yield self.keeper.emit(Authorized(record))
            yield from self.commands.undo(gate_proposal.undo_step, record)
            yield from self._conclude(record, watch=False)
            return
        if decision.kind in (DecisionKind.FEEDBACK, DecisionKind.UNDO):
            record = record.advance(StepStatus.FEEDBACK, decision=decision)
            yield self.keeper.emit(Authorized(record))
            state.feedback = decision.text
            yield from self._conclude(record, watch=False)
            return
        if command.ends_run:
            yield self.keeper.emit(
                Authorized(record.advance(StepStatus.FINISHED, decision=decision))
            )
            state.goal_report = [str(line) for line in args.get("goal_report") or []]
            raise RunOver(StopCause.FINISHED, self.commands.finish(record, command))
        record = record.model_copy(update={"decision": decision})
        yield self.keeper.emit(Authorized(record))

        record = record.advance(StepStatus.RUNNING)
        state.current = record
        # Pending: on the disk before it runs, and before a human is asked (the request is
        # answerable from elsewhere only once the step is seen running). A command that
        # changes nothing is written down without waiting: after a crash, it is proposed again.
        on_disk_first = command.changes_things or command.asks_human
        yield self.keeper.durable(CommandStarted(record), wait=on_disk_first)
        yield from self._run(record, command)

    def _run(self, record: StepRecord, command: Command) -> Iterator[Event]:
        """Run a started step's command, save its result, and complete the step."""
        record = yield from self.commands.run(record, command)
        self._stop_if_interrupted()  # the result is saved: a resumed run completes the step
        self.commands.after(record, command)
        yield from self._complete(record)

    def _complete(self, record: StepRecord) -> Iterator[Event]:
        """The rest of a step whose result is recorded: remember it, plan, conclude."""
        state = self.state
        assert record.result is not None
        self.recall.remember(record)
        task_id = record.proposal.task_id
        if task_id is not None and any(t.id == task_id for t in state.tasks.open):
            state.tasks.complete(task_id, trim_middle(record.result.output, DONE_RESULT_CHARS))
        added = yield from self.planner.plan(record.proposal.task, record.result.output)
        command = self._available(record.command)
        made_file = record.result.ok and command is not None and command.makes_files
        done = record.advance(StepStatus.DONE, tasks_added=added, progress=made_file or bool(added))
        yield from self._conclude(done)

    def _conclude(self, record: StepRecord, *, watch: bool = True) -> Iterator[Event]:
        """End a step: watch for loops, keep its record, save (the step's last durable point)."""
        if watch:
            yield from self.planner.watch(record)
        self.state.current = None
        self.recall.keep(record, self._window)
        self.keeper.record_calls()
        # Not waited for: losing it to a crash means redoing the step's planning, no more.
        self.keeper.save(wait=False)
        yield self.keeper.step_finished(record)

    # Helpers.

    def _available(self, name: str) -> Command | None:
        """The command `name`, unless it is gone (e.g. its MCP server is not configured)."""
        return self.registry.get(name) if name in self.registry else None

    def _stop_if_interrupted(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
