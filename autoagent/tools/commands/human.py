"""Commands that talk to the human or end the run."""

from __future__ import annotations

from ...base.risk import Risk
from .base import CommandContext, command


@command(Risk.LOW, asks_human=True, read_only=True)
def ask_user(ctx: CommandContext, question: str) -> str:
    """Ask the human a question and get their answer; use it when stuck or needing a decision."""
    answer = ctx.ask_human(question, ctx.step).strip()
    return f"The human answered: {answer}" if answer else "The human gave no answer."


@command(Risk.LOW, ends_run=True, read_only=True)
def finish(ctx: CommandContext, reason: str, goal_report: list[str] | None = None) -> str:
    """End the run when the goals are met or cannot be met. Give the reason, and in goal_report
    one line per goal: met or not met, with its evidence (a file, a fact)."""
    return reason
