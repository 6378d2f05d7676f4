"""The requests of every run, as the channels other than a run's own terminal see them: the
`approvals`/`approve`/`deny`/`answer` commands and the web console."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..base.decision import Channel, Decision, DecisionKind
from ..base.files import runs_dir
from ..human.requests import (
    ID_PATTERN,
    Answer,
    Answered,
    Kind,
    Request,
    RequestError,
    RequestStore,
    unanswered,
)
from ..store.runs import read_run, read_runs


@dataclass(frozen=True)
class Pending:
    request: Request
    store: RequestStore


def all_requests(home: Path) -> Iterator[tuple[Request, RequestStore]]:
    for run in sorted(read_runs(home), key=lambda run: run.run_id):
        store = RequestStore(run.folder)
        for request in store.requests():
            yield request, store


def waited_for(store: RequestStore, request: Request) -> bool:
    """Whether the request's run still waits for it, as its checkpoint says now."""
    return store.waits_for(request, read_run(store.run_dir).current)


def pending(home: Path) -> list[Pending]:
    """Requests of every run that no one has answered yet and that their run still waits
    for (also a run killed while waiting: its resume waits again), oldest first. Only the
    requests of runs whose checkpoint has a step in flight are read."""
    found = []
    for run in read_runs(home):
        if run.current is None:
            continue
        store = RequestStore(run.folder)
        found += [
            Pending(request, store)
            for request in store.requests()
            if store.waits_for(request, run.current)
            and not request.expired()
            and unanswered(store, request)
        ]
    return sorted(found, key=lambda p: p.request.created)


def damaged(home: Path) -> list[tuple[str, RequestStore, str]]:
    """Request files that cannot be read in runs with a step in flight: (id, store, what is
    wrong). Their command cannot be shown, so they can be denied, not approved."""
    found = []
    for run in read_runs(home):
        if run.current is not None:
            store = RequestStore(run.folder)
            found += [(rid, store, what) for rid, what in store.damaged().items()]
    return found


def damaged_sentence(request_id: str, store: RequestStore, what: str) -> str:
    return (
        f"Request {request_id} of run {store.run_dir.name} cannot be read ({what} in "
        f"{store.path_of(request_id)}), so its command cannot be shown or approved: a run "
        f"that still waits writes it again within a second, so try again; "
        f"`autoagent deny {request_id}` cancels it."
    )


def find(home: Path, request_id: str) -> tuple[Request, RequestStore]:
    request_id = request_id.strip()
    found = []
    if re.fullmatch(ID_PATTERN, request_id):
        found = [(r, store) for r, store in all_requests(home) if r.id == request_id]
    if len(found) > 1:  # never guess which one the human meant
        runs = ", ".join(r.run_id for r, _ in found)
        raise RequestError(f"Request {request_id} names requests of several runs ({runs}).")
    if not found and (broken := [d for d in damaged(home) if d[0] == request_id]):
        raise DamagedRequest(damaged_sentence(*broken[0]), broken[0][1])
    if not found:
        raise RequestError(
            f"No request {request_id!r} in {runs_dir(home)}: `autoagent approvals` lists the "
            "pending ones."
        )
    return found[0]


def decide(
    home: Path,
    request_id: str,
    kind: DecisionKind,
    *,
    text: str = "",
    by: str,
    channel: Channel,
    shown_digest: str | None = None,
) -> Answer:
    """Answer a request from another channel than the run's terminal.

    `shown_digest` is the digest of the arguments the human was shown; when it is not the
    request's, nothing is decided. `by` is the person: an OS user, or a web client's address.
    A request whose file cannot be read can only be denied."""
    try:
        request, store = find(home, request_id)
    except DamagedRequest as exc:
        if kind is not DecisionKind.DENY:
            raise
        return _cancel(exc.store, request_id.strip(), text, by=by, channel=channel)
    if (existing := store.answer_of(request.id)) is not None:
        raise Answered(request, existing)
    if not waited_for(store, request):
        raise RequestError(
            f"Request {request.id} is no longer waited for: its run went on without it."
        )
    if request.expired():
        at = time.strftime("%H:%M:%S", time.localtime(request.expires))
        raise RequestError(f"Request {request.id} expired at {at}; the run treats it as denied.")
    shown = (shown_digest or "").encode("utf-8", errors="replace")
    if shown_digest is not None and not hmac.compare_digest(shown, request.digest.encode()):
        raise RequestError(
            f"Request {request.id}'s arguments are not the ones you were shown; "
            "nothing was decided."
        )
    if request.kind is Kind.QUESTION and kind is DecisionKind.APPROVE:
        raise RequestError(
            f"Request {request.id} is a question: answer it with "
            f"`autoagent answer {request.id} TEXT`."
        )
    if request.kind is Kind.APPROVAL and kind is DecisionKind.ANSWER:
        raise RequestError(
            f"Request {request.id} asks for an approval: `autoagent approve {request.id}` or "
            f"`autoagent deny {request.id}`."
        )
    decision = Decision(kind=kind, text=text, who=by, channel=channel, request=request.id)
    try:
        return store.answer(request, Answer(decision=decision, digest=request.digest))
    except OSError as exc:
        raise unsaved_answer(request.id, store, exc) from exc


class DamagedRequest(RequestError):
    """A request of a waiting run whose file cannot be read."""

    def __init__(self, message: str, store: RequestStore) -> None:
        super().__init__(message)
        self.store = store


class UnsavedAnswer(RequestError):
    """An answer that could not be written (say, the disk is full): nothing was decided."""


def unsaved_answer(request_id: str, store: RequestStore, exc: OSError) -> UnsavedAnswer:
    return UnsavedAnswer(
        f"The answer to request {request_id} could not be saved in {store.folder} "
        f"({exc.strerror or exc}); nothing was decided."
    )


def _cancel(
    store: RequestStore, request_id: str, text: str, *, by: str, channel: Channel
) -> Answer:
    decision = Decision(
        kind=DecisionKind.DENY, text=text, who=by, channel=channel, request=request_id
    )
    answer = Answer(decision=decision, digest="")
    try:
        store.cancel(request_id, answer)
    except OSError as exc:
        raise unsaved_answer(request_id, store, exc) from exc
    return answer
