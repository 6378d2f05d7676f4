"""The web console's answers: what each page and form of `autoagent serve` gets, and the
rules a request must meet first (its token, its host, its origin). console.py serves them over
HTTP; nothing here reads a socket.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..base.decision import Channel, DecisionKind
from ..base.errors import JournalError
from ..human.requests import (
    Answer,
    Answered,
    Kind,
    Request,
    RequestError,
    RequestStore,
    UnreadableAnswer,
    check_link,
    describe_answer,
)
from ..store.journal import RunJournal
from ..store.runs import read_runs
from . import inbox
from .console_rewind import rewind, rewind_page
from .pages import render
from .timeline import Timeline, pending_of
from .timeline_cache import TimelineCache

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
MAX_BODY = 64 * 1024
STATIC = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
REQUEST_ID = re.compile(r"[0-9a-f]{1,64}")
BACK = re.compile(r"/(?!/)[A-Za-z0-9_./-]*")  # a path of this console to return to
# What a link or a form may decide, by its action (links too).
REPLIES = {
    kind.value: kind for kind in (DecisionKind.APPROVE, DecisionKind.DENY, DecisionKind.ANSWER)
}
# The console's forms also send feedback: not run, the text goes to the agent (as typed at the
# terminal).
FORM_REPLIES = {**REPLIES, "feedback": DecisionKind.FEEDBACK}


# The fleet's runs as Temporal has them (fleet/client.py RunState), or why they cannot be had.
FleetLister = Callable[[], tuple[list[Any], str]]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class Console:
    """The console's pages and rules, apart from the HTTP plumbing (so tests can call it)."""

    def __init__(
        self,
        home: Path,
        token: str,
        port: int,
        loopback: bool,
        rewind_file_limit: int = 50 << 20,
        fleet: FleetLister | None = None,
    ) -> None:
        self.home = home
        self.fleet = fleet  # the fleet's runs from Temporal, when this data folder has one
        self.rewind_file_limit = rewind_file_limit  # files a rewind's capture keeps
        self.token = token
        self.port = port
        self.loopback = loopback
        self.cookie = f"autoagent_console_{port}"  # cookies are shared across ports
        self.csrf = hmac.new(token.encode(), b"autoagent-console-csrf", hashlib.sha256).hexdigest()
        self.timelines = TimelineCache()

    # Who may ask.

    def has_session(self, cookies: dict[str, str]) -> bool:
        given = cookies.get(self.cookie, "").encode("utf-8", errors="replace")
        return hmac.compare_digest(given, self.token.encode())

    def token_ok(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.token.encode())

    def host_ok(self, host: str) -> bool:
        """A console on loopback answers only to loopback names: a page whose own name was
        made to point at 127.0.0.1 (DNS rebinding) is refused."""
        if not self.loopback:
            return True
        name, _, port = host.rpartition(":")
        if port != str(self.port):
            return False
        name = name.strip("[]")
        if name == "localhost":
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    @staticmethod
    def same_origin(headers: Any, host: str) -> bool:
        """An Origin or Referer, when the browser sends one, must name this console.
        `Origin: null` carries no host: a page under Referrer-Policy no-referrer (this
        console's) sends it, and the cookie and the CSRF field decide then."""
        origin = headers.get("Origin")
        if origin and origin != "null":
            return urlsplit(origin).netloc == host
        referer = headers.get("Referer")
        if referer:
            return urlsplit(referer).netloc == host
        return True

    def session_cookie(self) -> str:
        return f"{self.cookie}={self.token}; HttpOnly; SameSite=Strict; Path=/"

    # Pages.

    def runs_page(self) -> Response:
        waiting: dict[str, int] = {}
        for item in inbox.pending(self.home):
            waiting[item.request.run_id] = waiting.get(item.request.run_id, 0) + 1
        return self._page(
            "runs.html",
            title="Runs",
            runs=read_runs(self.home),
            fleet=self.fleet() if self.fleet is not None else None,
            waiting=waiting,
            pending_total=sum(waiting.values()),
            home=str(self.home),
        )

    def run_page(self, run_id: str, query: dict[str, str]) -> Response:
        journal = self._journal(run_id)
        if isinstance(journal, Response):
            return journal
        flash, flash_error = self._flash(query)
        before = query.get("before", "")
        version = self.timelines.version(journal)
        timeline = self._timeline(journal, int(before) if before.isdigit() else None)
        if isinstance(timeline, Response):
            return timeline
        newest = timeline.last_item == timeline.total_items
        return self._page(
            "run.html",
            title=f"Run {run_id}",
            timeline=timeline,
            version=version,
            live_url=f"/runs/{run_id}/timeline" if newest else None,
            rewind_links=True,
            flash=flash,
            flash_error=flash_error,
            **self._requests_context(f"/runs/{run_id}", run_id=run_id),
        )

    def timeline_fragment(self, run_id: str, query: dict[str, str]) -> Response:
        """The newest page of the run's timeline; nothing (204) when the page that asks was
        built from the same version of the run."""
        journal = self._journal(run_id)
        if isinstance(journal, Response):
            return journal
        version = self.timelines.version(journal)
        if query.get("since") == version:
            return Response(HTTPStatus.NO_CONTENT)
        timeline = self._timeline(journal)
        if isinstance(timeline, Response):
            return timeline
        return self._page(
            "_timeline.html",
            timeline=timeline,
            version=version,
            live_url=f"/runs/{run_id}/timeline",
            rewind_links=True,
        )

    def requests_fragment(self, run_id: str | None) -> Response:
        back = f"/runs/{run_id}" if run_id else "/approvals"
        if run_id is not None and isinstance(self._journal(run_id), Response):
            return self.message("No such run", f"No run {run_id!r}.", HTTPStatus.NOT_FOUND)
        return self._page("_requests.html", **self._requests_context(back, run_id=run_id))

    def approvals_page(self, query: dict[str, str]) -> Response:
        flash, flash_error = self._flash(query)
        return self._page(
            "approvals.html",
            title="Waiting for you",
            flash=flash,
            flash_error=flash_error,
            **self._requests_context("/approvals", run_id=None),
        )

    def static(self, name: str) -> Response:
        if name not in STATIC:
            return self.message("Not found", "There is no such page.", HTTPStatus.NOT_FOUND)
        body = resources.files("autoagent.cli").joinpath(f"static/{name}").read_bytes()
        return Response(HTTPStatus.OK, body, STATIC[name])

    # Rewinds (console_rewind.py).

    def rewind_page(self, run_id: str, query: dict[str, str]) -> Response:
        journal = self._journal(run_id)
        return journal if isinstance(journal, Response) else rewind_page(self, journal, query)

    def rewind(self, run_id: str, form: dict[str, str]) -> Response:
        journal = self._journal(run_id)
        return journal if isinstance(journal, Response) else rewind(self, journal, form)

    # Decisions.

    def decide(self, request_id: str, form: dict[str, str], client: str) -> Response:
        """A POST from the console's own forms; the caller checked the session and CSRF."""
        back = form.get("back", "/approvals")
        if not BACK.fullmatch(back):
            back = "/approvals"
        kind = FORM_REPLIES.get(form.get("action", ""))
        if kind is None:
            return self.message(
                "Nothing decided", "Unknown action.", HTTPStatus.BAD_REQUEST, back=back
            )
        given = self._decide(request_id, kind, form, client, Channel.WEB, back)
        if isinstance(given, Response):
            return given
        return Response(HTTPStatus.SEE_OTHER, headers={"Location": f"{back}?answered={request_id}"})

    def link_page(self, request_id: str, action: str, token: str) -> Response:
        """A notification's link: what it would decide, and a button to decide it."""
        found = self._linked(request_id, action, token)
        if isinstance(found, Response):
            return found
        titles = {"approve": "Approve?", "deny": "Deny?", "answer": "Answer the agent"}
        return self._page(
            "link.html", title=titles[action], request=found, action=action, token=token
        )

    def link_decide(
        self, request_id: str, action: str, form: dict[str, str], client: str
    ) -> Response:
        found = self._linked(request_id, action, form.get("token", ""))
        if isinstance(found, Response):
            return found
        given = self._decide(request_id, REPLIES[action], form, client, Channel.LINK, None)
        if isinstance(given, Response):
            return given
        return self.message("Recorded", f"Recorded: {describe_answer(given)}.", HTTPStatus.OK)

    def _linked(self, request_id: str, action: str, token: str) -> Request | Response:
        if action not in REPLIES or not REQUEST_ID.fullmatch(request_id):
            return self.message("Not found", "There is no such link.", HTTPStatus.NOT_FOUND)
        try:
            request, store = inbox.find(self.home, request_id)
        except RequestError as exc:
            return self.message("Not found", str(exc), HTTPStatus.NOT_FOUND)
        try:
            check_link(request, action, token)
        except RequestError as exc:
            return self.message("Link refused", str(exc), HTTPStatus.FORBIDDEN)
        try:
            answer = store.answer_of(request.id)
        except UnreadableAnswer:
            return self.message(
                "This request's answer cannot be read",
                f"Request {request.id} of run {request.run_id} has an answer whose file is "
                "damaged (or written by another version of autoagent), so this link can decide "
                "nothing. The run treats that answer as a deny: the command does not run and "
                f"the agent is told. `autoagent show {request.run_id}` tells what the run did "
                "next; if the agent asks again, a new request comes with new links.",
                HTTPStatus.CONFLICT,
            )
        if answer is not None:
            return self.message(
                "Already answered",
                str(Answered(request, answer)),
                HTTPStatus.CONFLICT,
            )
        return request

    def _decide(
        self,
        request_id: str,
        kind: DecisionKind,
        form: dict[str, str],
        client: str,
        channel: Channel,
        back: str | None,
    ) -> Answer | Response:
        text = form.get("text", "").strip()
        try:
            request, _ = inbox.find(self.home, request_id)
        except RequestError as exc:
            return self.message("Nothing decided", str(exc), HTTPStatus.NOT_FOUND, back=back)
        if kind in (DecisionKind.ANSWER, DecisionKind.FEEDBACK) and not text:
            empty = (
                "The answer is empty." if kind is DecisionKind.ANSWER else "The feedback is empty."
            )
            return self.message("Nothing decided", empty, HTTPStatus.BAD_REQUEST, back=back)
        if request.kind is Kind.APPROVAL and kind is DecisionKind.APPROVE:
            text = ""
        try:
            return inbox.decide(
                self.home,
                request.id,
                kind,
                text=text,
                by=client,
                channel=channel,
                shown_digest=form.get("digest", ""),
            )
        except inbox.UnsavedAnswer as exc:  # a full disk, say: nothing wrong with the request
            status = HTTPStatus.INSUFFICIENT_STORAGE
            return self.message("Nothing decided", str(exc), status, back=back)
        except RequestError as exc:
            return self.message("Nothing decided", str(exc), HTTPStatus.CONFLICT, back=back)

    # Helpers.

    def _requests_context(self, back: str, *, run_id: str | None) -> dict[str, Any]:
        if run_id is None:
            requests = [item.request for item in inbox.pending(self.home)]
            url = "/approvals/requests"
        else:
            requests = pending_of(RequestStore(self._journal_dir(run_id)))
            url = f"/runs/{run_id}/requests"
        return {
            "requests": requests,
            "requests_url": url,
            "csrf": self.csrf,
            "back": back,
            "show_run": run_id is None,
        }

    def _journal_dir(self, run_id: str) -> Path:
        return RunJournal.open(self.home, run_id).run_dir

    def _journal(self, run_id: str) -> RunJournal | Response:
        if not RUN_ID.fullmatch(run_id):
            return self.message("No such run", "There is no such run.", HTTPStatus.NOT_FOUND)
        try:
            return RunJournal.open(self.home, run_id)
        except JournalError as exc:
            return self.message("No such run", str(exc), HTTPStatus.NOT_FOUND)

    def _timeline(self, journal: RunJournal, before: int | None = None) -> Timeline | Response:
        try:
            return self.timelines.timeline(journal, before)
        except JournalError as exc:
            return self.message("This run cannot be shown", str(exc), HTTPStatus.CONFLICT)

    def _flash(self, query: dict[str, str]) -> tuple[str, bool]:
        """After a decision: what was recorded, read back from the request's answer."""
        request_id = query.get("answered", "")
        if not REQUEST_ID.fullmatch(request_id):
            return "", False
        try:
            request, store = inbox.find(self.home, request_id)
        except RequestError as exc:
            return str(exc), True
        try:
            answer = store.answer_of(request.id)
        except RequestError as exc:
            return str(exc), True
        if answer is None:
            return f"Request {request.id} has no answer yet.", True
        return f"Request {request.id}: {describe_answer(answer)}.", False

    def page(self, template: str, **context: Any) -> Response:
        return self._page(template, **context)

    def _page(self, template: str, **context: Any) -> Response:
        return Response(HTTPStatus.OK, render(template, **context).encode("utf-8"))

    def message(
        self, title: str, message: str, status: int, *, back: str | None = None
    ) -> Response:
        error = status >= 400
        body = render("message.html", title=title, message=message, back=back, error=error)
        return Response(status, body.encode("utf-8"))
