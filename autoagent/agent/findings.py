"""What a read-only run leaves: its findings and plan, written in the run's folder at its end."""

from __future__ import annotations

import logging
from pathlib import Path

from ..base.text import strip_terminal_escapes, trim_middle
from .state import RunState

FILE_NAME = "findings.md"
STEP_CHARS = 2000  # of each recent step's result

log = logging.getLogger(__name__)


def write_findings(state: RunState, run_dir: Path) -> str | None:
    """Write `findings.md` in `run_dir`: the goals, how the run ended, what the results taught,
    and the open tasks as the plan; its path, or None (logged) if it cannot be written."""
    path = run_dir / FILE_NAME
    try:
        path.write_text(findings_text(state), encoding="utf-8")
    except OSError as exc:
        log.warning("the findings could not be written in %s: %s", run_dir, exc)
        return None
    return str(path)


def findings_text(state: RunState) -> str:
    lines = [f"# Findings of run {state.run_id} (read-only)", "", "## Goals", ""]
    lines += [f"{number}. {goal}" for number, goal in enumerate(state.profile.goals, start=1)]
    lines += ["", "## How the run ended", "", f"{state.status}: {_one_line(state.reason)}"]
    lines += [f"- {_one_line(line)}" for line in state.goal_report]
    lines += ["", "## What was learned", ""]
    done = state.tasks.done
    learned = [f"- {_one_line(t.text)}: {_one_line(t.result or '')}" for t in done]
    learned += [f"- {_one_line(summary)}" for summary in state.earlier]
    for record in state.recent:
        if record.result is not None:
            result = trim_middle(_clean(record.result.output), STEP_CHARS)
            learned += [
                f"- Step {record.step}, {record.command} {_one_line(record.args_text)}:",
                "",
                *(f"  {line}" for line in result.splitlines()),
                "",
            ]
    lines += learned or ["Nothing yet: no command ran."]
    lines += ["", "## Plan: what is left to do", ""]
    open_tasks = state.tasks.open
    lines += [f"{n}. {_one_line(t.text)}" for n, t in enumerate(open_tasks, start=1)]
    if not open_tasks:
        lines.append("No open tasks are left.")
    return "\n".join(lines).rstrip() + "\n"


def _clean(text: str) -> str:
    return strip_terminal_escapes(text)


def _one_line(text: str) -> str:
    return " ".join(_clean(text).split())
