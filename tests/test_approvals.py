"""Requests for a human as records: one answer wins, bound to the arguments shown, audited."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autoagent.base.decision import Channel, Decision, DecisionKind
from autoagent.base.errors import CommandError
from autoagent.base.risk import Risk
from autoagent.cli.inbox import decide, find, pending
from autoagent.human.authorize import Proposal
from autoagent.human.desk import Desk
from autoagent.human.requests import (
    AUDIT_LOG,
    Answer,
    Answered,
    Kind,
    Request,
    RequestError,
    RequestStore,
    check_link,
)


def store_in(home: Path, run_id: str = "20261122-000000-abcd") -> RequestStore:
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    return RequestStore(run_dir)


def waiting_at(store: RequestStore, step: int, status: str = "awaiting") -> None:
    """The run's checkpoint, as the loop saves it while a step waits for a human."""
    current = {"step": step, "status": status}
    checkpoint = {"run_id": store.run_dir.name, "status": "running", "current": current}
    (store.run_dir / "checkpoint.json").write_text(json.dumps(checkpoint))


def open_request(store: RequestStore, step: int = 3, **args: object) -> tuple[Request, dict]:
    waiting_at(store, step)
    return store.open(
        kind=Kind.APPROVAL,
        run_id=store.run_dir.name,
        agent="Scout",
        step=step,
        command="execute_shell",
        args=args or {"command_line": "rm -rf build"},
        risk="high",
    )


class Clock:
    """The time for a desk, which moves only when its screen waits."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class QuietScreen:
    """A screen nobody types on; records what the desk showed. With a clock, its waits for
    a line pass on that clock alone, at once."""

    interactive = False

    def __init__(self, lines: list[str] | None = None, clock: Clock | None = None) -> None:
        self.lines = list(lines or [])
        self.clock = clock
        self.shown: list[Request] = []
        self.first_shown = threading.Event()
        self.answers: list[Answer] = []
        self.notes: list[str] = []

    def show_request(self, request: Request) -> None:
        self.shown.append(request)
        self.first_shown.set()

    def read(self, seconds: float) -> str | None:
        if self.lines:
            return self.lines.pop(0)
        if self.clock is not None:
            self.clock.now += seconds
        else:
            time.sleep(min(seconds, 0.05))
        return None

    def show_answer(self, request: Request, answer: Answer) -> None:
        self.answers.append(answer)

    def note(self, text: str) -> None:
        self.notes.append(text)


def put_answer(store: RequestStore, request: Request, text: str) -> None:
    """An answer file written by hand from another thread: whole, then renamed in, as every
    channel writes answers, so that the desk, which polls, never reads it half written."""
    path = store.folder / f"{request.id}.answer.json"
    path.with_suffix(".tmp").write_text(text)
    path.with_suffix(".tmp").rename(path)


def once_shown(screen: QuietScreen, act: Callable[[Request], object]) -> None:
    """Act on the first request the desk shows, from another thread, as another channel."""

    def wait_then_act() -> None:
        if screen.first_shown.wait(30):
            act(screen.shown[0])

    threading.Thread(target=wait_then_act).start()


def desk_on(store: RequestStore, screen: QuietScreen, timeout: float | None = None) -> Desk:
    return Desk(
        store,
        screen,
        run_id=store.run_dir.name,
        agent="Scout",
        can_answer=True,
        timeout=timeout,
        clock=screen.clock or time.time,
    )


PROPOSAL = Proposal(3, "execute_shell", {"command_line": "rm -rf build"}, Risk.HIGH)


def test_the_same_step_and_arguments_reopen_the_same_request(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    first, tokens = open_request(store)
    again, no_tokens = open_request(store)
    other, _ = open_request(store, command_line="rm -rf dist")
    assert again.id == first.id and tokens and not no_tokens
    assert other.id != first.id  # other arguments are another question
    assert [p.request.id for p in pending(tmp_path)] == [first.id, other.id]


def test_the_first_answer_wins_and_the_second_is_told_who_was_first(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    request, _ = open_request(store)
    given = decide(
        tmp_path, request.id, DecisionKind.DENY, text="not now", by="ana", channel=Channel.CLI
    )
    with pytest.raises(Answered) as late:
        decide(tmp_path, request.id, DecisionKind.APPROVE, by="127.0.0.1", channel=Channel.WEB)
    assert "deny" in str(late.value) and "ana" in str(late.value)
    assert store.answer_of(request.id) == given
    assert pending(tmp_path) == []


def _race(home: str, request_id: str, reply: str, results: multiprocessing.Queue) -> None:
    try:
        decide(Path(home), request_id, DecisionKind(reply), by=reply, channel=Channel.CLI)
        results.put("won")
    except Answered:
        results.put("lost")


def test_two_processes_answering_at_once_exactly_one_wins(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    for round in range(5):
        request, _ = open_request(store, step=round)
        results: multiprocessing.Queue = multiprocessing.Queue()
        racers = [
            multiprocessing.Process(target=_race, args=(str(tmp_path), request.id, reply, results))
            for reply in ("approve", "deny")
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        assert sorted(results.get(timeout=5) for _ in racers) == ["lost", "won"]
        winner = store.answer_of(request.id)
        assert winner is not None
    audit = (tmp_path / AUDIT_LOG).read_text().splitlines()
    assert len(audit) == 5  # one line per answer that counted


def test_an_answer_is_bound_to_the_arguments_it_was_shown(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    request, _ = open_request(store)
    with pytest.raises(RequestError, match="not the ones you were shown"):
        decide(
            tmp_path,
            request.id,
            DecisionKind.APPROVE,
            by="a",
            channel=Channel.WEB,
            shown_digest="0" * 64,
        )
    assert store.answer_of(request.id) is None
    decide(
        tmp_path,
        request.id,
        DecisionKind.APPROVE,
        by="a",
        channel=Channel.WEB,
        shown_digest=request.digest,
    )


def test_unknown_expired_and_mismatched_requests_are_refused(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    with pytest.raises(RequestError, match="No request 'nope'"):
        find(tmp_path, "nope")
    expiring, _ = store.open(
        kind=Kind.APPROVAL,
        run_id=store.run_dir.name,
        agent="Scout",
        step=2,
        command="delete_file",
        args={"path": "a"},
        risk="high",
        timeout=60,
        now=time.time() - 61,  # made a minute ago
    )
    waiting_at(store, 2)
    with pytest.raises(RequestError, match="expired"):
        decide(tmp_path, expiring.id, DecisionKind.APPROVE, by="a", channel=Channel.CLI)
    waiting_at(store, 1, "running")  # ask_user waits while its command runs
    request, _ = store.open(
        kind=Kind.QUESTION,
        run_id=store.run_dir.name,
        agent="Scout",
        step=1,
        command="ask_user",
        args={"question": "Which city?"},
        risk="low",
    )
    with pytest.raises(RequestError, match="is a question"):
        decide(tmp_path, request.id, DecisionKind.APPROVE, by="a", channel=Channel.CLI)
    assert [p.request.id for p in pending(tmp_path)] == [request.id]


def test_a_request_its_run_went_on_without_is_not_pending(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    request, _ = open_request(store, step=3)
    assert [p.request.id for p in pending(tmp_path)] == [request.id]
    waiting_at(store, 4, "running")  # resumed in a mode that decided without a human
    assert pending(tmp_path) == []
    with pytest.raises(RequestError, match="no longer waited for"):
        decide(tmp_path, request.id, DecisionKind.APPROVE, by="a", channel=Channel.CLI)
    assert store.answer_of(request.id) is None


def test_links_take_only_their_own_token_until_they_expire(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    request, tokens = open_request(store)
    check_link(request, "approve", tokens["approve"])
    with pytest.raises(RequestError, match="not valid"):
        check_link(request, "approve", tokens["deny"])
    with pytest.raises(RequestError, match="not valid"):
        check_link(request, "answer", tokens["approve"])
    with pytest.raises(RequestError, match="expired"):
        check_link(request, "approve", tokens["approve"], now=request.links_expire + 1)
    # On disk, only the tokens' hashes.
    saved = (store.folder / f"{request.id}.json").read_text()
    assert tokens["approve"] not in saved and tokens["deny"] not in saved


def test_the_audit_log_says_who_answered_through_which_channel(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    request, _ = open_request(store)
    decide(
        tmp_path, request.id, DecisionKind.DENY, text="use git clean", by="ana", channel=Channel.CLI
    )
    [line] = (tmp_path / AUDIT_LOG).read_text().splitlines()
    entry = json.loads(line)
    assert entry["request"] == request.id and entry["run_id"] == store.run_dir.name
    assert (entry["reply"], entry["text"], entry["by"], entry["channel"]) == (
        "deny",
        "use git clean",
        "ana",
        "cli",
    )
    assert entry["args"] == {"command_line": "rm -rf build"} and entry["step"] == 3


def test_the_desk_takes_an_answer_from_another_channel(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    waiting_at(store, PROPOSAL.step)
    screen = QuietScreen()
    desk = desk_on(store, screen)

    once_shown(
        screen,
        lambda request: decide(
            tmp_path, request.id, DecisionKind.DENY, text="too broad", by="bo", channel=Channel.WEB
        ),
    )
    decision = desk.authorize(PROPOSAL)
    assert decision.kind is DecisionKind.DENY and "too broad" in (decision.reason or "")
    assert (decision.channel, decision.who, decision.request) == ("web", "bo", screen.shown[0].id)
    assert screen.answers and screen.answers[0].decision.channel == "web"


def test_the_desk_reads_the_terminal_like_the_prompt_always_did(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    typed_kinds = [("y -3", "approve"), ("n", "stop"), ("rather list first", "feedback")]
    for typed, kind in typed_kinds:
        screen = QuietScreen(["", typed])  # an empty line asks again
        step = len(list(store.requests()))
        decision = desk_on(store, screen).authorize(
            Proposal(step, "delete_file", {"path": typed}, Risk.HIGH)
        )
        assert decision.kind == kind and decision.channel == "terminal"
        assert len(screen.shown) == 2
    approved = store.answer_of(store.requests()[0].id)
    assert approved is not None and approved.decision.count == 3


def test_an_unanswered_request_is_denied_when_it_expires(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    screen = QuietScreen(clock=Clock())
    decision = desk_on(store, screen, timeout=0.3).authorize(PROPOSAL)
    assert decision.kind is DecisionKind.EXPIRED and "within 0.3 seconds" in (decision.reason or "")
    assert decision.channel == "timeout"
    [request] = store.requests()
    answer = store.answer_of(request.id)
    assert answer is not None and answer.decision.kind is DecisionKind.EXPIRED


def test_questions_get_the_text_or_a_clear_no_answer(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    assert desk_on(store, QuietScreen(["Lisbon"])).ask("Which city?", 4) == "Lisbon"
    with pytest.raises(CommandError, match=r"within 0\.2 seconds"):
        desk_on(store, QuietScreen(clock=Clock()), timeout=0.2).ask("Which month?", 5)
    screen = QuietScreen()
    desk = desk_on(store, screen)
    waiting_at(store, 6, "running")

    once_shown(
        screen,
        lambda request: decide(
            tmp_path, request.id, DecisionKind.DENY, text="ask Ana", by="bo", channel=Channel.CLI
        ),
    )
    with pytest.raises(CommandError, match="declined to answer: ask Ana"):
        desk.ask("Which year?", 6)


def test_a_request_file_changed_after_it_was_made_is_not_a_request(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    request, _ = open_request(store)
    path = store.folder / f"{request.id}.json"
    shown = json.loads(path.read_text())
    shown["args"] = {"command_line": "ls"}  # benign to look at; the digest is the real one
    path.write_text(json.dumps(shown))
    assert store.requests() == [] and pending(tmp_path) == []
    with pytest.raises(RequestError, match=r"its digest is not .* cannot be shown or approved"):
        decide(tmp_path, request.id, DecisionKind.APPROVE, by="a", channel=Channel.CLI)


def test_an_answer_for_other_arguments_or_unreadable_is_a_deny(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    waiting_at(store, PROPOSAL.step)
    screen = QuietScreen()
    desk = desk_on(store, screen)

    def answer_for_other_arguments(request: Request) -> None:
        approve = Decision(
            kind=DecisionKind.APPROVE, who="x", channel=Channel.CLI, request=request.id
        )
        forged = Answer(decision=approve, digest="0" * 64)
        put_answer(store, request, forged.model_dump_json())

    once_shown(screen, answer_for_other_arguments)
    decision = desk.authorize(PROPOSAL)
    assert decision.kind is DecisionKind.DENY and "other arguments" in (decision.reason or "")

    broken = Proposal(4, "delete_file", {"path": "x"}, Risk.HIGH)
    waiting_at(store, 4)
    request, _ = store.open(
        kind=Kind.APPROVAL,
        run_id=store.run_dir.name,
        agent="Scout",
        step=4,
        command="delete_file",
        args={"path": "x"},
        risk=Risk.HIGH,
    )
    (store.folder / f"{request.id}.answer.json").write_text('{"reply": "approve", "trunc')
    assert pending(tmp_path) == []  # answered, if badly
    with pytest.raises(RequestError, match="cannot be read"):
        decide(tmp_path, request.id, DecisionKind.APPROVE, by="a", channel=Channel.CLI)
    decision = desk_on(store, QuietScreen()).authorize(broken)
    assert decision.kind is DecisionKind.DENY and "cannot be read" in (decision.reason or "")


def test_a_drawn_id_already_taken_is_drawn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_in(tmp_path)
    first, _ = open_request(store, step=1)
    draws = iter([first.id, "0123456789ab"])
    monkeypatch.setattr("autoagent.human.requests.secrets.token_hex", lambda n: next(draws))
    second, _ = open_request(store, step=2, command_line="rm -rf ~")
    assert second.id == "0123456789ab"
    assert store.get(first.id) == first  # the first request was not touched


def test_an_id_found_in_two_runs_is_refused_not_guessed(tmp_path: Path) -> None:
    one, other = store_in(tmp_path, "run-a"), store_in(tmp_path, "run-b")
    request, _ = open_request(one)
    waiting_at(other, 3)
    copy = request.model_copy(update={"run_id": "run-b"})
    other.folder.mkdir()
    (other.folder / f"{request.id}.json").write_text(copy.model_dump_json())
    with pytest.raises(RequestError, match="several runs"):
        decide(tmp_path, request.id, DecisionKind.APPROVE, by="a", channel=Channel.CLI)


def test_an_approval_is_not_pending_once_its_command_runs(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    request, _ = open_request(store, step=3)
    waiting_at(store, 3, "running")  # resumed where no human is asked, and running
    assert pending(tmp_path) == []
    with pytest.raises(RequestError, match="no longer waited for"):
        decide(tmp_path, request.id, DecisionKind.APPROVE, by="a", channel=Channel.CLI)


def test_an_answer_file_of_an_earlier_version_is_its_decision(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    waiting_at(store, PROPOSAL.step)
    screen = QuietScreen()

    def answer_as_before(request: Request) -> None:
        # As the answer files were written before they carried the decision whole.
        old = {
            "request_id": request.id,
            "reply": "approve",
            "text": "",
            "count": 2,
            "digest": request.digest,
            "by": "ana",
            "channel": "cli",
            "at": 1796172567.1,
        }
        put_answer(store, request, json.dumps(old, indent=1))

    once_shown(screen, answer_as_before)
    decision = desk_on(store, screen).authorize(PROPOSAL)
    assert (decision.kind, decision.count, decision.who, decision.channel) == (
        "approve",
        2,
        "ana",
        "cli",
    )
    assert (decision.by, decision.request, decision.at) == (
        "human",
        screen.shown[0].id,
        1796172567.1,
    )
    with pytest.raises(Answered, match="already answered: approve by ana through the cli"):
        decide(tmp_path, screen.shown[0].id, DecisionKind.DENY, by="bo", channel=Channel.CLI)
