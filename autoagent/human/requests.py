"""Every decision a run needs from a human, as a record that any channel can answer.

A request is a file in its run's folder (`requests/ID.json`): the step, the command, its exact
arguments and their digest. Its answer is a second file (`requests/ID.answer.json`), put in
place with a hard link, which fails when one is already there: the first answer wins, and an
answer is whole when seen. The run waits on the answer file, so a human can decide from the
terminal, another shell, the web console or a notification's link, and a run killed while it
waits finds its request, and any answer given meanwhile, when it is resumed. Every answer is
also appended to the audit log, `AUTOAGENT_HOME/audit.jsonl`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import pwd
import re
import secrets
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..base.decision import Decision, Time
from ..base.errors import AutoAgentError
from ..base.files import sync_folder
from ..base.risk import Risk
from ..base.status import StepInFlight, StepStatus

log = logging.getLogger(__name__)

REQUESTS = "requests"
AUDIT_LOG = "audit.jsonl"
ANSWER_SUFFIX = ".answer.json"
LINK_LIFETIME = 24 * 3600.0  # a notification's links work this long, at most
ID_PATTERN = r"^[0-9a-f]{12}$"
USER_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?")  # as useradd takes them


class RequestError(AutoAgentError):
    """A request that cannot be answered as asked: unknown, answered, expired, changed."""


class Kind(StrEnum):
    APPROVAL = "approval"  # may this command run?
    QUESTION = "question"  # the agent's ask_user


class Request(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    run_id: str
    agent: str
    step: int
    kind: Kind
    command: str
    args: dict[str, Any]
    digest: str
    risk: Risk
    note: str = ""
    undo_step: int | None = None  # a step whose command the terminal's 'u' undoes instead
    created: Time
    expires: Time | None = None
    links_expire: Time
    link_hashes: dict[str, str] = Field(default_factory=dict)  # action -> its token's sha256

    @model_validator(mode="after")
    def _bound_to_its_arguments(self) -> Request:
        """A request whose digest is not that of its own command and arguments was changed
        after it was made: it is not a request of this run's."""
        if not hmac.compare_digest(self.digest.encode(), digest(self.command, self.args).encode()):
            raise ValueError("its digest is not that of its command and arguments")
        return self

    @property
    def question(self) -> str:
        return str(self.args.get("question", "")) if self.kind is Kind.QUESTION else ""

    def expired(self, now: float | None = None) -> bool:
        """Whether no answer counts any more at `now` (default: the time now)."""
        return self.expires is not None and _now(now) >= self.expires


class Answer(BaseModel):
    """A request's answer file: the decision, bound to the arguments the human was shown."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    digest: str

    @model_validator(mode="before")
    @classmethod
    def _from_the_first_shape(cls, data: Any) -> Any:
        """Read an answer file of an earlier version: the decision's fields at the top, its
        kind named `reply`, its person `by` and its request `request_id`."""
        if not isinstance(data, dict) or "reply" not in data:
            return data
        decision = {
            "kind": data.get("reply"),
            "text": data.get("text", ""),
            "count": data.get("count", 1),
            "who": data.get("by", ""),
            "channel": data.get("channel"),
            "request": data.get("request_id", ""),
            **({"at": data["at"]} if "at" in data else {}),
        }
        return {"decision": decision, "digest": data.get("digest")}


def digest(command: str, args: dict[str, Any]) -> str:
    """What an answer is bound to: the command and its exact arguments."""
    canonical = json.dumps({"command": command, "args": args}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def os_user() -> str:
    """Who answers from this process, for the audit trail: the name of its effective user,
    never $USER or $LOGNAME (anyone sets those). Under sudo, also the user sudo says it came
    from: "root (sudo from ana)"."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no name on this system (a container's)
        name = f"uid {uid}"
    sudo_from = os.environ.get("SUDO_USER", "")
    if sudo_from != name and USER_NAME.fullmatch(sudo_from):
        return f"{name} (sudo from {sudo_from})"
    return name


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


class RequestStore:
    """The requests of one run, in its folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.folder = run_dir / REQUESTS

    @property
    def home(self) -> Path:
        return self.run_dir.parent.parent

    def open(
        self,
        *,
        kind: Kind,
        run_id: str,
        agent: str,
        step: int,
        command: str,
        args: dict[str, Any],
        risk: Risk,
        note: str = "",
        undo_step: int | None = None,
        timeout: float | None = None,
        now: float | None = None,
    ) -> tuple[Request, dict[str, str]]:
        """The request for this step and these arguments: the one already made (a resumed
        run), or a new one, made at `now` (default: the time now). The links' tokens are
        returned only for a new request."""
        for request in self.requests():
            same = (request.step, request.kind, request.command) == (step, kind, command)
            if same and request.args == args:
                return request, {}
        now = _now(now)
        actions = ("approve", "deny") if kind is Kind.APPROVAL else ("answer",)
        tokens = {action: secrets.token_urlsafe(24) for action in actions}
        expires = now + timeout if timeout else None
        while True:  # an id already taken (in this run) is drawn again
            request = Request(
                id=secrets.token_hex(6),
                run_id=run_id,
                agent=agent,
                step=step,
                kind=kind,
                command=command,
                args=args,
                digest=digest(command, args),
                risk=risk,
                note=note,
                undo_step=undo_step,
                created=now,
                expires=expires,
                links_expire=min(expires or now + LINK_LIFETIME, now + LINK_LIFETIME),
                link_hashes={action: _hash(token) for action, token in tokens.items()},
            )
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                if _write_new(self.path_of(request.id), request.model_dump_json(indent=1)):
                    return request, tokens
            except OSError as exc:
                raise UnsavedRequest(request, exc, self.folder) from exc

    def path_of(self, request_id: str) -> Path:
        return self.folder / f"{request_id}.json"

    def intact(self, request: Request) -> bool:
        """Whether the request's file on disk is still the request."""
        try:
            return Request.model_validate_json(self.path_of(request.id).read_bytes()) == request
        except (OSError, ValidationError):
            return False

    def restore(self, request: Request) -> None:
        """Write the request's file again, whole (it was damaged, or never saved); OSError
        when it cannot be written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_new(self.path_of(request.id), request.model_dump_json(indent=1), replace=True)

    def damaged(self) -> dict[str, str]:
        """The request files of this run that cannot be read: id -> what is wrong."""
        found = {}
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            request_id = path.name.removesuffix(".json")
            if path.name.endswith(ANSWER_SUFFIX) or not re.fullmatch(ID_PATTERN, request_id):
                continue
            try:
                Request.model_validate_json(path.read_bytes())
            except OSError as exc:
                found[request_id] = exc.strerror or type(exc).__name__
            except ValidationError as exc:
                found[request_id] = exc.errors()[0]["msg"]
        return found

    def requests(self) -> list[Request]:
        """This run's requests, oldest first; unreadable files are skipped (`damaged` says
        which, and the channels say so; --debug's log has them too)."""
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            if path.name.endswith(ANSWER_SUFFIX):
                continue
            try:
                found.append(Request.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.info("skipped the unreadable request %s: %s", path, exc)
        return sorted(found, key=lambda r: r.created)

    def get(self, request_id: str) -> Request | None:
        try:
            return Request.model_validate_json(self.path_of(request_id).read_bytes())
        except (OSError, ValidationError):
            return None

    def cancel(self, request_id: str, answer: Answer) -> None:
        """Deny a request whose file cannot be read: its answer is bound to no arguments (a
        deny needs none); Answered-like RequestError when it has an answer already."""
        if not _write_new(self.folder / f"{request_id}{ANSWER_SUFFIX}", answer.model_dump_json()):
            raise RequestError(
                f"Request {request_id} was already answered; the first answer stands."
            )

    def answer_of(self, request_id: str) -> Answer | None:
        """The request's answer, None while it has none; UnreadableAnswer when its answer
        file cannot be read (damaged, or written by another version)."""
        path = self.folder / f"{request_id}{ANSWER_SUFFIX}"
        try:
            answer = Answer.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            raise UnreadableAnswer(
                f"Request {request_id} has an answer that cannot be read ({path}: "
                f"{type(exc).__name__}); the run treats it as a deny."
            ) from exc
        if answer.decision.request != request_id:
            raise UnreadableAnswer(
                f"The answer file of request {request_id} answers request "
                f"{answer.decision.request}; the run treats it as a deny."
            )
        return answer

    def waits_for(self, request: Request, in_flight: StepInFlight | None) -> bool:
        """Whether `in_flight`, the run's step under way as its checkpoint says, is the one
        that made `request`: false once the run went on without it (say, resumed in a mode
        that decided without a human). A command waits for approval before it runs; a
        question is asked while ask_user runs."""
        status = StepStatus.AWAITING if request.kind is Kind.APPROVAL else StepStatus.RUNNING
        return in_flight == StepInFlight(request.step, status)

    def answer(self, request: Request, answer: Answer) -> Answer:
        """Record `answer` unless the request has one: then raise Answered with it."""
        path = self.folder / f"{request.id}{ANSWER_SUFFIX}"
        if not _write_new(path, answer.model_dump_json(indent=1)):
            existing = self.answer_of(request.id)  # UnreadableAnswer if it cannot be read
            if existing is None:  # removed in between: nothing to stand against
                return self.answer(request, answer)
            raise Answered(request, existing)
        _audit(self.home, request, answer)
        return answer


class UnsavedRequest(RequestError):
    """A request that could not be written to disk (say, the disk is full): only the run's
    own terminal can answer it."""

    def __init__(self, request: Request, exc: OSError, folder: Path) -> None:
        super().__init__(
            f"Request {request.id} could not be saved in {folder} ({exc.strerror or exc}), "
            "so no other channel can see it"
        )
        self.request = request


class UnreadableAnswer(RequestError):
    """A request's answer file exists but cannot be read: answered, but not usably."""


class Answered(RequestError):
    """The request already has an answer; the first one stands."""

    def __init__(self, request: Request, answer: Answer) -> None:
        super().__init__(
            f"Request {request.id} was already answered: {describe_answer(answer)}. "
            "The first answer stands."
        )
        self.request = request
        self.answer = answer


def describe_answer(answer: Answer) -> str:
    decision = answer.decision
    who = f" by {decision.who}" if decision.who else ""
    when = time.strftime("%H:%M:%S", time.localtime(decision.at))
    text = f' ("{decision.text}")' if decision.text else ""
    return f"{decision.kind.value}{text}{who} through the {decision.channel.value} at {when}"


def _write_new(path: Path, text: str, *, replace: bool = False) -> bool:
    """Create `path` with `text`, durably and whole, unless it exists (then False); with
    `replace`, put it in place of the file there."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            if replace:
                os.replace(temporary, path)
            else:
                os.link(temporary, path)
        except FileExistsError:
            return False
        sync_folder(path.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _audit(home: Path, request: Request, answer: Answer) -> None:
    """Append one line to the audit log; a log that cannot be written is logged, not fatal:
    the answer itself is on disk beside its request."""
    decision = answer.decision
    entry = {
        "at": decision.at,
        "request": request.id,
        "run_id": request.run_id,
        "agent": request.agent,
        "step": request.step,
        "kind": request.kind.value,
        "command": request.command,
        "args": request.args,
        "digest": request.digest,
        "reply": decision.kind.value,
        "text": decision.text,
        "count": decision.count,
        "by": decision.who,
        "channel": decision.channel.value,
    }
    append_audit(home, entry)


def append_audit(home: Path, entry: dict[str, Any]) -> None:
    """Append `entry` to the audit log in `home` (a hook's run, an answer)."""
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        fd = os.open(home / AUDIT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not append to the audit log in %s: %s", home, exc)


def unanswered(store: RequestStore, request: Request) -> bool:
    """Whether `request` has no answer yet; one that cannot be read is an answer (a deny)."""
    try:
        return store.answer_of(request.id) is None
    except UnreadableAnswer:
        return False  # answered, badly: the run treats it as a deny


def check_link(request: Request, action: str, token: str, now: float | None = None) -> None:
    """Refuse a notification link whose token is wrong, used up or expired."""
    expected = request.link_hashes.get(action, "")
    if not expected or not hmac.compare_digest(expected.encode(), _hash(token).encode()):
        raise RequestError("This link is not valid for this request.")
    if _now(now) >= request.links_expire:
        raise RequestError("This link has expired; nothing was decided.")
