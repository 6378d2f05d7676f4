"""A run as a timeline for the web console and `show --html`: its steps, notes and spend.

Built from the run's event log alone (the checkpoint, when readable, adds the latest status),
like `autoagent show`, so a run is shown while it runs and also when its checkpoint is lost.
Nothing here is HTML: the templates (pages.py) render it, escaping every string.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..agent.events import (
    Authorized,
    CaptureFailed,
    CommandDone,
    CommandStarted,
    CommandsWithdrawn,
    HumanAsked,
    Invalid,
    LoopWarning,
    Proposed,
    Rewound,
    RunEnded,
    RunStarted,
    StepFinished,
    StepRecovered,
    StepsUndone,
    TasksChanged,
    from_data,
)
from ..agent.profile import AgentProfile
from ..agent.record import StepRecord
from ..agent.tasks import Task
from ..base.errors import JournalError, describe_validation
from ..base.status import StepStatus
from ..human.requests import Request, RequestStore, unanswered
from ..model.pricing import Spend
from ..store.journal import EVENTS, RunJournal, is_live
from ..store.manifest import summary
from .inbox import waited_for

STEP_EVENTS = (
    Proposed,
    Invalid,
    Authorized,
    CommandStarted,
    CommandDone,
    StepRecovered,
    StepFinished,
)
CHART_WIDTH = 640
CHART_HEIGHT = 180
CHART_PAD = 40
CHART_POINTS = 200  # at most, on a long run's chart
# How the journal writes a line (store/journal.py): its time, its kind, then the rest; a step's
# events carry its record, the run's id and the step's number first.
_LINE = re.compile(
    rb'\{"time": ([0-9.e+-]+), "event": "([A-Za-z_]+)"'
    rb'(?:, "record": \{"run_id": "[^"\\]*", "step": (\d+),)?'
)
_NOT_SHOWN = {b"Thinking", b"model_call"}
_STEP_KINDS = {event.__name__.encode() for event in STEP_EVENTS}


@dataclass
class Note:
    """A line of the timeline that is not a step: a start, a warning, the end."""

    kind: str  # started, notice, asked, warning, withdrawn, ended, unreadable
    title: str
    text: str = ""
    lines: list[str] = field(default_factory=list)
    at: float = 0.0


@dataclass
class StepItem:
    """A step of the timeline. Its record is the newest of its events' (each carries it
    whole); on a long run most are never shown, so it is read from that event's line only
    when it is (ValidationError or ValueError then, for a damaged line)."""

    step: int
    line: bytes = b""  # the newest event's line, not read yet
    kind: str = "step"
    undone: bool = False  # `resume --from-step` undid it
    _record: StepRecord | None = None
    tasks_lines: list[bytes] = field(default_factory=list)  # its TasksChanged, not read yet
    _tasks_added: list[Task] | None = None

    @property
    def tasks_added(self) -> list[Task]:
        """The tasks its result added (the last list of them that was not empty)."""
        if self._tasks_added is None:
            self._tasks_added = []
            for line in reversed(self.tasks_lines):
                added = _tasks_of(line, "added")
                if added:
                    self._tasks_added = added
                    break
        return self._tasks_added

    @tasks_added.setter
    def tasks_added(self, tasks: list[Task]) -> None:
        self._tasks_added = tasks

    @property
    def record(self) -> StepRecord:
        if self._record is None:
            self._record = StepRecord.model_validate(json.loads(self.line)["record"])
        return self._record

    @record.setter
    def record(self, record: StepRecord) -> None:
        self._record, self.line = record, b""

    def newer(self, line: bytes) -> None:
        self._record, self.line = None, line

    @property
    def changes_text(self) -> str | None:
        return self.record.changes_text()

    @property
    def args_json(self) -> str:
        return json.dumps(self.record.proposal.args, ensure_ascii=False, indent=1)


@dataclass(frozen=True)
class ChartPoint:
    step: int
    value: float
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    """Spend over steps, laid out for an SVG of CHART_WIDTH x CHART_HEIGHT."""

    unit: str  # "USD" or "tokens"
    points: list[ChartPoint]
    top: str  # the label of the highest value
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    pad: int = CHART_PAD

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass
class Timeline:
    run_id: str
    items: list[StepItem | Note]
    profile: AgentProfile | None
    status: str
    reason: str
    steps: int
    spend: Spend
    open_tasks: list[Task]
    live: bool
    started: float
    chart: Chart | None
    first_item: int = 0  # of `items` among all the run's (a page shows some)
    total_items: int = 0

    @property
    def step_count(self) -> int:
        return sum(isinstance(item, StepItem) for item in self.items)

    @property
    def last_item(self) -> int:
        return self.first_item + len(self.items)


def load_timeline(journal: RunJournal) -> Timeline:
    """The whole timeline of a run; JournalError when its log cannot be read at all."""
    builder = TimelineBuilder(journal.run_id)
    read_log(journal.run_dir / EVENTS, 0, builder)
    state: dict[str, Any] | None = None
    try:
        state = journal.load_checkpoint()
    except JournalError:
        if not builder.events:
            raise
    return builder.timeline(state, live=is_live(journal.run_dir))


class TimelineBuilder:
    """A run's timeline, built event by event: the console keeps one for each run it shows
    and gives it only what the run's log gained since."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.events = 0  # read so far
        self.items: list[StepItem | Note] = []
        self.steps: dict[int, StepItem] = {}
        self.profile: AgentProfile | None = None
        self.open_tasks: list[Task] = []
        self._open_tasks_line: bytes | None = None  # the newest TasksChanged, not read yet
        self.points: list[tuple[int, Spend | bytes]] = []  # a line: its spend not read yet
        self.last_end: RunEnded | None = None
        self.last_step: int | None = None
        self.started = 0.0

    def add_line(self, line: bytes) -> None:
        """One line of the run's log. The events a timeline shows nothing of are not read, and
        a step's events are read only when the step is shown (its record) or charted."""
        head = _LINE.match(line)
        if head is not None:
            kind, step = head.group(2), head.group(3)
            if kind not in _STEP_KINDS:
                step = None
            if kind in _NOT_SHOWN or kind == b"TasksChanged" or step is not None:
                self.events += 1
                if self.events == 1:
                    self.started = _seconds(float(head.group(1)))
                if step is not None:
                    self._step_line(int(step), kind, line)
                elif kind == b"TasksChanged":
                    self._open_tasks_line = line
                    if self.last_step is not None:
                        self.steps[self.last_step].tasks_lines.append(line)
                return
        entry = json.loads(line.decode("utf-8", errors="replace"))
        if not isinstance(entry, dict):
            raise ValueError("not an event")
        self.add(entry)

    def _open_tasks(self) -> list[Task]:
        if self._open_tasks_line is not None:
            self.open_tasks = _tasks_of(self._open_tasks_line, "open_tasks")
            self._open_tasks_line = None
        return list(self.open_tasks)

    def _step_line(self, number: int, kind: bytes | None, line: bytes) -> None:
        item = self.steps.get(number)
        if item is None:
            item = self.steps[number] = StepItem(number)
            self.items.append(item)
        item.newer(line)
        self.last_step = number
        if kind == b"StepFinished":
            self.points.append((number, line))

    def add(self, entry: dict[str, Any]) -> None:
        self.events += 1
        kind = str(entry.get("event"))
        at = _seconds(entry.get("time"))
        if self.events == 1:
            self.started = at
        items, steps = self.items, self.steps
        try:
            event = from_data(kind, entry)
        except ValidationError as exc:
            problem = f"Event {self.events} ({kind}) cannot be read: {describe_validation(exc)}."
            items.append(Note("unreadable", "Unreadable event", problem, at=at))
            return
        if isinstance(event, RunStarted):
            self.profile = self.profile or event.profile
            verb = "Resumed" if event.resumed else "Started"
            items.append(Note("started", f"{verb} run", event.workspace, event.notices, at))
        elif isinstance(event, STEP_EVENTS):
            record: StepRecord = event.record
            item = steps.get(record.step)
            if item is None:
                item = steps[record.step] = StepItem(record.step)
                items.append(item)
            item.record = record
            self.last_step = record.step
            if isinstance(event, StepFinished):
                self.points.append((record.step, event.spend))
        elif isinstance(event, TasksChanged):
            self.open_tasks, self._open_tasks_line = list(event.open_tasks), None
            if self.last_step is not None and event.added:
                steps[self.last_step].tasks_added = list(event.added)
        elif isinstance(event, HumanAsked):
            what = "A question" if event.asks == "question" else f"May {event.command} run?"
            items.append(Note("asked", "Asked a human", f"{what} (request {event.request})", at=at))
        elif isinstance(event, LoopWarning):
            title = "The agent is still looping" if event.escalated else "Loop noticed"
            items.append(Note("warning", title, event.problem, at=at))
        elif isinstance(event, CommandsWithdrawn):
            items.append(Note("withdrawn", "Commands withdrawn", event.message, at=at))
        elif isinstance(event, CaptureFailed):
            items.append(Note("warning", f"Step {event.step} not captured", event.problem, at=at))
        elif isinstance(event, Rewound):
            if event.undo_of is not None:
                title = f"Rewind {event.undo_of} undone"
            else:
                title = f"Rewound to before step {event.to_step}"
            text = summary(event.changes) if event.changes else "Nothing to change."
            lost = [f"Not brought back: {', '.join(event.lost)}"] if event.lost else []
            items.append(Note("rewound", title, text, lost, at=at))
        elif isinstance(event, StepsUndone):
            for step in event.steps:
                if step in steps:
                    steps[step].undone = True
            listed = ", ".join(map(str, event.steps))
            items.append(Note("undone", f"Steps {listed} undone", event.reason, at=at))
        elif isinstance(event, RunEnded):
            self.last_end = event
            lines = [*event.goal_report]
            if event.files:
                lines.append("Files made or changed: " + ", ".join(event.files))
            items.append(Note("ended", f"Run {event.status}", event.reason, lines, at))
            self.points.append((event.steps, event.spend))

    def timeline(
        self,
        state: dict[str, Any] | None,
        *,
        live: bool = False,
        page: tuple[int, int] | None = None,
    ) -> Timeline:
        """The timeline now, with its checkpoint `state` if it has one; `page` (start, end)
        keeps only those items (all by default)."""
        steps = self.steps
        if state is not None:
            _awaiting(state, steps)
            status, reason = str(state.get("status", "?")), str(state.get("reason", ""))
            step_count = int(state.get("step", 0))
            spend = Spend.model_validate(state.get("spend") or {})
            if status == "running" and not live:
                status = "interrupted"
        else:
            status = self.last_end.status if self.last_end else "unknown (no checkpoint)"
            reason = self.last_end.reason if self.last_end else ""
            step_count = max(steps, default=0)
            spend = _spend(self.points[-1][1]) if self.points else Spend()
        if status == "running" or live:
            # The checkpoint is saved before each step's events reach the page: show the newest.
            step_count = max(step_count, max(steps, default=0))
        first, last = page or (0, len(self.items))
        return Timeline(
            run_id=self.run_id,
            items=[_readable(item) for item in self.items[first:last]],
            profile=self.profile,
            status=status,
            reason=reason,
            steps=step_count,
            spend=spend,
            open_tasks=self._open_tasks(),
            live=live,
            started=self.started,
            chart=spend_chart(self.points),
            first_item=first,
            total_items=len(self.items),
        )


def read_log(path: Path, offset: int, builder: TimelineBuilder) -> int:
    """Give `builder` the whole lines of the run's log from byte `offset` on; the offset after
    them (a last line without its end is still being written, or was torn by a crash: it is
    left). JournalError for a damaged line."""
    try:
        log = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return offset
    with log:
        log.seek(offset)
        for line in log:
            if not line.endswith(b"\n"):
                break
            try:
                builder.add_line(line)
            except ValueError:
                raise JournalError(
                    f"The run journal {path} is corrupt at line {builder.events + 1}."
                ) from None
            offset += len(line)
    return offset


def _readable(item: StepItem | Note) -> StepItem | Note:
    """A page's item as it is shown: a step whose record cannot be read is said to be so."""
    if isinstance(item, StepItem):
        try:
            item.record  # noqa: B018 - read now, not while the page renders
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            problem = describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
            return Note("unreadable", "Unreadable event", f"Step {item.step}: {problem}.")
    return item


def _tasks_of(line: bytes, key: str) -> list[Task]:
    """The tasks a TasksChanged line holds under `key`; none when it cannot be read."""
    try:
        return [Task.model_validate(task) for task in json.loads(line)[key]]
    except (ValidationError, ValueError, KeyError, TypeError):
        return []


def _spend(value: Spend | bytes) -> Spend:
    """A step's spend, read from its StepFinished line when it is still one."""
    if isinstance(value, Spend):
        return value
    try:
        return Spend.model_validate(json.loads(value)["spend"])
    except (ValidationError, ValueError, KeyError, TypeError):
        return Spend()


def _awaiting(state: dict[str, Any], steps: dict[int, StepItem]) -> None:
    """A step waiting for a human says so only in the checkpoint (its event log has the
    proposal): show it as waiting."""
    try:
        current = StepRecord.model_validate(state.get("current") or {})
    except ValidationError:
        return
    item = steps.get(current.step)
    if current.status is not StepStatus.AWAITING or item is None:
        return
    with contextlib.suppress(ValidationError, ValueError, KeyError, TypeError):
        if item.record.status is StepStatus.PROPOSED:
            item.record = current


def spend_chart(points: list[tuple[int, Spend | bytes]]) -> Chart | None:
    """Cost over steps, or tokens when nothing has a price (local models); None if empty.
    A long run's chart has CHART_POINTS evenly chosen steps, the last one kept."""
    by_step: dict[int, Spend | bytes] = {}
    for step, spend in points:
        by_step[step] = spend  # the last word on each step
    if not by_step:
        return None
    steps = sorted(by_step)
    if len(steps) > CHART_POINTS:
        stride = (len(steps) - 1) / (CHART_POINTS - 1)
        steps = [steps[round(i * stride)] for i in range(CHART_POINTS)]
    ordered = [(step, _spend(by_step[step])) for step in steps]
    in_dollars = any(spend.cost > 0 for _, spend in ordered)
    values = [(s, sp.cost if in_dollars else float(sp.total_tokens)) for s, sp in ordered]
    top = max(value for _, value in values) or 1.0
    first, last = values[0][0], values[-1][0]
    span = max(last - first, 1)
    inner_w = CHART_WIDTH - 2 * CHART_PAD
    inner_h = CHART_HEIGHT - 2 * CHART_PAD
    chart_points = []
    for step, value in values:
        x = CHART_PAD + (step - first) / span * inner_w if last > first else CHART_WIDTH / 2
        y = CHART_HEIGHT - CHART_PAD - value / top * inner_h
        chart_points.append(ChartPoint(step, value, x, y, _amount(value, in_dollars)))
    return Chart(
        unit="USD" if in_dollars else "tokens",
        points=chart_points,
        top=_amount(top, in_dollars),
    )


def _amount(value: float, in_dollars: bool) -> str:
    return f"${value:.4f}" if in_dollars else f"{int(value):,} tokens"


def pending_of(store: RequestStore) -> list[Request]:
    """The run's requests no one has answered yet and that it still waits for, oldest first
    (as inbox.pending finds them in every run)."""
    return [
        request
        for request in store.requests()
        if unanswered(store, request) and not request.expired() and waited_for(store, request)
    ]


def when(at: float | None) -> str:
    """A local date and time, or '' for none (or for a time that is not one)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else ""
    except (OverflowError, OSError, ValueError, TypeError):
        return ""


def _seconds(value: object) -> float:
    """An event's time, or 0 when the log holds something else there."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) else 0.0
