"""The commands a human uses from any shell to answer a run: approvals, approve, deny, answer.

They only record decisions (requests.py); the run that asked applies them. Imports stay
inside the commands, so `autoagent --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ..base.decision import DecisionKind

# What `approvals --json` gives of each request.
LISTED = {"id", "run_id", "agent", "step", "kind", "command", "args", "digest", "risk", "created"}
LISTED |= {"expires"}

RequestId = Annotated[str, typer.Argument(help="The request, as `autoagent approvals` lists it.")]


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _console_err() -> Console:
    from rich.console import Console

    return Console(highlight=False, stderr=True)


def _home():  # type: ignore[no-untyped-def]
    from ..base.settings import load_settings

    return load_settings({}).home


def approvals(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, one per request.")
    ] = False,
) -> None:
    """List the requests of every run that wait for a human."""
    import time

    from rich.table import Table
    from rich.text import Text

    from .inbox import damaged, damaged_sentence, pending
    from .ui import labelled, one_line, outside

    home = _home()
    found = pending(home)
    for broken in damaged(home):  # on stderr: the list itself stays what it was
        _console_err().print(labelled("Note: ", "bold yellow", outside(damaged_sentence(*broken))))
    if as_json:
        for item in found:
            line = item.request.model_dump(mode="json", include=LISTED)
            # ASCII only: no control character from a request reaches the terminal raw.
            sys.stdout.write(json.dumps(line, ensure_ascii=True) + "\n")
        return
    console = _console()
    if not found:
        console.print("No request waits for a human.")
        return
    table = Table("id", "run", "step", "kind", "command and arguments", "risk", "waiting")
    now = time.time()
    for item in found:
        request = item.request
        what = (
            outside(request.question)
            if request.question
            else Text.assemble(
                one_line(request.command),
                " ",
                outside(json.dumps(request.args, ensure_ascii=False)),
            )
        )
        table.add_row(
            one_line(request.id),
            one_line(request.run_id),
            Text(str(request.step)),
            Text(request.kind.value),
            what,
            one_line(request.risk),
            Text(f"{int(now - request.created)} s"),
        )
    console.print(table)


def approve(request_id: RequestId) -> None:
    """Let the command of a request run."""
    from ..base.decision import DecisionKind

    _decide(request_id, DecisionKind.APPROVE, "")


def deny(
    request_id: RequestId,
    feedback: Annotated[
        str,
        typer.Option("--feedback", "-f", help="Why, or what to do instead; the agent reads it."),
    ] = "",
) -> None:
    """Refuse the command of a request (or decline a question); the run goes on without it."""
    from ..base.decision import DecisionKind

    _decide(request_id, DecisionKind.DENY, feedback)


def answer(
    request_id: RequestId,
    text: Annotated[str, typer.Argument(help="Your answer to the agent's question.")],
) -> None:
    """Answer a question the agent asked (ask_user)."""
    from ..base.decision import DecisionKind

    if not text.strip():
        raise typer.BadParameter("The answer is empty.")
    _decide(request_id, DecisionKind.ANSWER, text)


def _decide(request_id: str, kind: DecisionKind, text: str) -> None:
    from rich.text import Text

    from ..base.decision import Channel, DecisionKind
    from ..human.requests import describe_answer, os_user
    from .inbox import DamagedRequest, decide, find
    from .ui import labelled, one_line, outside

    console = _console()
    home = _home()
    try:
        request, _ = find(home, request_id)
    except DamagedRequest:
        if kind is not DecisionKind.DENY:
            raise
        given = decide(home, request_id, kind, text=text, by=os_user(), channel=Channel.CLI)
        console.print(labelled("Recorded: ", "bold green", outside(describe_answer(given))))
        return
    given = decide(home, request.id, kind, text=text, by=os_user(), channel=Channel.CLI)
    subject = (
        outside(request.question)
        if request.question
        else Text.assemble(
            one_line(request.command), " ", outside(json.dumps(request.args, ensure_ascii=False))
        )
    )
    console.print(
        Text.assemble(
            (f"Request {request.id} (run ", "bold"),
            one_line(request.run_id, "bold"),
            (f", step {request.step}): ", "bold"),
            subject,
        )
    )
    console.print(labelled("Recorded: ", "bold green", outside(describe_answer(given))))
