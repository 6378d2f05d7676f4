"""The human in the loop: what a person may answer, and who decides whether a command runs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import yaml

from .commands.base import Risk
from .errors import ConfigError

PROMPT = (
    "Enter 'y' to authorise, 'y -N' to run N commands without asking, "
    "'n' to stop, or type feedback: "
)


@dataclass(frozen=True)
class Approve:
    count: int = 1  # this command and the next count-1 without asking


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Feedback:
    text: str


Decision = Approve | Stop | Feedback

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


class Human(Protocol):
    """Asks a person. Terminal, scripted and test implementations plug in the same way.

    A `channel` attribute ("terminal", "script"...) names how, for the run's record."""

    def authorize(self, proposal: Proposal) -> Decision:
        """Ask whether `proposal` may run; raise KeyboardInterrupt or return Stop to end."""
        ...

    def ask(self, question: str) -> str:
        """Ask a free question (the ask_user command)."""
        ...


class Rule(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


@dataclass(frozen=True)
class Policy:
    """Per-command rules from the policy file; commands not named follow their risk tier."""

    rules: dict[str, Rule] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            rules = {str(k): Rule(str(v).lower()) for k, v in (data.get("commands") or {}).items()}
        except (OSError, yaml.YAMLError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"Cannot use the policy file {path}: {exc}. It maps command names to "
                "allow, ask or deny under 'commands:'."
            ) from exc
        return cls(rules)


class Actor(StrEnum):
    """Who decided whether a command runs."""

    HUMAN = "human"
    PRE_APPROVED = "pre-approved"  # an earlier 'y -N'
    CONTINUOUS = "continuous"  # continuous mode, for what it may run alone
    POLICY = "policy"  # a rule of the policy file
    NOT_NEEDED = "not needed"  # the command is itself a talk with the human


@dataclass(frozen=True)
class Verdict:
    """What the gate decided about one proposal."""

    decision: Decision
    by: Actor
    refusal: str | None = None  # a message for the model when the command may not run
    channel: str = "harness"  # how the human was reached ("terminal", ...), when asked


class Gate:
    """Decides, for each proposal, whether to run it, refuse it, or ask the human."""

    def __init__(
        self,
        human: Human,
        *,
        continuous: bool,
        policy: Policy | None = None,
        allow_high_risk: bool = False,
    ) -> None:
        self.human = human
        self.continuous = continuous
        self.policy = policy or Policy()
        self.allow_high_risk = allow_high_risk
        self.pre_approved = 0  # left from a 'y -N'

    def decide(self, proposal: Proposal) -> Verdict:
        if not proposal.needs_approval:
            return Verdict(Approve(), Actor.NOT_NEEDED)
        rule = self.policy.rules.get(proposal.name)
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
            if needs_human:
                return Verdict(
                    Stop(),
                    Actor.CONTINUOUS,
                    refusal=(
                        f"Refused: {proposal.name} needs a human's approval, and this run is "
                        "continuous; try another way or ask_user."
                    ),
                )
            return Verdict(Approve(), Actor.CONTINUOUS)
        if self.pre_approved > 0 and rule is not Rule.ASK:
            self.pre_approved -= 1
            return Verdict(Approve(), Actor.PRE_APPROVED)
        decision = self.human.authorize(proposal)
        if isinstance(decision, Approve):
            self.pre_approved = decision.count - 1
        return Verdict(decision, Actor.HUMAN, channel=getattr(self.human, "channel", "unknown"))


class ScriptedHuman:
    """Answers from a list, for tests and demos; records what it was asked."""

    channel = "script"

    def __init__(self, answers: list[str], replies: list[str] | None = None) -> None:
        self.answers = list(answers)
        self.replies = list(replies or [])
        self.asked: list[Proposal] = []
        self.questions: list[str] = []

    def authorize(self, proposal: Proposal) -> Decision:
        self.asked.append(proposal)
        while self.answers:
            decision = parse_answer(self.answers.pop(0))
            if decision is not None:
                return decision
        return Stop()

    def ask(self, question: str) -> str:
        self.questions.append(question)
        return self.replies.pop(0) if self.replies else ""
