"""One typed record per step: what was proposed, who decided what, what ran and what came of it.

The loop builds a step's record as the step goes (each stage a new frozen copy), and every
other view of the step is derived from it: the events, the journal, the checkpoint, the prompt
history, the memory text and `autoagent show`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..base.decision import Decision, DecisionKind
from ..base.status import StepStatus
from ..base.text import trim_middle
from ..model.replies import Thoughts
from ..store.manifest import FileChange, summary
from .agents import StepView
from .tasks import Task

RESULT_CHARS_IN_PROMPT = 1500
RESULT_CHARS_IN_MEMORY = 3000
ARGS_CHARS = 500


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepProposal(_Record):
    task: str
    task_id: int | None = None
    thoughts: Thoughts = Field(default_factory=Thoughts)
    command: str
    args: dict[str, Any] = Field(default_factory=dict)


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
    decision: Decision | None = None  # whether it may run: who decided what, how and when
    result: StepResult | None = None
    tasks_added: list[Task] = Field(default_factory=list)
    progress: bool = False  # it made a file or a new task
    # What its command changed in the workspace (None: not captured), how many changes more
    # than are kept here, and why they are not known when a capture failed.
    changes: list[FileChange] | None = None
    changes_more: int = 0
    changes_problem: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_a_verdict(cls, data: Any) -> Any:
        """Read a record of an earlier version, which kept its decision as `verdict`."""
        if isinstance(data, dict) and "verdict" in data and "decision" not in data:
            rest = {k: v for k, v in data.items() if k != "verdict"}
            return {**rest, "decision": data["verdict"]}
        return data

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

    def changes_text(self) -> str | None:
        """`Changed: notes.md (+312 B), old.txt (deleted)`, or None when there is nothing to say."""
        if self.changes_problem:
            return f"Changes not recorded: {self.changes_problem}"
        if not self.changes:
            return None
        return "Changed: " + summary(self.changes, self.changes_more)

    def cut_note(self) -> str:
        return CUT_NOTE.format(step=self.step, command=self.command, args=self.args_text)

    def observation(self) -> str:
        """What the model is told about the step in later prompts."""
        if self.result is not None:
            return self.result.output
        if self.invalid is not None:
            return f"Error: {self.invalid}"
        if self.decision is not None and self.decision.reason is not None:
            return self.decision.reason
        if self.decision is not None and self.decision.kind is DecisionKind.UNDO:
            return "Not run: the human undid the command before it instead."
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
