"""The loop's events: small dataclasses. The UI renders them; the journal records them.

The events of a step carry its record (record.py) as it stands at that moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from ..model.pricing import Spend
from .profile import AgentProfile
from .record import StepRecord
from .state import RunConfig
from .tasks import Task


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    run_dir: str
    workspace: str
    resumed: bool
    notices: list[str] = field(default_factory=list)
    profile: AgentProfile | None = None
    config: RunConfig | None = None


@dataclass(frozen=True)
class Thinking:
    role: str  # which agent the model is working for


@dataclass(frozen=True)
class Proposed:
    record: StepRecord


@dataclass(frozen=True)
class Invalid:
    record: StepRecord  # record.invalid goes back to the model; nothing ran


@dataclass(frozen=True)
class Authorized:
    record: StepRecord  # record.verdict: the decision, who made it, how and when


@dataclass(frozen=True)
class CommandStarted:
    record: StepRecord  # saved before the command runs: pending


@dataclass(frozen=True)
class CommandDone:
    record: StepRecord  # record.result, saved the moment the command returned


@dataclass(frozen=True)
class StepRecovered:
    record: StepRecord  # a step cut short by the end of the last process, restored


@dataclass(frozen=True)
class TasksChanged:
    open_tasks: list[Task]
    added: list[Task]


@dataclass(frozen=True)
class StepFinished:
    record: StepRecord
    spend: Spend
    budget: float | None
    # Seconds per phase of the step (model, prompt, parse, memory_query, memory_write,
    # command, journal, checkpoint), each second counted once.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return self.record.step


@dataclass(frozen=True)
class LoopWarning:
    problem: str
    escalated: bool  # it went on after the agent was told


@dataclass(frozen=True)
class CommandsWithdrawn:
    message: str  # why, as the human and the agent are told
    commands: list[str]


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
    | CommandStarted
    | CommandDone
    | StepRecovered
    | TasksChanged
    | StepFinished
    | LoopWarning
    | CommandsWithdrawn
    | RunEnded
)

EVENT_TYPES: dict[str, type[Any]] = {
    kind.__name__: kind
    for kind in (
        RunStarted,
        Thinking,
        Proposed,
        Invalid,
        Authorized,
        CommandStarted,
        CommandDone,
        StepRecovered,
        TasksChanged,
        StepFinished,
        LoopWarning,
        RunEnded,
    )
}


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(kind: type[Any]) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def to_data(event: Event) -> dict[str, Any]:
    """The event as JSON-ready data, for the journal."""
    data: dict[str, Any] = _adapter(type(event)).dump_python(event, mode="json")
    return data


def from_data(kind: str, data: dict[str, Any]) -> Event | None:
    """An event read back from the journal; None for entries that are not loop events."""
    event_type = EVENT_TYPES.get(kind)
    if event_type is None:
        return None
    fields = {k: v for k, v in data.items() if k not in {"time", "event"}}
    event: Event = _adapter(event_type).validate_python(fields)
    return event
