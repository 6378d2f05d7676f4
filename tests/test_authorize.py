import pytest

from autoagent.authorize import (
    PROMPT,
    Approve,
    Feedback,
    Gate,
    Policy,
    Proposal,
    Rule,
    ScriptedHuman,
    Stop,
    parse_answer,
)
from autoagent.commands.base import Risk


@pytest.mark.parametrize(
    "answer, decision",
    [
        ("y", Approve()),
        ("Y", Approve()),
        ("yes", Approve()),
        ("y -3", Approve(3)),
        ("y-3", Approve(3)),
        ("y - 10", Approve(10)),
        ("n", Stop()),
        ("No", Stop()),
        ("please write to notes.md instead", Feedback("please write to notes.md instead")),
        ("", None),
        ("   ", None),
        ("y -0", None),
    ],
)
def test_answers(answer: str, decision: object) -> None:
    assert parse_answer(answer) == decision


def test_prompt_names_every_choice() -> None:
    for choice in ("'y'", "'y -N'", "'n'", "feedback"):
        assert choice in PROMPT


def proposal(name: str = "write_file", risk: Risk = Risk.MEDIUM) -> Proposal:
    return Proposal(1, name, {}, risk)


def test_y_dash_n_approves_this_and_the_next_n_minus_one() -> None:
    human = ScriptedHuman(["y -3", "n"])
    gate = Gate(human, continuous=False)
    verdicts = [gate.decide(proposal()) for _ in range(4)]
    assert [v.by for v in verdicts] == ["human", "pre-approved", "pre-approved", "human"]
    assert isinstance(verdicts[3].decision, Stop)
    assert len(human.asked) == 2


def test_continuous_refuses_high_risk_unless_allowed() -> None:
    gate = Gate(ScriptedHuman([]), continuous=True)
    assert gate.decide(proposal("write_file")).refusal is None
    refused = gate.decide(proposal("delete_file", Risk.HIGH))
    assert refused.refusal and "needs a human's approval" in refused.refusal
    assert (
        Gate(ScriptedHuman([]), continuous=True, allow_high_risk=True)
        .decide(proposal("delete_file", Risk.HIGH))
        .refusal
        is None
    )
    by_policy = Gate(ScriptedHuman([]), continuous=True, policy=Policy({"delete_file": Rule.ALLOW}))
    assert by_policy.decide(proposal("delete_file", Risk.HIGH)).refusal is None


def test_denied_command_is_refused_without_asking() -> None:
    human = ScriptedHuman(["y"])
    gate = Gate(human, continuous=False, policy=Policy({"write_file": Rule.DENY}))
    assert "denies" in (gate.decide(proposal()).refusal or "")
    assert human.asked == []
