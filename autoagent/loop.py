"""The agent loop: a generator of small typed events. It knows nothing of the terminal."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .agents import (
    BudgetExceeded,
    ExecutionAgent,
    ModelCaller,
    PrioritizationAgent,
    StepView,
    TaskCreationAgent,
)
from .authorize import Approve, Feedback, Gate, Proposal, Stop
from .commands.base import CommandContext, Registry
from .errors import AutoAgentError, CommandError, InputEnded
from .events import (
    Authorized,
    CommandDone,
    Event,
    Invalid,
    LoopWarning,
    Proposed,
    RunEnded,
    RunStarted,
    StepFinished,
    TasksChanged,
    Thinking,
)
from .journal import RunJournal
from .memory import Memory
from .pricing import Spend
from .profile import AgentProfile
from .repetition import LoopDetector
from .settings import Settings
from .tasks import TaskList
from .text import trim_middle

log = logging.getLogger(__name__)

NO_TASK = "No open tasks are left: check the goals against what was done; finish if they are met."
RESULT_CHARS_IN_PROMPT = 1500
RESULT_CHARS_IN_MEMORY = 3000
EARLIER_STEPS_KEPT = 20
FILE_MAKERS = {"write_file", "append_to_file"}  # their success counts as progress


@dataclass
class RunState:
    """Everything needed to resume a run; saved as the checkpoint after every step."""

    run_id: str
    profile: AgentProfile
    tasks: TaskList
    recent: deque[StepView]
    spend: Spend = field(default_factory=Spend)
    step: int = 0
    commands_run: int = 0
    feedback: str | None = None
    status: str = "running"
    reason: str = ""
    pending: dict[str, Any] | None = None  # a command that started and has no result yet
    started: float = field(default_factory=time.time)
    earlier: list[str] = field(default_factory=list)  # one line per step older than `recent`
    goal_report: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @classmethod
    def new(cls, run_id: str, profile: AgentProfile, window: int) -> RunState:
        tasks = TaskList()
        tasks.add(profile.goals)
        return cls(run_id=run_id, profile=profile, tasks=tasks, recent=deque(maxlen=window))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "run_id": self.run_id,
            "profile": self.profile.model_dump(),
            "tasks": self.tasks.to_dict(),
            "recent": [asdict(s) for s in self.recent],
            "spend": self.spend.to_dict(),
            "step": self.step,
            "commands_run": self.commands_run,
            "feedback": self.feedback,
            "status": self.status,
            "reason": self.reason,
            "pending": self.pending,
            "started": self.started,
            "updated": time.time(),
            "earlier": self.earlier,
            "goal_report": self.goal_report,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], window: int) -> RunState:
        return cls(
            run_id=data["run_id"],
            profile=AgentProfile(**data["profile"]),
            tasks=TaskList.from_dict(data["tasks"]),
            recent=deque((StepView(**s) for s in data["recent"]), maxlen=window),
            spend=Spend.from_dict(data["spend"]),
            step=int(data["step"]),
            commands_run=int(data["commands_run"]),
            feedback=data.get("feedback"),
            status=data.get("status", "running"),
            reason=data.get("reason", ""),
            pending=_valid_pending(data.get("pending")),
            started=float(data.get("started", time.time())),
            earlier=list(data.get("earlier", [])),
            goal_report=list(data.get("goal_report", [])),
            files=list(data.get("files", [])),
        )


class _RunOver(Exception):
    """Raised inside the loop to end the run with a status and a reason."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AgentLoop:
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
        profile = state.profile
        self.executor = ExecutionAgent(
            caller, settings.model, profile, registry, settings.prompt_tokens
        )
        self.task_creator = TaskCreationAgent(caller, settings.fast_model, profile.goals)
        self.prioritizer = PrioritizationAgent(caller, settings.fast_model, profile.goals)
        self.detector = LoopDetector(stall_steps=settings.stall_steps)
        self.timings = caller.timings
        self.notices: list[str] = []
        self.notes = notes or []  # for the human, shown when the run starts
        self._warned = False  # the agent was told it loops, last step
        self._files_before = snapshot(context.workspace.root)
        self._commands_at_start = state.commands_run  # --continuous-limit counts from here

    def run(self) -> Iterator[Event]:
        """Run until finish, a limit, a human stop or a failure; always ends with RunEnded."""
        state = self.state
        notices = self._resume_notices() if self.resumed else []
        self.notices.extend(notices)
        state.status = "running"
        if self.memory is not None and self.settings.memory_recall:
            self.memory.prepare_queries([t.text for t in state.tasks.open])
        self._save()
        yield self._emit(
            RunStarted(
                state.run_id,
                str(self.journal.run_dir),
                str(self.context.workspace.root),
                self.resumed,
                [*self.notes, *notices],
            )
        )
        try:
            while True:
                self._check_limits()
                yield from self._step()
        except _RunOver as over:
            state.status, state.reason = over.status, over.reason
        except BudgetExceeded as exc:
            state.status, state.reason = "stopped", str(exc)
        except KeyboardInterrupt:
            state.status, state.reason = "interrupted", "Interrupted with Ctrl-C."
        except AutoAgentError as exc:
            state.status, state.reason = "failed", str(exc)
        changed = changed_files(self._files_before, snapshot(self.context.workspace.root))
        state.files = sorted(set(state.files) | set(changed))
        self._record_calls()
        self._save()
        yield self._emit(
            RunEnded(
                state.status,
                state.reason,
                str(self.journal.run_dir),
                str(self.context.workspace.root),
                state.spend,
                state.step,
                state.goal_report,
                state.files,
            )
        )

    # One step: propose, check, authorize, run, remember, plan.

    def _step(self) -> Iterator[Event]:
        state = self.state
        state.step += 1
        task = state.tasks.current
        task_text = task.text if task else NO_TASK

        yield self._emit(Thinking("execution"))
        memories = self._recall(task_text)
        with self.timings.phase("prompt"):
            reply = self.executor.propose(
                task=task_text,
                open_tasks=[t.text for t in state.tasks.open[1:]],
                memories=memories,
                recent_steps=list(state.recent),
                earlier_steps=state.earlier,
                notices=self.notices,
                feedback=state.feedback,
            )
        self.notices = []
        state.feedback = None
        call = reply.command
        yield self._emit(Proposed(state.step, task_text, reply.thoughts, call.name, call.args))

        try:
            with self.timings.phase("parse"):
                command = self.registry.get(call.name)
                args = command.validate(call.args)
        except CommandError as exc:
            yield self._emit(Invalid(state.step, str(exc)))
            self._remember(call.name, call.args, f"Error: {exc}")
            yield from self._conclude(call.name, call.args, f"Error: {exc}")
            return

        proposal = Proposal(state.step, command.name, args, command.risk, command.needs_approval)
        verdict = self.gate.decide(proposal)
        if verdict.refusal:
            yield self._emit(Authorized(state.step, verdict.by, "refused", refusal=verdict.refusal))
            self._remember(command.name, args, verdict.refusal)
            yield from self._conclude(command.name, args, verdict.refusal)
            return
        decision = verdict.decision
        if isinstance(decision, Stop):
            yield self._emit(Authorized(state.step, verdict.by, "stop"))
            raise _RunOver("stopped", f"Stopped by the human before running {command.name}.")
        if isinstance(decision, Feedback):
            yield self._emit(Authorized(state.step, verdict.by, "feedback", feedback=decision.text))
            state.feedback = decision.text
            self._remember(command.name, args, "Not run: the human gave feedback instead.")
            self._finish_step()
            yield self._step_finished()
            return
        assert isinstance(decision, Approve)
        yield self._emit(Authorized(state.step, verdict.by, "approve"))

        if command.name == "finish":
            state.goal_report = [str(line) for line in args.get("goal_report") or []]
            raise _RunOver("finished", str(args.get("reason", "")))

        state.pending = {"step": state.step, "command": command.name, "args": args}
        self._save()
        try:
            with self.timings.phase("command"):
                output, ok = command(self.context, args), True
        except InputEnded as exc:  # asked, the human can never answer: nothing was done
            state.pending = None
            raise _RunOver("stopped", str(exc)) from exc
        except CommandError as exc:
            output, ok = f"Error: {exc}", False
        except Exception as exc:  # a command's own bug: logged in full, and the run goes on
            log.exception("command %s failed unexpectedly", command.name)
            output, ok = f"Error: {command.name} failed ({type(exc).__name__}: {exc}).", False
        state.pending = None
        state.commands_run += 1
        yield self._emit(CommandDone(state.step, command.name, output, ok))

        self._remember(command.name, args, output, task_text)
        if task is not None:
            state.tasks.complete(task.id, trim_middle(output, RESULT_CHARS_IN_PROMPT))
        added = yield from self._plan(task_text, output)
        made_file = ok and command.name in FILE_MAKERS
        yield from self._conclude(command.name, args, output, progress=made_file or added > 0)

    def _conclude(
        self, command: str, args: dict[str, Any], result: str, *, progress: bool = False
    ) -> Iterator[Event]:
        """End a step that was remembered: watch for loops, save."""
        yield from self._watch(command, args, result, progress)
        self._finish_step()
        yield self._step_finished()

    def _plan(self, task: str, result: str) -> Generator[Event, None, int]:
        """Task creation, then prioritization only when the list changed and has a choice."""
        tasks = self.state.tasks
        yield self._emit(Thinking("task-creation"))
        with self.timings.phase("prompt"):
            new = self.task_creator.create(
                task, trim_middle(result, RESULT_CHARS_IN_PROMPT), [t.text for t in tasks.open]
            )
        added = tasks.add(new)
        if added and self.memory is not None and self.settings.memory_recall:
            self.memory.prepare_queries([t.text for t in added])
        if added and len(tasks.open) > 1:
            yield self._emit(Thinking("prioritization"))
            with self.timings.phase("prompt"):
                tasks.reorder(self.prioritizer.order(tasks.open))
        yield self._emit(TasksChanged(tasks.open, added))
        return len(added)

    def _watch(
        self, command: str, args: dict[str, Any], result: str, progress: bool
    ) -> Iterator[Event]:
        """Tell the agent when it loops; if it goes on, stop (continuous) or ask each time."""
        problem = self.detector.observe(command, args, result, progress=progress)
        if problem is None:
            self._warned = False
            return
        if self._warned:
            if self.settings.continuous:
                raise _RunOver("stopped", f"Stopped: the agent is looping ({problem}).")
            self.gate.pre_approved = 0  # the human sees every command from now on
        yield self._emit(LoopWarning(problem, escalated=self._warned))
        self._warned = True
        self.notices.append(
            f"You are going round in circles: {problem}. Change approach: use another command "
            "or other arguments, ask_user for help, or finish if the goals are met or cannot be."
        )

    # Helpers.

    def _check_limits(self) -> None:
        state, settings = self.state, self.settings
        if state.step >= settings.max_steps:
            raise _RunOver(
                "stopped", f"Reached the limit of {settings.max_steps} steps (--max-steps)."
            )
        limit = settings.continuous_limit
        ran = state.commands_run - self._commands_at_start
        if settings.continuous and limit is not None and ran >= limit:
            raise _RunOver(
                "stopped", f"Ran {limit} commands, the continuous limit (--continuous-limit)."
            )

    def _recall(self, task: str) -> list[str]:
        if self.memory is None or self.settings.memory_recall == 0:
            return []
        # The task says what to look for; the goals only when no task is left. Adding the goals
        # to every query made it several times slower to embed and blurred it toward them.
        query = "\n".join(self.state.profile.goals) if task == NO_TASK else task
        in_window = {(self.state.run_id, s.step) for s in self.state.recent}
        with self.timings.phase("memory_query"):
            found = self.memory.recall(query, self.settings.memory_recall + len(in_window))
        texts = [
            m.text
            for m in found
            if (m.metadata.get("run_id"), m.metadata.get("step")) not in in_window
        ]
        return [
            trim_middle(t, RESULT_CHARS_IN_PROMPT) for t in texts[: self.settings.memory_recall]
        ]

    def _remember(
        self, command: str, args: dict[str, Any], result: str, task: str | None = None
    ) -> None:
        """Add the step to the recent window (its oldest step becomes a one-line summary),
        and, for commands that ran, to long-term memory."""
        state = self.state
        args_text = json.dumps(args, ensure_ascii=False)
        if len(state.recent) == state.recent.maxlen:
            state.earlier = [*state.earlier, state.recent[0].summary()][-EARLIER_STEPS_KEPT:]
        state.recent.append(
            StepView(
                state.step,
                command,
                trim_middle(args_text, 500),
                trim_middle(result, RESULT_CHARS_IN_PROMPT),
            )
        )
        if task is not None and self.memory is not None:
            with self.timings.phase("memory_write"):
                self.memory.add(
                    f"Task: {task}\nCommand: {command} {trim_middle(args_text, 500)}\n"
                    f"Result: {trim_middle(result, RESULT_CHARS_IN_MEMORY)}",
                    run_id=state.run_id,
                    step=state.step,
                )

    def _finish_step(self) -> None:
        self._record_calls()
        self._save()

    def _step_finished(self) -> StepFinished:
        timings = {name: round(seconds, 6) for name, seconds in self.timings.take().items()}
        log.debug("step %d took %s", self.state.step, timings)
        return self._emit(
            StepFinished(self.state.step, self.state.spend, self.caller.budget, timings)
        )

    def _resume_notices(self) -> list[str]:
        pending = self.state.pending
        if not pending:
            return []
        self.state.pending = None
        return [
            f"Step {pending['step']}'s command {pending['command']} "
            f"{json.dumps(pending['args'], ensure_ascii=False)} started before the run was "
            "interrupted and its result was not recorded: it may or may not have taken effect. "
            "Check before doing it again."
        ]

    def _record_calls(self) -> None:
        with self.timings.phase("journal"):
            for record in self.caller.drain():
                self.journal.record("model_call", **asdict(record))

    def _save(self) -> None:
        with self.timings.phase("checkpoint"):
            self.journal.save_checkpoint(self.state.to_dict())

    def _emit(self, event: Any) -> Any:
        with self.timings.phase("journal"):
            self.journal.record(type(event).__name__, **_event_data(event))
        return event


def _event_data(event: Any) -> dict[str, Any]:
    data = asdict(event)
    if isinstance(event, Proposed):
        data["thoughts"] = event.thoughts.model_dump()
    if isinstance(event, StepFinished | RunEnded):
        data["spend"] = event.spend.to_dict()
    return data


def snapshot(root: Path, limit: int = 20_000) -> dict[str, tuple[int, int]]:
    """Size and modification time of the workspace's files (links not followed)."""
    files: dict[str, tuple[int, int]] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in names:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            files[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
            if len(files) >= limit:
                return files
    return files


def changed_files(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> list[str]:
    return sorted(path for path, stamp in after.items() if before.get(path) != stamp)


def _valid_pending(pending: Any) -> dict[str, Any] | None:
    if pending is None:
        return None
    if not isinstance(pending, dict) or not {"step", "command", "args"} <= pending.keys():
        raise ValueError(f"pending is not a command record: {pending!r}")
    return pending
