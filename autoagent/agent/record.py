"""One typed record per step: what was proposed, who decided what, what ran and what came of it.

The loop builds a step's record as the step goes (each stage a new frozen copy), and every
other view of the step is derived from it: the events, the journal, the checkpoint, the prompt
history, the memory text and `autoagent show`.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.status import StepStatus
from ..base.text import trim_middle
from ..human.authorize import Actor, Approve, Feedback, Stop, Verdict
from ..model.replies import Thoughts
from .agents import StepView
from .tasks import Task

RESULT_CHARS_IN_PROMPT = 1500
RESULT_CHARS_IN_MEMORY = 3000
ARGS_CHARS = 500


class DecisionKind(StrEnum):
    APPROVE = "approve"
    APPROVE_NEXT = "approve-next-n"  # 'y -N': this command and the next N-1
    DENY = "deny"  # the policy or a human denies the command; the run goes on
    FEEDBACK = "feedback"
    REFUSED = "refused"  # needs a human, and the run is continuous
    STOP = "stop"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepProposal(_Record):
    task: str
    task_id: int | None = None
    thoughts: Thoughts = Field(default_factory=Thoughts)
    command: str
    args: dict[str, Any] = Field(default_factory=dict)


class StepVerdict(_Record):
    decision: DecisionKind
    by: Actor
    channel: str = "harness"
    who: str | None = None  # the person who decided: an OS user or a web client's address
    request: str | None = None  # the request they answered (requests.py)
    at: float = Field(default_factory=time.time)
    count: int = 1  # for approve-next-n: how many commands it covers
    feedback: str | None = None
    refusal: str | None = None

    @classmethod
    def of(cls, verdict: Verdict) -> StepVerdict:
        decision = verdict.decision
        signed: dict[str, Any] = {
            "by": verdict.by,
            "channel": verdict.channel,
            "who": verdict.who or None,
            "request": verdict.request or None,
        }
        if verdict.refusal is not None:
            denied = verdict.by in {Actor.POLICY, Actor.HUMAN}
            kind = DecisionKind.DENY if denied else DecisionKind.REFUSED
            return cls(decision=kind, refusal=verdict.refusal, **signed)
        if isinstance(decision, Feedback):
            return cls(decision=DecisionKind.FEEDBACK, feedback=decision.text, **signed)
        if isinstance(decision, Stop):
            return cls(decision=DecisionKind.STOP, **signed)
        assert isinstance(decision, Approve)
        kind = DecisionKind.APPROVE_NEXT if decision.count > 1 else DecisionKind.APPROVE
        return cls(decision=kind, count=decision.count, **signed)

    @property
    def approved(self) -> bool:
        return self.decision in {DecisionKind.APPROVE, DecisionKind.APPROVE_NEXT}


class StepResult(_Record):
    output: str  # what the model is told
    ok: bool
    error: str | None = None  # the exception behind a failure, for the log
    at: float = Field(default_factory=time.time)


CUT_NOTE = (
    "Step {step}'s command {command} {args} started before the run was interrupted and its "
    "result was not recorded: it may or may not have taken effect. Check before doing it again."
)


class StepRecord(_Record):
    run_id: str
    step: int
    status: StepStatus = StepStatus.PROPOSED
    started: float = Field(default_factory=time.time)
    proposal: StepProposal
    invalid: str | None = None  # why the proposal could not be run
    verdict: StepVerdict | None = None
    result: StepResult | None = None
    tasks_added: list[Task] = Field(default_factory=list)
    progress: bool = False  # it made a file or a new task

    def advance(self, status: StepStatus, **changes: Any) -> StepRecord:
        """The next stage of the step, as a new record."""
        return self.model_copy(update={"status": status, **changes})

    @property
    def command(self) -> str:
        return self.proposal.command

    @property
    def args_text(self) -> str:
        return json.dumps(self.proposal.args, ensure_ascii=False)

    @property
    def memory_id(self) -> str:
        """The same for every write of this step, so writing it again changes nothing."""
        return f"{self.run_id}-step-{self.step}"

    @property
    def ran(self) -> bool:
        return self.status in {StepStatus.RAN, StepStatus.DONE} and self.result is not None

    def cut_note(self) -> str:
        return CUT_NOTE.format(step=self.step, command=self.command, args=self.args_text)

    def observation(self) -> str:
        """What the model is told about the step in later prompts."""
        if self.result is not None:
            return self.result.output
        if self.invalid is not None:
            return f"Error: {self.invalid}"
        if self.verdict is not None and self.verdict.refusal:
            return self.verdict.refusal
        if self.status is StepStatus.FEEDBACK:
            return "Not run: the human gave feedback instead."
        if self.status is StepStatus.CUT:
            return "Interrupted: its result was not recorded; it may or may not have taken effect."
        return "No result."

    def view(self) -> StepView:
        """The step as the execution agent sees it in its prompt."""
        return StepView(
            self.step,
            self.command,
            trim_middle(self.args_text, ARGS_CHARS),
            trim_middle(self.observation(), RESULT_CHARS_IN_PROMPT),
        )

    def memory_text(self) -> str | None:
        """What long-term memory keeps of the step; only commands that ran are kept."""
        if not self.ran or self.result is None:
            return None
        return (
            f"Task: {self.proposal.task}\n"
            f"Command: {self.command} {trim_middle(self.args_text, ARGS_CHARS)}\n"
            f"Result: {trim_middle(self.result.output, RESULT_CHARS_IN_MEMORY)}"
        )
