"""The run's side of a decision: each one asked becomes a request (requests.py), and the first
answer from any channel, the terminal or elsewhere, is the decision."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..base.decision import Channel, Decision, DecisionKind
from ..base.errors import CommandError, InputEnded
from ..base.risk import Risk
from .authorize import Proposal, parse_answer
from .requests import (
    Answer,
    Answered,
    Kind,
    Request,
    RequestError,
    RequestStore,
    UnreadableAnswer,
    UnsavedRequest,
    os_user,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25


class Screen(Protocol):
    """The terminal, as the desk uses it; ui.py implements it."""

    interactive: bool  # someone may type an answer here

    def show_request(self, request: Request) -> None: ...

    def read(self, seconds: float) -> str | None:
        """A line typed within `seconds`, or None; EOFError when the input has ended."""
        ...

    def show_answer(self, request: Request, answer: Answer) -> None:
        """Show an answer that came through another channel, or a timeout."""
        ...

    def note(self, text: str) -> None:
        """Say something about the request itself (its file damaged, or not saved)."""
        ...


class Desk:
    """The run's human: each decision becomes a request; the first answer from any channel
    is the decision. Implements authorize.Human. `clock` tells the time its requests are
    made and expire by (a test passes its own)."""

    def __init__(
        self,
        store: RequestStore,
        screen: Screen,
        *,
        run_id: str,
        agent: str,
        can_answer: bool,
        timeout: float | None = None,
        notify: Callable[[Request, dict[str, str]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.screen = screen
        self.run_id = run_id
        self.agent = agent
        self.can_answer = can_answer
        self.timeout = timeout
        self.notify = notify
        self.clock = clock
        self._off_disk: set[str] = set()  # requests whose file could not be written (said)

    def authorize(self, proposal: Proposal) -> Decision:
        request = self._open(
            Kind.APPROVAL,
            proposal.step,
            proposal.name,
            proposal.args,
            proposal.risk,
            proposal.note,
            proposal.undo_step,
        )
        stop = Decision(kind=DecisionKind.STOP)
        try:
            answer = self._wait(request)
        except EOFError:
            answer = self._typed(request, stop)
        except KeyboardInterrupt:
            if not self.screen.interactive:
                raise  # the run is interrupted; the request stays pending for its resume
            answer = self._typed(request, stop)  # Ctrl-C at the prompt: stop
        return answer.decision

    def ask(self, question: str, step: int) -> str:
        request = self._open(Kind.QUESTION, step, "ask_user", {"question": question}, Risk.LOW)
        try:
            answer = self._wait(request)
        except EOFError:  # nobody will ever answer here; Ctrl-C goes up and stops the run
            raise InputEnded(
                "The input ended while the agent asked a question; "
                "`autoagent resume` continues the run."
            ) from None
        decision = answer.decision
        if decision.kind is DecisionKind.ANSWER:
            return decision.text
        if decision.kind is DecisionKind.EXPIRED:
            raise CommandError(f"{decision.text} Decide for yourself and say what you assumed.")
        reason = f": {decision.text}" if decision.text else "."
        raise CommandError(f"The human declined to answer{reason}")

    def _open(
        self,
        kind: Kind,
        step: int,
        command: str,
        args: dict[str, Any],
        risk: Risk,
        note: str = "",
        undo_step: int | None = None,
    ) -> Request:
        try:
            request, tokens = self.store.open(
                kind=kind,
                run_id=self.run_id,
                agent=self.agent,
                step=step,
                command=command,
                args=args,
                risk=risk,
                note=note,
                undo_step=undo_step,
                timeout=self.timeout,
                now=self.clock(),
            )
        except UnsavedRequest as exc:
            if not self.screen.interactive:  # no channel at all could answer it
                raise RequestError(
                    f"{exc}, and nobody answers at the terminal of a continuous run: free some "
                    "space, then `autoagent resume` asks again."
                ) from exc
            self.screen.note(f"{exc}: answer here.")
            self._off_disk.add(exc.request.id)
            return exc.request
        if tokens and self.notify is not None:
            self.notify(request, tokens)
        return request

    def _wait(self, request: Request) -> Answer:
        self.screen.show_request(request)
        while True:
            self._keep_on_disk(request)
            if (answer := self._answer_elsewhere(request)) is not None:
                self.screen.show_answer(request, answer)
                return answer
            if request.expired(self.clock()):
                return self._expire(request)
            line = self.screen.read(POLL_SECONDS)
            if line is None:
                continue
            answer = self._from_terminal(request, line)
            if answer is not None:
                return answer

    def _keep_on_disk(self, request: Request) -> None:
        """Write the request's file again when it was damaged (or could not be saved), so the
        other channels can answer it; say once when that fails, and when it works again."""
        if self.store.intact(request):
            return
        try:
            self.store.restore(request)
        except OSError as exc:
            if request.id not in self._off_disk:
                self._off_disk.add(request.id)
                where = "answer here" if self.screen.interactive else "only a deny reaches the run"
                self.screen.note(
                    f"Request {request.id}'s file is damaged and cannot be written again "
                    f"({exc.strerror or exc}): {where}; `autoagent deny {request.id}` cancels it."
                )
            return
        if request.id in self._off_disk:
            self._off_disk.discard(request.id)
            self.screen.note(f"Request {request.id} is saved now: every channel can answer it.")
        else:
            self.screen.note(f"Request {request.id}'s file was damaged; the run wrote it again.")

    def _answer_elsewhere(self, request: Request) -> Answer | None:
        """The answer on disk, if any; one that cannot be read, or that was given for other
        arguments than the ones this run holds, counts as a deny."""
        try:
            answer = self.store.answer_of(request.id)
        except UnreadableAnswer as exc:
            return self._refused(request, str(exc))
        if answer is not None and answer.decision.kind is DecisionKind.DENY:
            return answer  # a deny needs no arguments: one given to a damaged request counts
        if answer is not None and not hmac.compare_digest(
            answer.digest.encode(), request.digest.encode()
        ):
            return self._refused(
                request,
                f"The answer to request {request.id} was given for other arguments than these; "
                "the run treats it as a deny.",
            )
        return answer

    def _refused(self, request: Request, reason: str) -> Answer:
        log.warning("%s", reason)
        refused = Decision(kind=DecisionKind.DENY, text=reason, who="autoagent")
        return self._bound(request, refused)

    def _from_terminal(self, request: Request, line: str) -> Answer | None:
        if request.kind is Kind.QUESTION:
            if not line.strip():  # an empty answer: ask again, as the other channels do
                self.screen.show_request(request)
                return None
            return self._typed(request, Decision(kind=DecisionKind.ANSWER, text=line.strip()))
        decision = parse_answer(line, undo_step=request.undo_step)
        if decision is None:  # an empty line: ask again
            self.screen.show_request(request)
            return None
        return self._typed(request, decision)

    def _typed(self, request: Request, decision: Decision) -> Answer:
        typed = decision.model_copy(update={"who": os_user(), "channel": Channel.TERMINAL})
        return self._record(request, self._bound(request, typed))

    def _expire(self, request: Request) -> Answer:
        what = "answered" if request.kind is Kind.QUESTION else "decided"
        seconds = (request.expires or request.created) - request.created
        expired = Decision(
            kind=DecisionKind.EXPIRED,
            text=f"No one {what} within {seconds:g} seconds (--approval-timeout).",
            who="autoagent",
            channel=Channel.TIMEOUT,
        )
        answer = self._record(request, self._bound(request, expired))
        self.screen.show_answer(request, answer)
        return answer

    def _bound(self, request: Request, decision: Decision) -> Answer:
        """`decision` as the answer to `request`, for the arguments it holds."""
        bound = decision.model_copy(update={"request": request.id})
        return Answer(decision=bound, digest=request.digest)

    def _record(self, request: Request, answer: Answer) -> Answer:
        try:
            return self.store.answer(request, answer)
        except Answered:  # another channel was first, by a hair
            first = self._answer_elsewhere(request) or answer
            self.screen.show_answer(request, first)
            return first
        except OSError as exc:  # the disk is full, say: the run goes on with what it heard
            self.screen.note(
                f"The answer to request {request.id} could not be saved "
                f"({exc.strerror or exc}); the run goes on with it."
            )
            return answer
