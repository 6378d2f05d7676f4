"""The step record and the run state: typed, and the same after a trip through JSON."""

import pytest

from autoagent.agent.profile import make_profile
from autoagent.agent.record import (
    DecisionKind,
    StepProposal,
    StepRecord,
    StepResult,
    StepStatus,
    StepVerdict,
)
from autoagent.agent.runner import read_state
from autoagent.agent.state import RunConfig, RunState, resumed_settings
from autoagent.base.errors import JournalError
from autoagent.base.settings import Settings
from autoagent.human.authorize import Actor, Approve, Feedback, Stop, Verdict
from autoagent.store.journal import RunJournal


def test_verdicts_become_typed_decisions() -> None:
    cases = [
        (Verdict(Approve(channel="terminal"), Actor.HUMAN), DecisionKind.APPROVE),
        (Verdict(Approve(3), Actor.HUMAN), DecisionKind.APPROVE_NEXT),
        (Verdict(Feedback("not that"), Actor.HUMAN), DecisionKind.FEEDBACK),
        (Verdict(Stop(), Actor.HUMAN), DecisionKind.STOP),
        (Verdict(Stop(), Actor.POLICY, refusal="Refused: denied"), DecisionKind.DENY),
        (Verdict(Stop(), Actor.CONTINUOUS, refusal="Refused: ask"), DecisionKind.REFUSED),
    ]
    for verdict, kind in cases:
        assert StepVerdict.of(verdict).decision is kind
    assert StepVerdict.of(cases[0][0]).channel == "terminal"
    assert StepVerdict.of(cases[1][0]).count == 3


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
