"""The loop's events: small dataclasses, each tagged with its name. The UI renders them; the
journal records them.

The events of a step carry its record (record.py) as it stands at that moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, TypeAdapter

from ..base.status import RunStatus, StopCause
from ..model.pricing import Spend
from ..store.manifest import FileChange
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
    event: Literal["RunStarted"] = field(default="RunStarted", init=False)


@dataclass(frozen=True)
class Thinking:
    role: str  # which agent the model is working for
    event: Literal["Thinking"] = field(default="Thinking", init=False)


@dataclass(frozen=True)
class Proposed:
    record: StepRecord
    event: Literal["Proposed"] = field(default="Proposed", init=False)


@dataclass(frozen=True)
class Invalid:
    record: StepRecord  # record.invalid goes back to the model; nothing ran
    event: Literal["Invalid"] = field(default="Invalid", init=False)


@dataclass(frozen=True)
class Authorized:
    record: StepRecord  # record.decision: what was decided, by whom, how and when
    event: Literal["Authorized"] = field(default="Authorized", init=False)


@dataclass(frozen=True)
class CommandStarted:
    record: StepRecord  # saved before the command runs: pending
    event: Literal["CommandStarted"] = field(default="CommandStarted", init=False)


@dataclass(frozen=True)
class CommandDone:
    record: StepRecord  # record.result, saved the moment the command returned
    event: Literal["CommandDone"] = field(default="CommandDone", init=False)


@dataclass(frozen=True)
class StepRecovered:
    record: StepRecord  # a step cut short by the end of the last process, restored
    event: Literal["StepRecovered"] = field(default="StepRecovered", init=False)


@dataclass(frozen=True)
class HumanAsked:
    """A request for a human was opened (or found again by a resumed run): the terminal, another
    shell (`autoagent approve|deny|answer ID`), the web console or a webhook's link answers it.
    The decision comes as Authorized; an answer to a question, as the command's result."""

    request: str  # its id
    step: int
    asks: str  # approval (may the command run?) or question (ask_user); not `kind`, which
    # the journal takes for the event's name
    command: str
    args: dict[str, Any]
    risk: str
    note: str = ""  # why a human is asked although they would not expect it
    expires: float | None = None  # when no answer counts any more (--approval-timeout)
    event: Literal["HumanAsked"] = field(default="HumanAsked", init=False)


@dataclass(frozen=True)
class TasksChanged:
    open_tasks: list[Task]
    added: list[Task]
    event: Literal["TasksChanged"] = field(default="TasksChanged", init=False)


@dataclass(frozen=True)
class StepFinished:
    record: StepRecord
    spend: Spend
    budget: float | None
    # Seconds per phase of the step (model, prompt, parse, memory_query, memory_write,
    # command, capture, journal, checkpoint), each second counted once.
    timings: dict[str, float] = field(default_factory=dict)
    event: Literal["StepFinished"] = field(default="StepFinished", init=False)

    @property
    def step(self) -> int:
        return self.record.step


@dataclass(frozen=True)
class LoopWarning:
    problem: str
    escalated: bool  # it went on after the agent was told
    event: Literal["LoopWarning"] = field(default="LoopWarning", init=False)


@dataclass(frozen=True)
class CommandsWithdrawn:
    message: str  # why, as the human and the agent are told
    commands: list[str]
    event: Literal["CommandsWithdrawn"] = field(default="CommandsWithdrawn", init=False)


@dataclass(frozen=True)
class CaptureFailed:
    step: int
    problem: str  # said before the command runs (and before the human is asked)
    event: Literal["CaptureFailed"] = field(default="CaptureFailed", init=False)


@dataclass(frozen=True)
class Rewound:
    """`autoagent rewind`: the workspace put back as it was before step `to_step` (or, with
    `undo_of`, as it was before the rewind of that number)."""

    to_step: int | None
    rewind: int  # the run's rewinds, counted from 1
    capture: int  # the capture of the workspace just before it: what undoing it brings back
    changes: list[FileChange] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # paths it could not bring back, and why
    undo_of: int | None = None
    event: Literal["Rewound"] = field(default="Rewound", init=False)


@dataclass(frozen=True)
class StepsUndone:
    """`resume --from-step`: these steps are undone; the agent is told, memory forgets them."""

    steps: list[int]
    reason: str = ""  # the human's words, if any
    event: Literal["StepsUndone"] = field(default="StepsUndone", init=False)


@dataclass(frozen=True)
class RunEnded:
    status: RunStatus
    reason: str
    run_dir: str
    workspace: str
    spend: Spend
    steps: int = 0
    goal_report: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # made or changed in the workspace by this run
    cause: StopCause | None = None  # None only in journals written before causes were kept
    findings: str | None = None  # a read-only run's findings and plan (findings.py)
    event: Literal["RunEnded"] = field(default="RunEnded", init=False)


Event = (
    RunStarted
    | Thinking
    | Proposed
    | Invalid
    | Authorized
    | CommandStarted
    | CommandDone
    | StepRecovered
    | HumanAsked
    | TasksChanged
    | StepFinished
    | LoopWarning
    | CommandsWithdrawn
    | CaptureFailed
    | Rewound
    | StepsUndone
    | RunEnded
)

# One discriminated union reads and writes them all: an event type is known by being in Event.
_EVENTS: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="event")])
TAGS = frozenset(kind.__dataclass_fields__["event"].default for kind in get_args(Event))


def to_data(event: Event) -> dict[str, Any]:
    """The event as JSON-ready data, for the journal (which keeps its tag as `event`)."""
    data: dict[str, Any] = _EVENTS.dump_python(event, mode="json", exclude={"event"})
    return data


def from_data(kind: str, data: dict[str, Any]) -> Event | None:
    """An event read back from the journal; None for entries that are not loop events."""
    if kind not in TAGS:
        return None
    fields = {k: v for k, v in data.items() if k != "time"}
    return _EVENTS.validate_python({**fields, "event": kind})
