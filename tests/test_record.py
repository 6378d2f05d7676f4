"""The step record and the run state: typed, and the same after a trip through JSON."""

import pytest

from autoagent.agent.profile import make_profile
from autoagent.agent.record import StepProposal, StepRecord, StepResult, StepStatus
from autoagent.agent.runner import read_state
from autoagent.agent.state import RunConfig, RunState, resumed_settings
from autoagent.base.decision import Actor, Channel, Decision, DecisionKind
from autoagent.base.errors import JournalError
from autoagent.base.risk import Risk
from autoagent.base.settings import Settings
from autoagent.human.authorize import Gate, Proposal, ScriptedHuman
from autoagent.human.policy import Policy, Rule
from autoagent.store.journal import RunJournal


def test_a_refusal_is_a_deny_with_its_reason() -> None:
    policy = Gate(ScriptedHuman([]), continuous=False, policy=Policy({"delete_file": Rule.DENY}))
    by_policy = policy.decide(Proposal(1, "delete_file", {}, Risk.HIGH))
    alone = Gate(ScriptedHuman([]), continuous=True).decide(Proposal(1, "x", {}, Risk.HIGH))
    for decision, by in ((by_policy, Actor.POLICY), (alone, Actor.CONTINUOUS)):
        assert (decision.kind, decision.by) == (DecisionKind.DENY, by)
        assert decision.reason == decision.text and decision.text.startswith("Refused: ")
    human = Decision(kind=DecisionKind.DENY, text="not that", channel=Channel.CLI)
    assert (
        human.reason == "Denied: the human did not allow this command and said: not that. "
        "Try another way."
    )
    for kept in (DecisionKind.APPROVE, DecisionKind.FEEDBACK, DecisionKind.STOP):
        assert Decision(kind=kept, text="x").reason is None


def test_a_step_keeps_its_decision_as_it_is() -> None:
    proposal = StepProposal(task="Write", command="write_file")
    decision = Decision(kind=DecisionKind.APPROVE, count=3, who="ana", channel=Channel.TERMINAL)
    record = StepRecord(run_id="r1", step=1, proposal=proposal, decision=decision)
    copy = StepRecord.model_validate_json(record.model_dump_json())
    assert copy.decision == decision and copy == record


def test_a_step_record_gives_every_view_of_the_step() -> None:
    proposal = StepProposal(task="Write", task_id=1, command="write_file", args={"path": "a"})
    record = StepRecord(run_id="r1", step=4, proposal=proposal)
    assert record.memory_text() is None  # nothing ran yet
    ran = record.advance(StepStatus.RAN, result=StepResult(output="Wrote 1 character.", ok=True))
    assert record.status is StepStatus.PROPOSED  # each stage is a new record
    assert ran.memory_id == "r1-step-4"
    assert "Result: Wrote 1 character." in (ran.memory_text() or "")
    assert ran.view().result == "Wrote 1 character."
    assert StepRecord.model_validate_json(ran.model_dump_json()) == ran
    cut = record.advance(StepStatus.CUT)
    assert "may or may not have taken effect" in cut.cut_note()
    assert cut.memory_text() is None


def test_the_run_state_round_trips_through_its_checkpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(workspace=tmp_path / "ws", model="big")
    profile = make_profile("Scout", "tester", ["one", "two"])
    state = RunState.new("r1", profile, RunConfig.of(settings, tmp_path / "ws"), stall_steps=5)
    state.detector.observe("list_files", {}, "x", progress=False)
    state.notices = ["a note"]
    copy = RunState.model_validate_json(state.model_dump_json())
    assert copy == state and copy.detector.recent and copy.tasks.open[1].text == "two"


def test_a_resumed_run_keeps_what_was_not_set_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = RunConfig.of(Settings(workspace=tmp_path / "mine", model="big"), tmp_path / "mine")
    kept, notes = resumed_settings(Settings(), config)
    assert kept.workspace == tmp_path / "mine" and kept.model == "big" and notes == []
    moved, notes = resumed_settings(Settings(model="other"), config)
    assert moved.model == "other" and moved.workspace == tmp_path / "mine"
    assert notes == ["This run's model was big; it now uses other, as set for this resume."]


def test_a_checkpoint_from_another_version_is_refused_clearly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    journal = RunJournal.create(tmp_path)
    journal.save_checkpoint({"version": 1, "run_id": journal.run_id, "step": 3})
    journal.publish()
    with pytest.raises(JournalError, match=r"another version of autoagent.*start a new run"):
        read_state(journal)


OLD_VERDICT = {"by": "human", "who": "ana", "request": "a6da616a2636", "at": 1796172567.3}


@pytest.mark.parametrize(
    "old, kind, text",
    [
        ({"decision": "approve-next-n", "channel": "terminal", "count": 3}, "approve", ""),
        ({"decision": "feedback", "channel": "web", "feedback": "use notes.md"}, "feedback", ""),
        ({"decision": "stop", "channel": "terminal"}, "stop", ""),
        (
            {
                "decision": "deny",
                "channel": "cli",
                "refusal": "Denied: the human did not allow this command and said: not now. "
                "Try another way.",
            },
            "deny",
            "not now",
        ),
        (
            {
                "decision": "deny",
                "channel": "cli",
                "refusal": "Denied: the human did not allow this command, giving no reason. "
                "Try another way.",
            },
            "deny",
            "",
        ),
        (
            {
                "decision": "deny",
                "channel": "timeout",
                "refusal": "Denied: No one decided within 5 seconds (--approval-timeout). "
                "Try another way, or finish and say what needs a human.",
            },
            "expired",
            "No one decided within 5 seconds (--approval-timeout).",
        ),
    ],
)
def test_a_verdict_of_an_earlier_version_reads_as_its_decision(
    old: dict, kind: str, text: str
) -> None:
    written = {**OLD_VERDICT, "count": 1, "feedback": None, "refusal": None, **old}
    proposal = {"task": "Write", "command": "write_file", "args": {"path": "a"}}
    record = StepRecord.model_validate(
        {"run_id": "r1", "step": 1, "status": "refused", "proposal": proposal, "verdict": written}
    )
    decision = record.decision
    assert decision is not None and decision.kind == kind
    assert (decision.by, decision.who, decision.channel) == ("human", "ana", old["channel"])
    assert (decision.request, decision.at, decision.count) == (
        "a6da616a2636",
        1796172567.3,
        old.get("count", 1),
    )
    assert decision.text == (old.get("feedback") or text)
    # What the model is told of it is what it was told then.
    assert decision.reason == old.get("refusal")


def test_a_refusal_of_an_earlier_version_is_a_deny_by_the_harness() -> None:
    reason = "Refused: write_file needs a human's approval, and this run is continuous."
    old = {"decision": "refused", "by": "continuous", "channel": "harness", "refusal": reason}
    decision = Decision.model_validate({**old, "who": None, "request": None, "count": 1})
    assert (decision.kind, decision.by, decision.text) == ("deny", "continuous", reason)
    assert decision.reason == reason and (decision.who, decision.request) == ("", "")
