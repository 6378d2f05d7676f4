"""`autoagent show`: a run's audit trail, made readable."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console

from .pricing import Spend
from .text import trim_middle
from .ui import clean, format_spend

RESULT_CHARS = 300


def render_run(console: Console, state: dict[str, Any], events: list[dict[str, Any]]) -> None:
    profile = state.get("profile", {})
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.get("started", 0)))
    console.print(f"[bold]Run {clean(state.get('run_id', '?'))}[/] · started {started}")
    console.print(f"Agent: {clean(profile.get('name', '?'))}, {clean(profile.get('role', ''))}")
    for number, goal in enumerate(profile.get("goals", []), 1):
        console.print(f"  Goal {number}: {clean(goal)}")
    console.print(
        f"Status: [bold]{clean(state.get('status', '?'))}[/] {clean(state.get('reason', ''))}"
    )
    for line in state.get("goal_report", []):
        console.print(f"  - {clean(line)}")

    for event in events:
        kind = event.get("event")
        step = event.get("step", "")
        if kind == "Proposed":
            console.rule(f"Step {step}")
            console.print(f"Task: {clean(event.get('task', ''))}")
            thought = (event.get("thoughts") or {}).get("text", "")
            console.print(f"Thought: {clean(trim_middle(thought, RESULT_CHARS))}")
            args = json.dumps(event.get("args", {}), ensure_ascii=False)
            console.print(
                f"Command: {clean(event.get('command'))} {clean(trim_middle(args, RESULT_CHARS))}"
            )
        elif kind == "Authorized":
            detail = event.get("feedback") or event.get("refusal") or ""
            decision, by = clean(event.get("decision")), clean(event.get("by"))
            console.print(f"Authorization: {decision} by {by} {clean(detail)}")
        elif kind == "Invalid":
            console.print(f"Not run: {clean(event.get('message', ''))}")
        elif kind == "CommandDone":
            output = trim_middle(str(event.get("output", "")), RESULT_CHARS)
            console.print(f"Result{'' if event.get('ok') else ' (error)'}: {clean(output)}")
        elif kind == "LoopWarning":
            console.print(f"Loop warning: {clean(event.get('problem', ''))}")
        elif kind == "RunStarted" and event.get("resumed"):
            console.rule("Resumed")
    console.rule()
    if files := state.get("files"):
        console.print(f"Files made or changed: {clean(', '.join(files))}")
    spend = Spend.from_dict(
        state.get("spend", {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0, "calls": 0})
    )
    console.print(
        f"Steps: {state.get('step', 0)} · model calls: {spend.calls} · {format_spend(spend, None)}"
    )
