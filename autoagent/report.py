"""`autoagent show`: a run's audit trail, made readable."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.text import Text

from .pricing import Spend
from .text import trim_middle
from .ui import Quoted, format_spend, labelled, one_line, outside, print_line

RESULT_CHARS = 300


def render_run(console: Console, state: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Everything in a saved run came from outside this process: all of it goes through
    `outside`, and what the agent or its commands wrote is quoted."""
    profile = state.get("profile", {})
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.get("started", 0)))
    run_id = one_line(state.get("run_id", "?"), "bold")
    console.print(labelled("Run ", "bold", run_id, f" · started {started}"))
    name, role = one_line(profile.get("name", "?")), one_line(profile.get("role", ""))
    console.print(Text.assemble("Agent: ", name, ", ", role))
    for number, goal in enumerate(profile.get("goals", []), 1):
        console.print(Text.assemble(f"  Goal {number}: ", one_line(goal)))
    lines = [
        Text.assemble(
            "Status: ",
            one_line(state.get("status", "?"), "bold"),
            " ",
            outside(state.get("reason", "")),
        )
    ]
    lines += [Text.assemble("  - ", outside(line)) for line in state.get("goal_report", [])]
    console.print(Quoted(lines))

    for event in events:
        kind = event.get("event")
        step = event.get("step", "")
        if kind == "Proposed":
            console.rule(one_line(f"Step {step}"))
            thought = trim_middle(str((event.get("thoughts") or {}).get("text", "")), RESULT_CHARS)
            args = json.dumps(event.get("args", {}), ensure_ascii=False)
            console.print(
                Quoted(
                    [
                        Text.assemble("Task: ", outside(event.get("task", ""))),
                        Text.assemble("Thought: ", outside(thought)),
                        Text.assemble(
                            "Command: ",
                            one_line(event.get("command")),
                            " ",
                            outside(trim_middle(args, RESULT_CHARS)),
                        ),
                    ]
                )
            )
        elif kind == "Authorized":
            detail = event.get("feedback") or event.get("refusal") or ""
            line = Text.assemble(
                "Authorization: ",
                one_line(event.get("decision")),
                " by ",
                one_line(event.get("by")),
                " ",
                outside(detail),
            )
            console.print(Quoted([line]))
        elif kind == "Invalid":
            console.print(Quoted([Text.assemble("Not run: ", outside(event.get("message", "")))]))
        elif kind == "CommandDone":
            output = trim_middle(str(event.get("output", "")), RESULT_CHARS)
            label = f"Result{'' if event.get('ok') else ' (error)'}: "
            console.print(Quoted([Text.assemble(label, outside(output))]))
        elif kind == "LoopWarning":
            problem = outside(event.get("problem", ""))
            console.print(Quoted([Text.assemble("Loop warning: ", problem)]))
        elif kind == "RunStarted" and event.get("resumed"):
            console.rule(Text("Resumed"))
    console.rule()
    if files := state.get("files"):
        console.print(Quoted([Text.assemble("Files made or changed: ", outside(", ".join(files)))]))
    spend = Spend.from_dict(
        state.get("spend", {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0, "calls": 0})
    )
    print_line(
        console,
        Text(f"Steps: {state.get('step', 0)} · model calls: {spend.calls} · ").append_text(
            format_spend(spend, None)
        ),
    )
