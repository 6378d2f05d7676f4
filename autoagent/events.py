"""The loop's events: small dataclasses. The UI renders them; the journal records them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .pricing import Spend
from .replies import Thoughts
from .tasks import Task


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    run_dir: str
    workspace: str
    resumed: bool
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Thinking:
    role: str  # which agent the model is working for


@dataclass(frozen=True)
class Proposed:
    step: int
    task: str
    thoughts: Thoughts
    command: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    step: int
    message: str  # sent back to the model; nothing ran


@dataclass(frozen=True)
class Authorized:
    step: int
    by: str
    decision: str  # "approve", "stop", "feedback" or "refused"
    feedback: str | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class CommandDone:
    step: int
    command: str
    output: str
    ok: bool


@dataclass(frozen=True)
class TasksChanged:
    open_tasks: list[Task]
    added: list[Task]


@dataclass(frozen=True)
class StepFinished:
    step: int
    spend: Spend
    budget: float | None
    # Seconds per phase of the step (model, prompt, parse, memory_query, memory_write,
    # command, journal, checkpoint), each second counted once.
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopWarning:
    problem: str
    escalated: bool  # it went on after the agent was told


@dataclass(frozen=True)
class RunEnded:
    status: str  # finished, stopped, interrupted, failed
    reason: str
    run_dir: str
    workspace: str
    spend: Spend
    steps: int = 0
    goal_report: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # made or changed in the workspace by this run


Event = (
    RunStarted
    | Thinking
    | Proposed
    | Invalid
    | Authorized
    | CommandDone
    | TasksChanged
    | StepFinished
    | LoopWarning
    | RunEnded
)
