"""The human at the keyboard: each request shown on the terminal, and the answer typed there.

What a request quotes from outside reaches the screen through ui.py's one path, `outside`, and
the prompt always starts a line of its own."""

from __future__ import annotations

import json
import os
import select
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

from ..base.decision import Channel
from ..base.risk import Risk
from ..base.text import trim_middle
from ..human.authorize import prompt_for
from ..human.requests import Answer, Kind, Request, describe_answer
from .ui import RISK_STYLES, SCREEN_OUTPUT_CHARS, Quoted, labelled, one_line, outside, said


class TerminalScreen:
    """The terminal as the desk (desk.Desk) uses it: shows each request and reads the
    answer typed here, while the desk watches for an answer from another channel.

    `interactive` is False in a continuous run: nobody is expected at the keyboard, so the
    screen says how to answer from elsewhere and reads nothing."""

    def __init__(
        self, console: Console, spill_dir: Path | None = None, *, interactive: bool = True
    ) -> None:
        self.console = console
        # Where arguments too long for the screen are saved in full, for the human to read.
        self.spill_dir = spill_dir
        self.interactive = interactive
        self._typed = b""  # a line being typed, until its newline
        self._prompt = ""  # the prompt waiting at the end of the screen, if any

    def show_request(self, request: Request) -> None:
        if request.kind is Kind.QUESTION:
            self.console.print(
                Quoted([labelled("The agent asks: ", "bold cyan", said(request.question))])
            )
        else:
            self._show_command(request)
        if not self.interactive:
            self._show_elsewhere(request)
            return
        hint = Text.assemble(
            f"Request {request.id}: also `autoagent approve|deny {request.id}` from another shell,"
            " or `autoagent serve`."
            if request.kind is Kind.APPROVAL
            else f"Request {request.id}: also `autoagent answer {request.id} TEXT`.",
            style="dim",
        )
        self.console.print(hint)
        if drop_typed_ahead():
            self._typed = b""
        approval = request.kind is Kind.APPROVAL
        self._prompt = prompt_for(request.undo_step) if approval else "Your answer: "
        self.console.print(Text(self._prompt), end="")

    def note(self, text: str) -> None:
        if self._prompt:
            self.console.print()  # end the prompt's line; it is shown again below
        self.console.print(labelled("Note: ", "bold yellow", outside(text)))
        if self._prompt:
            self.console.print(Text(self._prompt), end="")

    def _show_command(self, request: Request) -> None:
        style = RISK_STYLES.get(Risk(request.risk), "bold")
        args = json.dumps(request.args, ensure_ascii=False)
        self.console.print(
            Quoted(
                [
                    labelled(
                        f"{request.risk} risk",
                        style,
                        ": ",
                        one_line(request.command),
                        " ",
                        outside(trim_middle(args, SCREEN_OUTPUT_CHARS)),
                    )
                ]
            )
        )
        if len(args) > SCREEN_OUTPUT_CHARS and self.spill_dir is not None:
            path = self.spill_dir / f"step-{request.step}-{request.command}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(request.args, ensure_ascii=False, indent=1), "utf-8")
            self.console.print(
                labelled("Arguments cut for the screen; in full: ", "bold", one_line(path))
            )
        if request.note:
            self.console.print(Text(request.note, "bold red"))

    def _show_elsewhere(self, request: Request) -> None:
        if request.kind is Kind.QUESTION:
            how = f"`autoagent answer {request.id} TEXT`"
        else:
            how = (
                f"`autoagent approve {request.id}` or `autoagent deny {request.id} --feedback TEXT`"
            )
        until = (
            time.strftime(" until %H:%M:%S (then denied)", time.localtime(request.expires))
            if request.expires is not None
            else ""
        )
        self.console.print(
            Text.assemble(
                ("Waiting for a human", "bold yellow"),
                f"{until}: {how} from any shell, or the web console (`autoagent serve`).",
            )
        )

    def read(self, seconds: float) -> str | None:
        if not self.interactive:
            time.sleep(seconds)
            return None
        if b"\n" not in self._typed:  # else a line piped in with the one before is waiting
            fd = sys.stdin.fileno()
            ready, _, _ = select.select([fd], [], [], seconds)
            if not ready:
                return None
            data = os.read(fd, 4096)
            if not data and not self._typed:
                self.console.print()
                raise EOFError
            self._typed += data or b"\n"  # the input's last line may have no newline
            if b"\n" not in self._typed:
                return None
        line, _, self._typed = self._typed.partition(b"\n")
        self._prompt = ""
        return line.decode("utf-8", errors="replace")

    def show_answer(self, request: Request, answer: Answer) -> None:
        self._prompt = ""
        if self.interactive:
            self.console.print()  # end the prompt's line
        self.console.print(
            labelled(
                "Answered elsewhere: "
                if answer.decision.channel is not Channel.TIMEOUT
                else "Timed out: ",
                "bold",
                outside(describe_answer(answer)),
            )
        )


def drop_typed_ahead() -> bool:
    """Forget what was typed before the question was shown: it answered something else
    (perhaps a lookalike prompt printed by a file or a page). True when the input is a
    terminal; answers piped in are all meant as answers, in order, and are kept."""
    try:
        import termios
    except ImportError:  # not a POSIX terminal
        return False
    try:
        if sys.stdin.isatty():
            termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
            return True
    except (OSError, ValueError, termios.error):  # stdin closed or not a terminal after all
        pass
    return False
