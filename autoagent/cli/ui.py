"""The terminal: rich rendering of the loop's events (screen.py is the human at the keyboard).

Text from outside (the model, the endpoint, pages, files, programs, a saved run) reaches the
screen through one path, `outside`: escape sequences and control characters are removed, and
the result is a rich Text, which is never read as markup. What the agent proposes and what its
commands return is shown `Quoted`, behind a margin on every screen line, so that nothing in it
can pass for the approval prompt, which always starts a line of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, assert_never

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.status import Status
from rich.style import Style
from rich.text import Text

from ..agent.events import (
    Authorized,
    CaptureFailed,
    CommandDone,
    CommandStarted,
    CommandsWithdrawn,
    Event,
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
    Thinking,
)
from ..base.decision import Actor, DecisionKind
from ..base.interrupts import ctrl_c_held
from ..base.risk import Risk
from ..base.status import RunStatus, StepStatus
from ..base.text import strip_terminal_escapes, trim_middle
from ..model.pricing import Spend
from ..store.manifest import summary

SCREEN_OUTPUT_CHARS = 1500
PLAN_LINES = 12  # of a proposal's plan, on the screen
ROLE_LABELS = {
    "execution": "Thinking...",
    "task-creation": "Creating tasks...",
    "prioritization": "Prioritizing tasks...",
}
RISK_STYLES = {Risk.LOW: "green", Risk.MEDIUM: "yellow", Risk.HIGH: "bold red"}
MARGIN = "│ "
MARGIN_STYLE = Style(color="blue", bold=True)


def outside(value: Any, style: str = "") -> Text:
    """Text from outside, safe to show: no escape sequences, no control or invisible
    characters, and never parsed as markup. Every such string goes through here."""
    return Text(strip_terminal_escapes(str(value)), style=style)


def said(value: Any, style: str = "") -> Text:
    """`outside`, cut in the middle to what a screen shows: what the model says, however
    long it writes (its whole reply is in the run's event log)."""
    return outside(trim_middle(str(value), SCREEN_OUTPUT_CHARS), style)


def one_line(value: Any, style: str = "") -> Text:
    """`outside`, on one line: every run of white space becomes one space."""
    return Text(" ".join(outside(value).plain.split()), style=style)


def labelled(label: str, style: str, *values: Text | str | tuple[str, str]) -> Text:
    """Our own label in its style, then values (Text from `outside`, or our own words)."""
    return Text.assemble((label, style), *values)


class Quoted:
    """Lines of untrusted text behind a margin on every screen line, wrapped ones included."""

    def __init__(self, lines: Iterable[Text]) -> None:
        self.lines = list(lines)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - len(MARGIN), 10)
        narrower = options.update_width(width)
        for text in self.lines:
            plain = text.plain
            # Most lines fit: rendered as they are, without rich's (costly) wrapping.
            if len(plain) <= width and plain.isascii() and plain.isprintable():
                yield Segment(MARGIN, MARGIN_STYLE)
                yield from text.render(console)
                yield Segment.line()
                continue
            for line in console.render_lines(text, narrower, pad=False):
                yield Segment(MARGIN, MARGIN_STYLE)
                yield from line
                yield Segment.line()


def format_spend(spend: Spend, budget: float | None) -> Text:
    cost = f"${spend.cost:.4f}"
    if budget is not None:
        cost += f" of ${budget:.2f}"
    text = Text(f"{spend.total_tokens:,} tokens · {cost}")
    if spend.unpriced_models:
        # Model names come from the endpoint's replies.
        names = ", ".join(sorted(one_line(name).plain for name in spend.unpriced_models))
        text.append(f" (tokens only for {names})")
    return text


def print_line(console: Console, text: Text) -> None:
    """One screen line, cut rather than wrapped: for status lines holding outside words."""
    console.print(text, no_wrap=True, overflow="ellipsis", crop=True)


def end_style(status: RunStatus) -> str:
    """How the end of a run looks: finished, failed, or stopped (a limit, a human, Ctrl-C)."""
    match status:
        case RunStatus.FINISHED:
            return "bold green"
        case RunStatus.FAILED:
            return "bold red"
        case _:
            return "bold yellow"


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
        match event:
            case RunStarted():
                self._run_started(event)
            case Thinking():
                self._thinking(event)
            case Proposed():
                self._proposed(event)
            case Invalid():
                self._invalid(event)
            case Authorized():
                self._authorized(event)
            case CommandDone():
                self._command_done(event)
            case StepRecovered():
                self._step_recovered(event)
            case HumanAsked():
                self._human_asked(event)
            case TasksChanged():
                self._tasks_changed(event)
            case StepFinished():
                self._step_finished(event)
            case LoopWarning():
                self._loop_warning(event)
            case CommandsWithdrawn():
                self._commands_withdrawn(event)
            case CaptureFailed():
                self._quote(labelled("NOTE: ", "bold yellow", outside(event.problem)))
            case Rewound():
                self._rewound(event)
            case StepsUndone():
                self._steps_undone(event)
            case RunEnded():
                self._run_ended(event)
            case CommandStarted():
                pass  # its result is what is shown
            case _:
                assert_never(event)

    def close(self) -> None:
        self._stop_spinner()

    def progress(self, tokens: int) -> None:
        """While a reply streams in: how much of it has arrived."""
        if self._status is not None:
            self._status.update(Text(f"{self._label} {tokens} tokens"))

    def _stop_spinner(self) -> None:
        status, self._status = self._status, None
        if status is not None:
            with ctrl_c_held():  # a Ctrl-C halfway through would leave rich's hooks unpaired
                status.stop()

    def _quote(self, *lines: Text) -> None:
        self.console.print(Quoted(lines))

    def _run_started(self, event: RunStarted) -> None:
        verb = "Resuming" if event.resumed else "Starting"
        if self.replay:
            verb = "Resumed" if event.resumed else "Started"
            self.console.rule(verb)
        self.console.print(
            Text(f"{verb} run {one_line(event.run_id).plain}", "bold"),
            Text.assemble("  workspace: ", one_line(event.workspace)),
        )
        for notice in event.notices:
            self._quote(labelled("NOTE: ", "bold yellow", outside(notice)))

    def _thinking(self, event: Thinking) -> None:
        if self.replay or not self.console.is_terminal:
            return  # a spinner is for someone watching a terminal, not for a log
        self._label = ROLE_LABELS.get(event.role, "Working...")
        status = self.console.status(Text(self._label))
        with ctrl_c_held():  # started whole, or not at all
            status.start()
            self._status = status

    def _proposed(self, event: Proposed) -> None:
        proposal = event.record.proposal
        t = proposal.thoughts
        self.console.rule(Text(f"Step {event.record.step}"))
        plan = t.plan or ["(none)"]
        lines = [
            labelled("TASK: ", "bold cyan", said(proposal.task)),
            labelled("THOUGHTS: ", "bold yellow", said(t.text)),
            labelled("REASONING: ", "bold yellow", said(t.reasoning)),
            labelled("PLAN:", "bold yellow"),
            *(Text.assemble("  - ", said(line)) for line in plan[:PLAN_LINES]),
            *(
                [Text(f"  [... {len(plan) - PLAN_LINES} more ...]")]
                if len(plan) > PLAN_LINES
                else []
            ),
            labelled("CRITICISM: ", "bold yellow", said(t.criticism)),
        ]
        if t.speak:
            lines.append(labelled("SPEAK: ", "bold yellow", said(t.speak)))
        args = json.dumps(proposal.args, ensure_ascii=False)
        lines.append(
            labelled(
                "NEXT ACTION: ",
                "bold magenta",
                "COMMAND = ",
                one_line(proposal.command, "cyan"),
                " ARGUMENTS = ",
                outside(trim_middle(args, SCREEN_OUTPUT_CHARS)),
            )
        )
        self._quote(*lines)

    def _invalid(self, event: Invalid) -> None:
        self._quote(labelled("NOT RUN: ", "bold red", outside(event.record.invalid)))

    def _authorized(self, event: Authorized) -> None:
        decision = event.record.decision
        if decision is None:
            return
        if decision.reason is not None:
            self._quote(labelled("REFUSED: ", "bold red", outside(decision.reason)))
        elif decision.kind is DecisionKind.UNDO:
            self.console.print(Text("The command before is undone; this one was not run.", "bold"))
        elif decision.kind is DecisionKind.FEEDBACK:
            self.console.print(Text("Feedback sent to the agent; the command was not run.", "bold"))
            if self.replay:
                self._quote(labelled("FEEDBACK: ", "bold", outside(decision.text)))
        elif decision.by is Actor.PRE_APPROVED and not self.replay:
            self.console.print(Text("-=-=-=- Authorised in advance (y -N) -=-=-=-", "dim"))
        elif decision.by is Actor.HOOK and decision.approved and not self.replay:
            allowed = Text.assemble("Allowed by the hook ", one_line(decision.who))
            allowed.stylize("dim")
            self.console.print(allowed)
        if self.replay:
            line = Text.assemble(
                "Decision: ",
                one_line(decision.kind.value),
                *((f" for {decision.count} commands",) if decision.count > 1 else ()),
                " by ",
                one_line(decision.by.value),
                " (",
                one_line(decision.channel.value),
                *((", ", one_line(decision.who)) if decision.who else ()),
                *((", request ", one_line(decision.request)) if decision.request else ()),
                ")",
            )
            line.stylize("dim")
            self.console.print(line)

    def _command_done(self, event: CommandDone) -> None:
        result = event.record.result
        if result is None:
            return
        style = "bold green" if result.ok else "bold red"
        text = trim_middle(result.output, SCREEN_OUTPUT_CHARS)
        label = f"RESULT ({one_line(event.record.command).plain}):"
        self._quote(labelled(label, style, " ", outside(text)))
        if (changed := event.record.changes_text()) is not None:
            self.console.print(outside(changed))

    def _rewound(self, event: Rewound) -> None:
        if event.undo_of is not None:
            title = f"Rewind {event.undo_of} undone"
        else:
            title = f"Rewound to before step {event.to_step}"
        changed = summary(event.changes) if event.changes else "nothing to change"
        lines = [labelled(f"{title}: ", "bold magenta", outside(changed))]
        if event.lost:
            lost = ", ".join(event.lost)
            lines.append(labelled("Not brought back: ", "bold red", outside(lost)))
        self._quote(*lines)

    def _steps_undone(self, event: StepsUndone) -> None:
        steps = ", ".join(map(str, event.steps))
        what = f"step {steps}" if len(event.steps) == 1 else f"steps {steps}"
        why = f" ({event.reason})" if event.reason else ""
        self._quote(labelled("UNDONE: ", "bold magenta", what, outside(why)))

    def _step_recovered(self, event: StepRecovered) -> None:
        record = event.record
        command = one_line(record.command)
        if record.status is StepStatus.CUT:
            self._quote(
                labelled(
                    "CUT: ",
                    "bold yellow",
                    f"step {record.step}'s ",
                    command,
                    " was running when the run stopped; its result is unknown.",
                )
            )
        else:
            self._quote(
                labelled(
                    "RECOVERED: ",
                    "bold green",
                    f"step {record.step}'s ",
                    command,
                    " result, saved before the run stopped.",
                )
            )
            self._command_done(CommandDone(record))

    def _human_asked(self, event: HumanAsked) -> None:
        if not self.replay:
            return  # the screen (screen.py) shows the request and reads the answer
        what = "a question" if event.asks == "question" else f"whether {event.command} may run"
        line = Text.assemble(
            "Asked a human ", one_line(what), " (request ", one_line(event.request), ")"
        )
        line.stylize("dim")
        self.console.print(line)

    def _tasks_changed(self, event: TasksChanged) -> None:
        if event.added:
            self._quote(*(labelled("NEW TASK: ", "bold blue", said(t.text)) for t in event.added))

    def _step_finished(self, event: StepFinished) -> None:
        line = Text(f"Step {event.step} · ").append_text(format_spend(event.spend, event.budget))
        line.stylize("dim")
        print_line(self.console, line)

    def _loop_warning(self, event: LoopWarning) -> None:
        if event.escalated:
            self._quote(
                labelled(
                    "The agent is still looping: ",
                    "bold red",
                    outside(event.problem),
                    ". You will be asked before every command.",
                )
            )
        else:
            self._quote(
                labelled(
                    "Loop noticed: ", "bold yellow", outside(event.problem), "; told the agent."
                )
            )

    def _commands_withdrawn(self, event: CommandsWithdrawn) -> None:
        self._quote(labelled("NOTE: ", "bold yellow", outside(event.message)))

    def _run_ended(self, event: RunEnded) -> None:
        style = end_style(event.status)
        c = self.console
        c.rule()
        lines = [labelled(f"Run {event.status}: ", style, said(event.reason))]
        lines += [Text.assemble("  - ", said(line)) for line in event.goal_report]
        if event.files:
            shown = ", ".join(event.files[:20]) + (" ..." if len(event.files) > 20 else "")
            lines.append(Text.assemble("Files made or changed: ", outside(shown)))
        self._quote(*lines)
        c.print(Text(f"Steps: {event.steps}"))
        c.print(Text.assemble("Files: ", one_line(event.workspace)))
        c.print(Text.assemble("Run record: ", one_line(event.run_dir)))
        if event.findings:
            c.print(Text.assemble("Findings and plan: ", one_line(event.findings)))
        print_line(c, Text.assemble("Spent: ", format_spend(event.spend, None)))
