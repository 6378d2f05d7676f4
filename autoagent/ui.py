"""The terminal: rich rendering of the loop's events, and the human at the keyboard.

Everything shown passes through `strip_terminal_escapes`, so neither a web page nor the model
can repaint the screen or fake the approval prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from .authorize import PROMPT, Decision, Proposal, Stop, parse_answer
from .commands.base import Risk
from .events import (
    Authorized,
    CommandDone,
    Event,
    Invalid,
    LoopWarning,
    Proposed,
    RunEnded,
    RunStarted,
    StepFinished,
    StepRecovered,
    TasksChanged,
    Thinking,
)
from .pricing import Spend
from .record import DecisionKind, StepStatus
from .text import strip_terminal_escapes, trim_middle

SCREEN_OUTPUT_CHARS = 1500
ROLE_LABELS = {
    "execution": "Thinking...",
    "task-creation": "Creating tasks...",
    "prioritization": "Prioritizing tasks...",
}
RISK_STYLES = {Risk.LOW: "green", Risk.MEDIUM: "yellow", Risk.HIGH: "bold red"}


def clean(text: Any) -> str:
    """Safe to print: no escape sequences, no rich markup."""
    return escape(strip_terminal_escapes(str(text)))


def format_spend(spend: Spend, budget: float | None) -> str:
    cost = f"${spend.cost:.4f}"
    if budget is not None:
        cost += f" of ${budget:.2f}"
    if spend.unpriced_models:
        cost += " (tokens only for " + ", ".join(sorted(spend.unpriced_models)) + ")"
    return f"{spend.total_tokens:,} tokens · {cost}"


class Renderer:
    """Shows events as they come; the only place, with TerminalHuman, that prints.

    With `replay`, it shows a recorded run (`autoagent show`): no spinners, and every
    decision is written out."""

    def __init__(self, console: Console, *, replay: bool = False) -> None:
        self.console = console
        self.replay = replay
        self._status: Status | None = None
        self._label = ""

    def show(self, event: Event) -> None:
        self._stop_spinner()
        handler = getattr(self, "_" + type(event).__name__, None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        self._stop_spinner()

    def progress(self, tokens: int) -> None:
        """While a reply streams in: how much of it has arrived."""
        if self._status is not None:
            self._status.update(f"{self._label} {tokens} tokens")

    def _stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _RunStarted(self, event: RunStarted) -> None:
        verb = "Resuming" if event.resumed else "Starting"
        if self.replay:
            verb = "Resumed" if event.resumed else "Started"
            self.console.rule(verb)
        self.console.print(
            f"[bold]{verb} run {clean(event.run_id)}[/]  workspace: {clean(event.workspace)}"
        )
        for notice in event.notices:
            self.console.print(f"[bold yellow]NOTE:[/] {clean(notice)}")

    def _Thinking(self, event: Thinking) -> None:
        if self.replay:
            return
        self._label = ROLE_LABELS.get(event.role, "Working...")
        self._status = self.console.status(self._label)
        self._status.start()

    def _Proposed(self, event: Proposed) -> None:
        c, proposal = self.console, event.record.proposal
        t = proposal.thoughts
        c.rule(f"Step {event.record.step}")
        c.print(f"[bold cyan]TASK:[/] {clean(proposal.task)}")
        c.print(f"[bold yellow]THOUGHTS:[/] {clean(t.text)}")
        c.print(f"[bold yellow]REASONING:[/] {clean(t.reasoning)}")
        c.print("[bold yellow]PLAN:[/]")
        for line in t.plan or ["(none)"]:
            c.print(f"  - {clean(line)}")
        c.print(f"[bold yellow]CRITICISM:[/] {clean(t.criticism)}")
        if t.speak:
            c.print(f"[bold yellow]SPEAK:[/] {clean(t.speak)}")
        args = json.dumps(proposal.args, ensure_ascii=False)
        c.print(
            f"[bold magenta]NEXT ACTION:[/] COMMAND = [cyan]{clean(proposal.command)}[/] "
            f"ARGUMENTS = {clean(trim_middle(args, SCREEN_OUTPUT_CHARS))}"
        )

    def _Invalid(self, event: Invalid) -> None:
        self.console.print(f"[bold red]NOT RUN:[/] {clean(event.record.invalid)}")

    def _Authorized(self, event: Authorized) -> None:
        verdict = event.record.verdict
        if verdict is None:
            return
        if verdict.refusal:
            self.console.print(f"[bold red]REFUSED:[/] {clean(verdict.refusal)}")
        elif verdict.decision is DecisionKind.FEEDBACK:
            self.console.print("[bold]Feedback sent to the agent; the command was not run.[/]")
            if self.replay:
                self.console.print(f"[bold]FEEDBACK:[/] {clean(verdict.feedback)}")
        elif verdict.by == "pre-approved" and not self.replay:
            self.console.print("[dim]-=-=-=- Authorised in advance (y -N) -=-=-=-[/]")
        if self.replay:
            self.console.print(
                f"[dim]Decision: {clean(verdict.decision.value)} by {clean(verdict.by.value)} "
                f"({clean(verdict.channel)})[/]"
            )

    def _CommandDone(self, event: CommandDone) -> None:
        result = event.record.result
        if result is None:
            return
        style = "bold green" if result.ok else "bold red"
        text = trim_middle(result.output, SCREEN_OUTPUT_CHARS)
        self.console.print(f"[{style}]RESULT ({clean(event.record.command)}):[/] {clean(text)}")

    def _StepRecovered(self, event: StepRecovered) -> None:
        record = event.record
        if record.status is StepStatus.CUT:
            self.console.print(
                f"[bold yellow]CUT:[/] step {record.step}'s {clean(record.command)} was "
                "running when the run stopped; its result is unknown."
            )
        else:
            self.console.print(
                f"[bold green]RECOVERED:[/] step {record.step}'s {clean(record.command)} "
                "result, saved before the run stopped."
            )
            self._CommandDone(CommandDone(record))

    def _TasksChanged(self, event: TasksChanged) -> None:
        for task in event.added:
            self.console.print(f"[bold blue]NEW TASK:[/] {clean(task.text)}")

    def _StepFinished(self, event: StepFinished) -> None:
        self.console.print(f"[dim]Step {event.step} · {format_spend(event.spend, event.budget)}[/]")

    def _LoopWarning(self, event: LoopWarning) -> None:
        if event.escalated:
            self.console.print(
                f"[bold red]The agent is still looping:[/] {clean(event.problem)}. "
                "You will be asked before every command."
            )
        else:
            self.console.print(
                f"[bold yellow]Loop noticed:[/] {clean(event.problem)}; told the agent."
            )

    def _RunEnded(self, event: RunEnded) -> None:
        style = {"finished": "bold green", "failed": "bold red"}.get(event.status, "bold yellow")
        c = self.console
        c.rule()
        c.print(f"[{style}]Run {event.status}:[/] {clean(event.reason)}")
        for line in event.goal_report:
            c.print(f"  - {clean(line)}")
        c.print(f"Steps: {event.steps}")
        if event.files:
            shown = ", ".join(event.files[:20]) + (" ..." if len(event.files) > 20 else "")
            c.print(f"Files made or changed: {clean(shown)}")
        c.print(f"Files: {clean(event.workspace)}")
        self.console.print(f"Run record: {clean(event.run_dir)}")
        self.console.print(f"Spent: {format_spend(event.spend, None)}")


class TerminalHuman:
    """Asks the person at the keyboard. Ctrl-C or end of input at the prompt stops the run."""

    channel = "terminal"

    def __init__(self, console: Console, spill_dir: Path | None = None) -> None:
        self.console = console
        # Where arguments too long for the screen are saved in full, for the human to read.
        self.spill_dir = spill_dir

    def authorize(self, proposal: Proposal) -> Decision:
        style = RISK_STYLES[proposal.risk]
        args = json.dumps(proposal.args, ensure_ascii=False)
        self.console.print(
            f"[{style}]{proposal.risk.value} risk[/]: {clean(proposal.name)} "
            f"{clean(trim_middle(args, SCREEN_OUTPUT_CHARS))}"
        )
        if len(args) > SCREEN_OUTPUT_CHARS and self.spill_dir is not None:
            path = self.spill_dir / f"step-{proposal.step}-{proposal.name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(proposal.args, ensure_ascii=False, indent=1), "utf-8")
            self.console.print(f"[bold]Arguments cut for the screen; in full:[/] {clean(path)}")
        while True:
            try:
                answer = self.console.input(PROMPT)
            except (KeyboardInterrupt, EOFError):
                self.console.print()
                return Stop()
            decision = parse_answer(answer)
            if decision is not None:
                return decision

    def ask(self, question: str) -> str:
        self.console.print(f"[bold cyan]The agent asks:[/] {clean(question)}")
        try:
            return self.console.input("Your answer: ")
        except EOFError:  # nobody at the keyboard; Ctrl-C goes up and stops the run
            self.console.print()
            return ""
