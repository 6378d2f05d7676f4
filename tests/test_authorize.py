import re
from pathlib import Path

import pytest

from autoagent.base.decision import DecisionKind
from autoagent.base.errors import ConfigError
from autoagent.base.risk import Risk
from autoagent.human.authorize import (
    PROMPT,
    Gate,
    Proposal,
    ScriptedHuman,
    parse_answer,
    prompt_for,
)
from autoagent.human.policy import Policy, Rule

APPROVE, STOP, FEEDBACK = DecisionKind.APPROVE, DecisionKind.STOP, DecisionKind.FEEDBACK


@pytest.mark.parametrize(
    "answer, decision",
    [
        ("y", (APPROVE, 1, "")),
        ("Y", (APPROVE, 1, "")),
        ("yes", (APPROVE, 1, "")),
        ("y -3", (APPROVE, 3, "")),
        ("y-3", (APPROVE, 3, "")),
        ("y - 10", (APPROVE, 10, "")),
        ("n", (STOP, 1, "")),
        ("No", (STOP, 1, "")),
        ("please write to notes.md instead", (FEEDBACK, 1, "please write to notes.md instead")),
        ("", None),
        ("   ", None),
        ("y -0", None),
    ],
)
def test_answers(answer: str, decision: object) -> None:
    parsed = parse_answer(answer)
    assert (parsed and (parsed.kind, parsed.count, parsed.text)) == decision


def test_prompt_names_every_choice() -> None:
    for choice in ("'y'", "'y -N'", "'n'", "feedback"):
        assert choice in PROMPT


def proposal(name: str = "write_file", risk: Risk = Risk.MEDIUM) -> Proposal:
    return Proposal(1, name, {}, risk)


def test_y_dash_n_approves_this_and_the_next_n_minus_one() -> None:
    human = ScriptedHuman(["y -3", "n"])
    gate = Gate(human, continuous=False)
    decisions = [gate.decide(proposal()) for _ in range(4)]
    assert [d.by for d in decisions] == ["human", "pre-approved", "pre-approved", "human"]
    assert decisions[3].kind is DecisionKind.STOP
    assert len(human.asked) == 2


def test_continuous_refuses_high_risk_unless_allowed() -> None:
    gate = Gate(ScriptedHuman([]), continuous=True)
    assert gate.decide(proposal("write_file")).reason is None
    refused = gate.decide(proposal("delete_file", Risk.HIGH))
    assert refused.reason and "needs a human's approval" in refused.reason
    assert (
        Gate(ScriptedHuman([]), continuous=True, allow_high_risk=True)
        .decide(proposal("delete_file", Risk.HIGH))
        .reason
        is None
    )
    by_policy = Gate(ScriptedHuman([]), continuous=True, policy=Policy({"delete_file": Rule.ALLOW}))
    assert by_policy.decide(proposal("delete_file", Risk.HIGH)).reason is None


def test_continuous_with_wait_for_human_asks_instead_of_refusing() -> None:
    human = ScriptedHuman(["y", "never mind that"])
    gate = Gate(
        human,
        continuous=True,
        wait_for_human=True,
        policy=Policy({"write_file": Rule.ASK, "read_file": Rule.DENY}),
    )
    assert gate.screen(proposal("list_files", Risk.LOW)) is not None  # runs alone
    assert gate.screen(proposal("delete_file", Risk.HIGH)) is None  # waits for a human
    assert gate.decide(proposal("delete_file", Risk.HIGH)).by == "human"
    asked = gate.decide(proposal("write_file"))  # the policy's ask
    assert asked.kind is DecisionKind.FEEDBACK and asked.channel == "script"
    assert "denies" in (gate.decide(proposal("read_file", Risk.LOW)).reason or "")
    assert [p.name for p in human.asked] == ["delete_file", "write_file"]


def test_denied_command_is_refused_without_asking() -> None:
    human = ScriptedHuman(["y"])
    gate = Gate(human, continuous=False, policy=Policy({"write_file": Rule.DENY}))
    assert "denies" in (gate.decide(proposal()).reason or "")
    assert human.asked == []


def test_y_dash_n_covers_low_and_medium_risk_unless_the_policy_allows() -> None:
    human = ScriptedHuman(["y -4", "y"])
    gate = Gate(human, continuous=False)
    gate.decide(proposal())
    asked = gate.decide(proposal("delete_file", Risk.HIGH))
    assert asked.by == "human" and "'y -N' covers low and medium risk only" in human.asked[1].note
    assert gate.decide(proposal("read_file", Risk.LOW)).by == "pre-approved"  # still held
    allowed = Gate(
        ScriptedHuman(["y -4"]), continuous=False, policy=Policy({"delete_file": Rule.ALLOW})
    )
    allowed.decide(proposal())
    assert allowed.decide(proposal("delete_file", Risk.HIGH)).by == "pre-approved"


def test_a_question_with_no_one_to_answer_is_refused() -> None:
    ask = Proposal(1, "ask_user", {"question": "?"}, Risk.LOW, needs_approval=False)
    assert Gate(ScriptedHuman([]), continuous=True).decide(ask).reason is None
    refused = Gate(ScriptedHuman([], can_answer=False), continuous=True).decide(ask)
    assert refused.reason and "no one can" in refused.reason


@pytest.mark.parametrize(
    "text, problem",
    [
        ("commands:\n  delete_files: deny\n", "unknown command 'delete_files'"),
        ("commands:\n  Delete_File: deny\n", "did you mean 'delete_file'"),
        ("commands:\n  delete_file: DENY\n", "'DENY' is not allow, ask or deny"),
        ("rules:\n  delete_file: deny\n", "unknown key 'rules'"),
        ("- delete_file\n", "not a mapping"),
    ],
)
def test_a_policy_file_is_read_exactly(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(problem)):
        Policy.load(path, ["delete_file", "write_file"])
    path.write_text("commands:\n  delete_file: deny\n")
    assert Policy.load(path, ["delete_file"]).rules == {"delete_file": Rule.DENY}


def test_a_policy_glob_names_every_tool_of_a_server_and_a_name_beats_a_glob(
    tmp_path: Path,
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(
        "commands:\n  mcp__files__*: deny\n  mcp__files__read: allow\n  mcp__web__*: ask\n"
    )
    policy = Policy.load(file, ["write_file"], ["files", "web"])
    assert policy.rule_for("mcp__files__delete") is Rule.DENY
    assert policy.rule_for("mcp__files__read") is Rule.ALLOW
    assert policy.rule_for("mcp__web__fetch") is Rule.ASK
    assert policy.rule_for("write_file") is None
    with pytest.raises(ConfigError, match="unknown command 'mcp__web__\\*'"):
        Policy.load(file, ["write_file"], ["files"])  # no server named web

    human = ScriptedHuman(["y"])
    gate = Gate(human, continuous=False, policy=policy)
    tool = Proposal(1, "mcp__files__delete", {}, Risk.HIGH)
    assert "denies mcp__files__delete" in (gate.decide(tool).reason or "")
    assert human.asked == []


def test_an_mcp_rule_is_matched_on_the_server_and_the_tool(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("commands:\n  mcp__a__b__*: allow\n  mcp__*__delete_*: deny\n  mcp__we*: ask\n")
    policy = Policy.load(file, [], ["a", "web", "wet"])
    assert policy.rule_for("mcp__a__b__wipe") is Rule.ALLOW  # the tool b__wipe of server a
    assert policy.rule_for("mcp__a__bwipe") is None
    assert policy.rule_for("mcp__web__delete_all") is Rule.DENY
    assert policy.rule_for("mcp__wet__read") is Rule.ASK
    assert policy.rule_for("mcp__a__read") is None
    file.write_text("commands:\n  mcp__a: deny\n")
    with pytest.raises(ConfigError, match="'mcp__a' names no tool: write mcp__SERVER__TOOL"):
        Policy.load(file, [], ["a"])


@pytest.mark.parametrize(
    "rule, problem",
    [
        (
            "mcp__srv__Danger",
            "'mcp__srv__Danger' matches no tool of the MCP server 'srv' as "
            "written (did you mean 'mcp__srv__danger'?)",
        ),
        (
            "mcp__srv__d\u0430nger",
            "(did you mean 'mcp__srv__danger'? It holds look-alike letters "
            "outside ASCII: '\u0430', U+0430 CYRILLIC SMALL LETTER A, in place of 'a')",
        ),
        ("mcp__srv__x*", "'mcp__srv__x*' matches no tool"),
    ],
)
def test_mcp_rules_are_checked_against_the_tools_the_servers_list(
    tmp_path: Path, rule: str, problem: str
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(f"commands:\n  mcp__srv__echo: allow\n  {rule}: deny\n  mcp__off__x: deny\n")
    policy = Policy.load(file, [], ["srv", "off"])
    with pytest.raises(ConfigError) as caught:
        policy.check_tools({"srv": ["danger", "echo"]})  # "off" did not start: not checked
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"The policy file {file} would not be obeyed as written")
    file.write_text("commands:\n  mcp__srv__echo: allow\n  mcp__off__x: deny\n")
    Policy.load(file, [], ["srv", "off"]).check_tools({"srv": ["danger", "echo"]})


def test_u_undoes_only_when_there_is_a_command_to_undo() -> None:
    assert "'u'" not in prompt_for(None)
    assert "'u' to undo step 4's command" in prompt_for(4)
    undo = parse_answer("u", undo_step=4)
    assert undo is not None and undo.kind is DecisionKind.UNDO
    plain = parse_answer("u")  # nothing to undo: the letter is feedback, as it always was
    assert plain is not None and (plain.kind, plain.text) == (FEEDBACK, "u")
