"""`autoagent show`: a run's audit trail, replayed through the terminal renderer.

Everything shown comes from the run's event log, so a run whose checkpoint is lost can still
be shown; the checkpoint, when there is one, adds the latest status."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from ..agent.events import Event, RunEnded, RunStarted, StepFinished, from_data
from ..base.errors import JournalError, describe_validation
from ..model.pricing import Spend
from .ui import Quoted, Renderer, format_spend, labelled, one_line, outside, print_line


def render_run(
    console: Console,
    run_id: str,
    entries: Iterable[dict[str, Any]],
    state: dict[str, Any] | None,
    problem: str = "",
) -> None:
    """Show a run from its journal `entries`, and its checkpoint `state` if it has one; each
    event is printed as it is read, so a long run starts at once and is never held whole."""
    renderer = Renderer(console, replay=True)
    calls = 0
    started: RunStarted | None = None
    before_start: list[Any] = []  # events a log without its start at the top has first
    last_end: RunEnded | None = None
    steps = 0
    spend = Spend()
    for number, entry in enumerate(entries, 1):
        kind = str(entry.get("event"))
        if kind == "model_call":
            calls += 1
            continue
        event: Event | _Unreadable | None
        try:
            event = from_data(kind, entry)
        except ValidationError as exc:  # one damaged event: said, and the rest is shown
            event = _Unreadable(
                f"Event {number} ({kind}) cannot be read ({describe_validation(exc)}); it may "
                "come from another version of autoagent, or be damaged. The file events.jsonl "
                "is plain JSON, one event per line."
            )
        if event is None:
            continue
        if started is None:
            if not isinstance(event, RunStarted):
                before_start.append(event)
                continue
            started = event
            _header(console, run_id, entry, event, problem)
            for early in before_start:
                _show(console, renderer, early)
        if isinstance(event, StepFinished):
            steps, spend = max(steps, event.step), event.spend
        elif isinstance(event, RunEnded):
            last_end, spend = event, event.spend
        _show(console, renderer, event)
    if started is None:
        raise JournalError(f"Run {run_id}'s event log does not say how it started.")
    renderer.close()

    console.rule()
    if state is not None:
        status, reason = str(state.get("status", "?")), str(state.get("reason", ""))
        steps = int(state.get("step", 0))
        spend = Spend.model_validate(state.get("spend") or {})
    else:
        status = last_end.status if last_end else "unknown (no checkpoint, and no end in the log)"
        reason = last_end.reason if last_end else ""
    console.print(
        Quoted([Text.assemble("Status: ", one_line(status, "bold"), " ", outside(reason))])
    )
    print_line(
        console,
        Text(f"Steps: {steps} · model calls: {calls} · ").append_text(format_spend(spend, None)),
    )


@dataclass(frozen=True)
class _Unreadable:
    """An event that cannot be read: said where it stands, and the rest is shown."""

    note: str


def _show(console: Console, renderer: Renderer, event: Any) -> None:
    if isinstance(event, _Unreadable):
        console.print(Quoted([labelled("NOTE: ", "bold yellow", outside(event.note))]))
    else:
        renderer.show(event)


def _header(
    console: Console, run_id: str, entry: dict[str, Any], first: RunStarted, problem: str
) -> None:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.get("time", 0)))
    console.print(labelled("Run ", "bold", one_line(run_id, "bold"), f" · started {started}"))
    if first.profile is not None:
        profile = first.profile
        console.print(
            Text.assemble("Agent: ", one_line(profile.name), ", ", one_line(profile.role))
        )
        for number, goal in enumerate(profile.goals, 1):
            console.print(Text.assemble(f"  Goal {number}: ", one_line(goal)))
    if problem:
        console.print(Quoted([labelled("NOTE: ", "bold yellow", outside(problem))]))
