"""The human in the loop: what a person may answer, and who decides whether a command runs."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..base.errors import ConfigError, not_utf8
from ..base.risk import Risk

PROMPT = (
    "Enter 'y' to authorise, 'y -N' to run N commands without asking, "
    "'n' to stop, or type feedback: "
)


@dataclass(frozen=True, kw_only=True)
class Signed:
    """Who gave a decision, and how: kept in the step's record and the audit log."""

    channel: str = "harness"  # harness (no human), terminal, cli, web, link, timeout, script
    by: str = ""  # an OS user, or a web client's address
    request: str = ""  # the id of the request it answered (approvals.py)


@dataclass(frozen=True)
class Approve(Signed):
    count: int = 1  # this command and the next count-1 without asking


@dataclass(frozen=True)
class Stop(Signed):
    pass


@dataclass(frozen=True)
class Feedback(Signed):
    text: str


@dataclass(frozen=True)
class Deny(Signed):
    """This command does not run and the run goes on; `reason` is what the model is told."""

    reason: str


Decision = Approve | Stop | Feedback | Deny

_APPROVE_N = re.compile(r"^y\s*-\s*(\d+)$", re.IGNORECASE)


def parse_answer(answer: str) -> Decision | None:
    """Read a human's answer; None means ask again (an empty answer)."""
    text = answer.strip()
    if not text:
        return None
    lowered = text.lower()
    if lowered in {"y", "yes"}:
        return Approve()
    if lowered in {"n", "no"}:
        return Stop()
    if match := _APPROVE_N.match(text):
        count = int(match.group(1))
        return Approve(count) if count >= 1 else None
    return Feedback(text)


@dataclass(frozen=True)
class Proposal:
    """A command ready to run: validated, with the exact arguments that will be used."""

    step: int
    name: str
    args: dict[str, Any]
    risk: Risk
    needs_approval: bool = True
    note: str = ""  # why the human is asked although they would not expect it


class Human(Protocol):
    """Asks a person. The desk (approvals.py), scripted and test implementations plug in the
    same way; a decision says through which channel and by whom it was given."""

    # Whether someone can answer the agent's questions (ask_user) in this run. A terminal in a
    # continuous run cannot; a channel that reaches a person elsewhere could.
    can_answer: bool

    def authorize(self, proposal: Proposal) -> Decision:
        """Ask whether `proposal` may run; raise KeyboardInterrupt or return Stop to end."""
        ...

    def ask(self, question: str, step: int) -> str:
        """Ask a free question (the ask_user command of `step`); raise InputEnded when no
        answer can ever come (the input is closed), CommandError when none came in time."""
        ...


class Rule(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


@dataclass(frozen=True)
class Policy:
    """Per-command rules from the policy file; commands not named follow their risk tier.

    A rule may name commands with a glob (`mcp__github__*`): a command's own rule wins, else
    the first glob that matches it, in the order of the file."""

    rules: dict[str, Rule] = field(default_factory=dict)

    def rule_for(self, name: str) -> Rule | None:
        if name in self.rules:
            return self.rules[name]
        for pattern, rule in self.rules.items():
            if any(c in pattern for c in "*?[") and fnmatchcase(name, pattern):
                return rule
        return None

    @classmethod
    def load(
        cls, path: Path | None, commands: Collection[str], prefixes: Collection[str] = ()
    ) -> Policy:
        """The rules in the policy file at `path`, for the command names in `commands`, and
        names or globs that start with one of `prefixes` (`mcp__SERVER__` for each configured
        MCP server, whose tools are known only once it runs).

        Anything the file says that would not be obeyed exactly is an error: an unknown
        command or key, a name or rule in the wrong case."""
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Cannot use the policy file: {not_utf8(path, exc)}") from exc
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot use the policy file {path}: {exc}.") from exc
        rules, problems = _read_rules(data, commands, tuple(prefixes))
        if problems:
            raise ConfigError(
                f"The policy file {path} would not be obeyed as written: {'; '.join(problems)}. "
                "It maps command names to allow, ask or deny under 'commands:' "
                "(see policy.example.yaml)."
            )
        return cls(rules)


class Actor(StrEnum):
    """Who decided whether a command runs."""

    HUMAN = "human"
    PRE_APPROVED = "pre-approved"  # an earlier 'y -N'
    CONTINUOUS = "continuous"  # continuous mode, for what it may run alone
    POLICY = "policy"  # a rule of the policy file
    NOT_NEEDED = "not needed"  # the command is itself a talk with the human
    NO_ONE = "no one to answer"  # a question in a run where no one can answer it


def _read_rules(
    data: Any, commands: Collection[str], prefixes: tuple[str, ...] = ()
) -> tuple[dict[str, Rule], list[str]]:
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, ["it is not a mapping"]
    problems = [f"unknown key {key!r}" for key in data if key != "commands"]
    section = data.get("commands") or {}
    if not isinstance(section, dict):
        return {}, [*problems, "'commands' is not a mapping of command names to rules"]
    rules: dict[str, Rule] = {}
    for name, value in section.items():
        if name not in commands and not str(name).startswith(prefixes):
            problems.append(f"unknown command {name!r}{_suggest(str(name), commands)}")
            continue
        try:
            rules[name] = Rule(value)
        except ValueError:
            problems.append(f"{name}: {value!r} is not allow, ask or deny (lower case)")
    return rules, problems


def _suggest(name: str, commands: Collection[str]) -> str:
    same_but_case = [c for c in commands if c.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(name, list(commands), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Verdict:
    """What the gate decided about one proposal."""

    decision: Decision
    by: Actor
    refusal: str | None = None  # a message for the model when the command may not run

    # Who decided and how: the decision's own signature.
    @property
    def channel(self) -> str:
        return self.decision.channel

    @property
    def who(self) -> str:
        return self.decision.by

    @property
    def request(self) -> str:
        return self.decision.request


class Gate:
    """Decides, for each proposal, whether to run it, refuse it, or ask the human.

    `screen` decides what needs no human; `ask` asks. The loop saves the step in between, so a
    run killed while it waits for a human is waiting again, on the same request, when resumed."""

    def __init__(
        self,
        human: Human,
        *,
        continuous: bool,
        policy: Policy | None = None,
        allow_high_risk: bool = False,
        wait_for_human: bool = False,
    ) -> None:
        self.human = human
        self.continuous = continuous
        self.policy = policy or Policy()
        self.allow_high_risk = allow_high_risk
        # Continuous runs hold what needs a human until someone answers, instead of refusing it.
        self.wait_for_human = wait_for_human
        self.pre_approved = 0  # left from a 'y -N'

    def decide(self, proposal: Proposal) -> Verdict:
        verdict = self.screen(proposal)
        return verdict if verdict is not None else self.ask(proposal)

    def screen(self, proposal: Proposal) -> Verdict | None:
        """The verdict on `proposal` when no human is needed for it; None when one is."""
        if not proposal.needs_approval:  # the command is itself a talk with the human
            if not self.human.can_answer:
                return Verdict(
                    Stop(),
                    Actor.NO_ONE,
                    refusal=(
                        f"Refused: {proposal.name} needs someone to answer, and no one can in "
                        "this run (it is continuous). Decide for yourself and say what you "
                        "assumed, or finish and say what you need to know."
                    ),
                )
            return Verdict(Approve(), Actor.NOT_NEEDED)
        rule = self.policy.rule_for(proposal.name)
        if rule is Rule.DENY:
            return Verdict(
                Stop(),
                Actor.POLICY,
                refusal=f"Refused: the policy denies {proposal.name}. Try another way.",
            )
        if self.continuous:
            needs_human = rule is Rule.ASK or (
                proposal.risk is Risk.HIGH and not self.allow_high_risk and rule is not Rule.ALLOW
            )
            if not needs_human:
                return Verdict(Approve(), Actor.CONTINUOUS)
            if self.wait_for_human:
                return None
            return Verdict(
                Stop(),
                Actor.CONTINUOUS,
                refusal=(
                    f"Refused: {proposal.name} needs a human's approval, and this run is "
                    "continuous; try another way or ask_user."
                ),
            )
        # 'y -N' covers low and medium risk; a high-risk command needs its own yes, unless
        # the policy explicitly allows it.
        covered = proposal.risk is not Risk.HIGH or rule is Rule.ALLOW
        if self.pre_approved > 0 and rule is not Rule.ASK and covered:
            self.pre_approved -= 1
            return Verdict(Approve(), Actor.PRE_APPROVED)
        return None

    def ask(self, proposal: Proposal) -> Verdict:
        """Ask the human about `proposal`, which `screen` left to them."""
        rule = self.policy.rule_for(proposal.name)
        if not self.continuous and self.pre_approved > 0 and rule is not Rule.ASK:
            proposal = replace(
                proposal,
                note=(
                    f"High risk: asked although {self.pre_approved} commands are authorised "
                    "in advance ('y -N' covers low and medium risk only)."
                ),
            )
        decision = self.human.authorize(proposal)
        if isinstance(decision, Deny):
            return Verdict(decision, Actor.HUMAN, refusal=decision.reason)
        if isinstance(decision, Approve):
            # A plain 'y' answers this command only; what was authorised in advance remains.
            self.pre_approved = max(self.pre_approved, decision.count - 1)
        return Verdict(decision, Actor.HUMAN)


class ScriptedHuman:
    """Answers from a list, for tests and demos; records what it was asked."""

    def __init__(
        self, answers: list[str], replies: list[str] | None = None, *, can_answer: bool = True
    ) -> None:
        self.can_answer = can_answer
        self.answers = list(answers)
        self.replies = list(replies or [])
        self.asked: list[Proposal] = []
        self.questions: list[str] = []

    def authorize(self, proposal: Proposal) -> Decision:
        self.asked.append(proposal)
        while self.answers:
            decision = parse_answer(self.answers.pop(0))
            if decision is not None:
                return replace(decision, channel="script")
        return Stop(channel="script")

    def ask(self, question: str, step: int = 0) -> str:
        self.questions.append(question)
        return self.replies.pop(0) if self.replies else ""
