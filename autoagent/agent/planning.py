"""What follows a step's result: the task list planned again (task creation, which also gives
the order: prioritization in the same call), and the agent watched for going round in circles."""

from __future__ import annotations

from collections.abc import Generator, Iterator

from ..base.settings import Settings
from ..base.status import StopCause
from ..base.text import trim_middle
from ..human.authorize import Gate
from .agents import ModelCaller, TaskCreationAgent
from .events import Event, LoopWarning, TasksChanged, Thinking
from .execution import RunOver
from .keeper import RunKeeper
from .recall import Recall
from .record import RESULT_CHARS_IN_PROMPT, StepRecord
from .state import RunState
from .tasks import Task

LOOPING = (
    "You are going round in circles: {problem}. Change approach: use another command or other "
    "arguments, ask_user for help, or finish if the goals are met or cannot be."
)


class Planner:
    def __init__(
        self,
        state: RunState,
        settings: Settings,
        caller: ModelCaller,
        keeper: RunKeeper,
        recall: Recall,
        gate: Gate,
    ) -> None:
        self.state = state
        self.continuous = settings.continuous
        self.task_creator = TaskCreationAgent(caller, settings.fast_model, state.profile.goals)
        self.keeper = keeper
        self.recall = recall
        self.gate = gate
        self.timings = caller.timings

    def plan(self, task: str, result: str) -> Generator[Event, None, list[Task]]:
        """Plan after `task` gave `result`: the tasks added (prioritization is shown when it
        has a choice to make)."""
        tasks = self.state.tasks
        yield self.keeper.emit(Thinking("task-creation"))
        with self.timings.phase("prompt"):
            reply = self.task_creator.create(
                task, trim_middle(result, RESULT_CHARS_IN_PROMPT), tasks.open, tasks.next_id
            )
        added, _ = tasks.plan(reply.tasks, reply.order)
        self.recall.prepare()
        if reply.order and len(tasks.open) > 1:
            yield self.keeper.emit(Thinking("prioritization"))
        yield self.keeper.emit(TasksChanged(tasks.open, added))
        return added

    def watch(self, record: StepRecord) -> Iterator[Event]:
        """Tell the agent when it loops; if it goes on, stop (continuous) or ask each time."""
        detector = self.state.detector
        problem = detector.observe(
            record.command, record.proposal.args, record.observation(), progress=record.progress
        )
        if problem is None:
            detector.warned = False
            return
        if detector.warned:
            if self.continuous:
                raise RunOver(StopCause.LOOPING, f"Stopped: the agent is looping ({problem}).")
            self.gate.revoke_pre_approval()  # the human sees every command from now on
        yield self.keeper.emit(LoopWarning(problem, escalated=detector.warned))
        detector.warned = True
        self.state.notices = [*self.state.notices, LOOPING.format(problem=problem)]
