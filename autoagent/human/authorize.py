"""The human in the loop: what a person may answer, and who decides whether a command runs
(the gate, which follows the policy file: policy.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ..base.decision import Actor, Channel, Decision, DecisionKind
from ..base.risk import Risk
from .policy import Policy, Rule

if TYPE_CHECKING:
    from .hooks import HookDecision, Hooks

PROMPT = (
    "Enter 'y' to authorise, 'y -N' to run N commands without asking, "
    "'n' to stop, or type feedback: "
)
UNDO_CHOICE = "'u' to undo step {step}'s command instead, "
UNDO_ANSWERS = {"u", "undo"}


def prompt_for(undo_step: int | None = None) -> str:
    """The approval prompt; it names 'u' only when there is a command to undo."""
    if undo_step is None:
        return PROMPT
    at = PROMPT.index("'n' to stop")
    return PROMPT[:at] + UNDO_CHOICE.format(step=undo_step) + PROMPT[at:]


_APPROVE_N = re.compile(r"^y\s*-\s*(\d+)$", re.IGNORECASE)


def parse_answer(answer: str, *, undo_step: int | None = None) -> Decision | None:
    """Read a human's answer to an approval; None means ask again (an empty answer). 'u'
    undoes step `undo_step`'s command when one is offered; else it is feedback, as before."""
    text = answer.strip()
    if not text:
        return None
    lowered = text.lower()
    if lowered in UNDO_ANSWERS and undo_step is not None:
        return Decision(kind=DecisionKind.UNDO, text=f"Undo step {undo_step}'s command.")
    if lowered in {"y", "yes"}:
        return Decision(kind=DecisionKind.APPROVE)
    if lowered in {"n", "no"}:
        return Decision(kind=DecisionKind.STOP)
    if match := _APPROVE_N.match(text):
        count = int(match.group(1))
        return Decision(kind=DecisionKind.APPROVE, count=count) if count >= 1 else None
    return Decision(kind=DecisionKind.FEEDBACK, text=text)


@dataclass(frozen=True)
class Proposal:
    """A command ready to run: validated, with the exact arguments that will be used."""

    step: int
    name: str
    args: dict[str, Any]
    risk: Risk
    needs_approval: bool = True
    note: str = ""  # why the human is asked although they would not expect it
    undo_step: int | None = None  # a step whose command the human may undo instead ('u')


class Human(Protocol):
    """Asks a person. The desk (requests.py), scripted and test implementations plug in the
    same way; a decision says through which channel and by whom it was given."""

    # Whether someone can answer the agent's questions (ask_user) in this run. A terminal in a
    # continuous run cannot; a channel that reaches a person elsewhere could.
    can_answer: bool

    def authorize(self, proposal: Proposal) -> Decision:
        """Ask whether `proposal` may run; raise KeyboardInterrupt or return a stop to end."""
        ...

    def ask(self, question: str, step: int) -> str:
        """Ask a free question (the ask_user command of `step`); raise InputEnded when no
        answer can ever come (the input is closed), CommandError when none came in time."""
        ...


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
        hooks: Hooks | None = None,
    ) -> None:
        self.human = human
        self.hooks = hooks
        self._hook_asks: tuple[int, str] | None = None  # the step a hook asks about, and why
        self.continuous = continuous
        self.policy = policy or Policy()
        self.allow_high_risk = allow_high_risk
        # Continuous runs hold what needs a human until someone answers, instead of refusing it.
        self.wait_for_human = wait_for_human
        self.pre_approved = 0  # left from a 'y -N'

    def revoke_pre_approval(self) -> None:
        """Forget what a 'y -N' authorised in advance: the human sees every command again
        (until they answer 'y -N' anew)."""
        self.pre_approved = 0

    def decide(self, proposal: Proposal) -> Decision:
        decision = self.screen(proposal)
        return decision if decision is not None else self.ask(proposal)

    def screen(self, proposal: Proposal) -> Decision | None:
        """The decision on `proposal` when no human is needed for it; None when one is.

        The hooks speak first: a deny holds whatever else would allow; an ask goes to the
        human even within a 'y -N'; an allow needs no human, unless the policy denies or asks."""
        hook = self._consult_hooks(proposal)
        if hook is not None and hook.rule is Rule.DENY:
            reason = f"Denied by the hook `{hook.hook}`: {hook.reason}"
            return Decision(
                kind=DecisionKind.DENY,
                by=Actor.HOOK,
                who=hook.hook,
                channel=Channel.HOOK,
                text=reason,
            )
        if not proposal.needs_approval:  # the command is itself a talk with the human
            if not self.human.can_answer:
                return _refusal(
                    Actor.NO_ONE,
                    f"Refused: {proposal.name} needs someone to answer, and no one can in "
                    "this run (it is continuous). Decide for yourself and say what you "
                    "assumed, or finish and say what you need to know.",
                )
            return Decision(kind=DecisionKind.APPROVE, by=Actor.NOT_NEEDED)
        rule = self.policy.rule_for(proposal.name)
        if rule is Rule.DENY:
            return _refusal(
                Actor.POLICY, f"Refused: the policy denies {proposal.name}. Try another way."
            )
        if hook is not None and hook.rule is Rule.ASK:
            if self.continuous and not self.wait_for_human:
                return _refusal(
                    Actor.CONTINUOUS,
                    f"Refused: the hook `{hook.hook}` asks a human about {proposal.name}, "
                    "and this run is continuous; try another way or ask_user.",
                )
            why = f": {hook.reason}" if hook.reason else "."
            self._hook_asks = (proposal.step, f"Asked because the hook `{hook.hook}` asks{why}")
            return None
        if hook is not None and hook.rule is Rule.ALLOW and rule is not Rule.ASK:
            return Decision(
                kind=DecisionKind.APPROVE, by=Actor.HOOK, who=hook.hook, channel=Channel.HOOK
            )
        if self.continuous:
            needs_human = rule is Rule.ASK or (
                proposal.risk is Risk.HIGH and not self.allow_high_risk and rule is not Rule.ALLOW
            )
            if not needs_human:
                return Decision(kind=DecisionKind.APPROVE, by=Actor.CONTINUOUS)
            if self.wait_for_human:
                return None
            return _refusal(
                Actor.CONTINUOUS,
                f"Refused: {proposal.name} needs a human's approval, and this run is "
                "continuous; try another way or ask_user.",
            )
        # 'y -N' covers low and medium risk; a high-risk command needs its own yes, unless
        # the policy explicitly allows it.
        covered = proposal.risk is not Risk.HIGH or rule is Rule.ALLOW
        if self.pre_approved > 0 and rule is not Rule.ASK and covered:
            self.pre_approved -= 1
            return Decision(kind=DecisionKind.APPROVE, by=Actor.PRE_APPROVED)
        return None

    def _consult_hooks(self, proposal: Proposal) -> HookDecision | None:
        self._hook_asks = None
        return self.hooks.before(proposal) if self.hooks is not None else None

    def ask(self, proposal: Proposal) -> Decision:
        """Ask the human about `proposal`, which `screen` left to them."""
        rule = self.policy.rule_for(proposal.name)
        if self._hook_asks is not None and self._hook_asks[0] == proposal.step:
            proposal = replace(proposal, note=self._hook_asks[1])
        elif not self.continuous and self.pre_approved > 0 and rule is not Rule.ASK:
            proposal = replace(
                proposal,
                note=(
                    f"High risk: asked although {self.pre_approved} commands are authorised "
                    "in advance ('y -N' covers low and medium risk only)."
                ),
            )
        decision = self.human.authorize(proposal)
        if decision.approved:
            # A plain 'y' answers this command only; what was authorised in advance remains.
            self.pre_approved = max(self.pre_approved, decision.count - 1)
        return decision


def _refusal(by: Actor, reason: str) -> Decision:
    """The harness's deny: the command does not run, and the model is told `reason`."""
    return Decision(kind=DecisionKind.DENY, by=by, text=reason)


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
                return decision.model_copy(update={"channel": Channel.SCRIPT})
        return Decision(kind=DecisionKind.STOP, channel=Channel.SCRIPT)

    def ask(self, question: str, step: int = 0) -> str:
        self.questions.append(question)
        return self.replies.pop(0) if self.replies else ""
