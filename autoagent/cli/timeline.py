"""A run as a timeline for the web console and `show --html`: its steps, notes and spend.

Built from the run's event log alone (the checkpoint, when readable, adds the latest status),
like `autoagent show`, so a run is shown while it runs and also when its checkpoint is lost.
Nothing here is HTML: the templates (pages.py) render it, escaping every string.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
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
from ..store.journal import RunJournal, is_live
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
    record: StepRecord
    tasks_added: list[Task] = field(default_factory=list)
    kind: str = "step"
    undone: bool = False  # `resume --from-step` undid it

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

    @property
    def step_count(self) -> int:
        return sum(isinstance(item, StepItem) for item in self.items)


def load_timeline(journal: RunJournal) -> Timeline:
    """The timeline of a run; JournalError when its log cannot be read at all."""
    entries = journal.events()
    state: dict[str, Any] | None = None
    try:
        state = journal.load_checkpoint()
    except JournalError:
        if not entries:
            raise
    return build_timeline(journal.run_id, entries, state, live=is_live(journal.run_dir))


def build_timeline(
    run_id: str,
    entries: list[dict[str, Any]],
    state: dict[str, Any] | None,
    *,
    live: bool = False,
) -> Timeline:
    items: list[StepItem | Note] = []
    steps: dict[int, StepItem] = {}
    profile: AgentProfile | None = None
    open_tasks: list[Task] = []
    points: list[tuple[int, Spend]] = []
    last_end: RunEnded | None = None
    last_step: int | None = None
    for number, entry in enumerate(entries, 1):
        kind = str(entry.get("event"))
        at = _seconds(entry.get("time"))
        try:
            event = from_data(kind, entry)
        except ValidationError as exc:
            problem = f"Event {number} ({kind}) cannot be read: {describe_validation(exc)}."
            items.append(Note("unreadable", "Unreadable event", problem, at=at))
            continue
        if isinstance(event, RunStarted):
            profile = profile or event.profile
            verb = "Resumed" if event.resumed else "Started"
            items.append(Note("started", f"{verb} run", event.workspace, event.notices, at))
        elif isinstance(event, STEP_EVENTS):
            record: StepRecord = event.record
            item = steps.get(record.step)
            if item is None:
                item = steps[record.step] = StepItem(record)
                items.append(item)
            item.record = record
            last_step = record.step
            if isinstance(event, StepFinished):
                points.append((record.step, event.spend))
        elif isinstance(event, TasksChanged):
            open_tasks = list(event.open_tasks)
            if last_step is not None and event.added:
                steps[last_step].tasks_added = list(event.added)
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
            last_end = event
            lines = [*event.goal_report]
            if event.files:
                lines.append("Files made or changed: " + ", ".join(event.files))
            items.append(Note("ended", f"Run {event.status}", event.reason, lines, at))
            points.append((event.steps, event.spend))
    if state is not None:
        _awaiting(state, steps)
        status, reason = str(state.get("status", "?")), str(state.get("reason", ""))
        step_count = int(state.get("step", 0))
        spend = Spend.model_validate(state.get("spend") or {})
        if status == "running" and not live:
            status = "interrupted"
    else:
        status = last_end.status if last_end else "unknown (no checkpoint)"
        reason = last_end.reason if last_end else ""
        step_count = max(steps, default=0)
        spend = points[-1][1] if points else Spend()
    if status == "running" or live:
        # The checkpoint is saved before each step's events reach the page: show the newest.
        step_count = max(step_count, max(steps, default=0))
    started = float(entries[0].get("time") or 0.0) if entries else 0.0
    return Timeline(
        run_id=run_id,
        items=items,
        profile=profile,
        status=status,
        reason=reason,
        steps=step_count,
        spend=spend,
        open_tasks=open_tasks,
        live=live,
        started=started,
        chart=spend_chart(points),
    )


def _awaiting(state: dict[str, Any], steps: dict[int, StepItem]) -> None:
    """A step waiting for a human says so only in the checkpoint (its event log has the
    proposal): show it as waiting."""
    try:
        current = StepRecord.model_validate(state.get("current") or {})
    except ValidationError:
        return
    item = steps.get(current.step)
    if current.status is StepStatus.AWAITING and item and item.record.status is StepStatus.PROPOSED:
        item.record = current


def spend_chart(points: list[tuple[int, Spend]]) -> Chart | None:
    """Cost over steps, or tokens when nothing has a price (local models); None if empty."""
    by_step: dict[int, Spend] = {}
    for step, spend in points:
        by_step[step] = spend  # the last word on each step
    if not by_step:
        return None
    in_dollars = any(spend.cost > 0 for spend in by_step.values())
    ordered = sorted(by_step.items())
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
