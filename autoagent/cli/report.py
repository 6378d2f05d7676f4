"""`autoagent show`: a run's audit trail, replayed through the terminal renderer.

Everything shown comes from the run's event log, so a run whose checkpoint is lost can still
be shown; the checkpoint, when there is one, adds the latest status."""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from ..agent.events import RunEnded, RunStarted, StepFinished, from_data
from ..base.errors import JournalError, describe_validation
from ..model.pricing import Spend
from .ui import Quoted, Renderer, format_spend, labelled, one_line, outside, print_line


def render_run(
    console: Console,
    run_id: str,
    entries: list[dict[str, Any]],
    state: dict[str, Any] | None,
    problem: str = "",
) -> None:
    """Show a run from its journal `entries`, and its checkpoint `state` if it has one."""
    events = []
    unreadable: list[str] = []
    calls = 0
    for number, entry in enumerate(entries, 1):
        kind = str(entry.get("event"))
        if kind == "model_call":
            calls += 1
            continue
        try:
            event = from_data(kind, entry)
        except ValidationError as exc:  # one damaged event: said, and the rest is shown
            unreadable.append(
                f"Event {number} ({kind}) cannot be read ({describe_validation(exc)}); it may "
                "come from another version of autoagent, or be damaged. The file events.jsonl "
                "is plain JSON, one event per line."
            )
            continue
        if event is not None:
            events.append(event)
    starts = [e for e in events if isinstance(e, RunStarted)]
    if not starts:
        raise JournalError(f"Run {run_id}'s event log does not say how it started.")
    first = starts[0]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entries[0].get("time", 0)))
    console.print(labelled("Run ", "bold", one_line(run_id, "bold"), f" · started {started}"))
    if first.profile is not None:
        profile = first.profile
        console.print(
            Text.assemble("Agent: ", one_line(profile.name), ", ", one_line(profile.role))
        )
        for number, goal in enumerate(profile.goals, 1):
            console.print(Text.assemble(f"  Goal {number}: ", one_line(goal)))
    for note in [problem, *unreadable] if problem else unreadable:
        console.print(Quoted([labelled("NOTE: ", "bold yellow", outside(note))]))

    renderer = Renderer(console, replay=True)
    for event in events:
        renderer.show(event)
    renderer.close()

    console.rule()
    ends = [e for e in events if isinstance(e, RunEnded)]
    if state is not None:
        status, reason = str(state.get("status", "?")), str(state.get("reason", ""))
        steps = int(state.get("step", 0))
        spend = Spend.model_validate(state.get("spend") or {})
    else:
        last = ends[-1] if ends else None
        status = last.status if last else "unknown (no checkpoint, and no end in the log)"
        reason = last.reason if last else ""
        steps = max((e.step for e in events if isinstance(e, StepFinished)), default=0)
        spends = [e.spend for e in events if isinstance(e, StepFinished | RunEnded)]
        spend = spends[-1] if spends else Spend()
    console.print(
        Quoted([Text.assemble("Status: ", one_line(status, "bold"), " ", outside(reason))])
    )
    print_line(
        console,
        Text(f"Steps: {steps} · model calls: {calls} · ").append_text(format_spend(spend, None)),
    )
