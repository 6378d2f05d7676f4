"""One decision, from the keyboard to the journal: what was decided about a request or a
proposed command, by whom, through which channel, and when.

The desk (human/desk.py) writes it from an answer, a request's answer file carries it, the gate
returns it, the step record stores it as it is, and every view of a run reads it. A refusal is a
deny with its reason.
"""

from __future__ import annotations

import re
import time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

Time = Annotated[float, Field(allow_inf_nan=False, ge=0, lt=1e11)]


class DecisionKind(StrEnum):
    APPROVE = "approve"  # with count > 1: this command and the next count-1 ('y -N')
    DENY = "deny"  # not run, the run goes on; text: why (the model is told)
    FEEDBACK = "feedback"  # not run; text goes to the agent (the terminal's free text)
    STOP = "stop"  # the run stops (the terminal's 'n', Ctrl-C)
    ANSWER = "answer"  # to a question (ask_user); text is the answer
    EXPIRED = "expired"  # no one decided in time: a deny
    UNDO = "undo"  # not run; the command of the step before is undone (the terminal's 'u')


class Channel(StrEnum):
    """Through what a decision came."""

    HARNESS = "harness"  # no human: the gate, or the desk refusing an unusable answer
    TERMINAL = "terminal"
    CLI = "cli"  # `autoagent approve`, `deny`, `answer` from another shell
    WEB = "web"
    LINK = "link"  # a notification's link
    TIMEOUT = "timeout"
    SCRIPT = "script"  # a scripted human (tests, demos)
    HOOK = "hook"  # a PreToolUse hook of the hooks file (human/hooks.py)


class Actor(StrEnum):
    """Who decided whether a command runs."""

    HUMAN = "human"
    PRE_APPROVED = "pre-approved"  # an earlier 'y -N'
    CONTINUOUS = "continuous"  # continuous mode, for what it may run alone or must refuse
    POLICY = "policy"  # a rule of the policy file
    NOT_NEEDED = "not needed"  # the command is itself a talk with the human
    NO_ONE = "no one to answer"  # a question in a run where no one can answer it
    HOOK = "hook"  # a PreToolUse hook of the hooks file; `who` is the hook's command


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: DecisionKind
    count: int = Field(default=1, ge=1)  # for approve: how many commands it covers
    text: str = ""  # the feedback, the answer, or the deny's reason
    by: Actor = Actor.HUMAN
    who: str = ""  # the person: an OS user, or a web client's address
    channel: Channel = Channel.HARNESS
    request: str = ""  # the id of the request it answers (human/requests.py)
    at: Time = Field(default_factory=time.time)

    @property
    def approved(self) -> bool:
        return self.kind is DecisionKind.APPROVE

    @property
    def reason(self) -> str | None:
        """What the model is told of a command this decision kept from running (a deny, an
        expiry); None for any other decision. The harness's denies carry their whole reason;
        a human's carries what they said."""
        if self.kind is DecisionKind.EXPIRED:
            return f"Denied: {self.text} Try another way, or finish and say what needs a human."
        if self.kind is not DecisionKind.DENY:
            return None
        if self.by is not Actor.HUMAN:
            return self.text
        said = f" and said: {self.text}" if self.text else ", giving no reason"
        return f"Denied: the human did not allow this command{said}. Try another way."

    @model_validator(mode="before")
    @classmethod
    def _from_a_step_verdict(cls, data: Any) -> Any:
        """Read a decision as records of earlier versions kept it (a step's `verdict`)."""
        if isinstance(data, dict) and "decision" in data:
            return from_step_verdict(data)
        return data


# The reasons the gate wrote for a human's deny and an expiry, before a deny kept the words.
_HUMAN_DENY = re.compile(
    r"Denied: the human did not allow this command(?: and said: (?P<text>.*)|, giving no reason)"
    r"\. Try another way\.",
    re.DOTALL,
)
_EXPIRY = re.compile(
    r"Denied: (?P<text>.*) Try another way, or finish and say what needs a human\.", re.DOTALL
)
_OLD_KINDS = {"approve-next-n": "approve", "refused": "deny"}


def from_step_verdict(old: dict[str, Any]) -> dict[str, Any]:
    """The fields of a decision from an earlier version's step verdict: decision (approve,
    approve-next-n, deny, feedback, refused, stop), by, channel, who, request, at, count,
    feedback, refusal."""
    kind = _OLD_KINDS.get(str(old.get("decision")), old.get("decision"))
    text = old.get("feedback") or old.get("refusal") or ""
    if kind == "deny" and old.get("by") == "human":
        if old.get("channel") == "timeout" and (match := _EXPIRY.fullmatch(text)):
            kind, text = "expired", match["text"]
        elif match := _HUMAN_DENY.fullmatch(text):
            text = match["text"] or ""
    fields = {
        "kind": kind,
        "count": old.get("count", 1),
        "text": text,
        "by": old.get("by", Actor.HUMAN),
        "who": old.get("who") or "",
        "channel": old.get("channel", Channel.HARNESS),
        "request": old.get("request") or "",
    }
    return {**fields, **({"at": old["at"]} if "at" in old else {})}
