"""A run's state, as its checkpoint keeps it: everything needed to resume, validated by pydantic."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.settings import Settings
from ..base.status import RunStatus, StepStatus, StopCause
from ..model.pricing import Spend
from .profile import AgentProfile
from .record import StepRecord
from .repetition import LoopDetector
from .tasks import TaskList

CHECKPOINT_VERSION = 2
EARLIER_STEPS_KEPT = 5  # one-line summaries of the steps before the recent window


class RunConfig(BaseModel):
    """Where and with what a run works; a resumed run keeps them unless told otherwise."""

    model_config = ConfigDict(frozen=True)

    workspace: Path
    llm: str
    model_path: Path | None = None
    model: str
    fast_model: str
    openai_base_url: str | None = None
    memory_url: str | None = None
    embeddings: str = "local"
    read_only: bool = False  # only commands that change nothing (commands/base.py)

    @classmethod
    def of(cls, settings: Settings, workspace: Path) -> RunConfig:
        return cls(
            workspace=workspace,
            llm=settings.llm,
            model_path=settings.model_path,
            model=settings.model,
            fast_model=settings.fast_model,
            openai_base_url=settings.openai_base_url,
            memory_url=settings.memory_url,
            embeddings=settings.embeddings,
            read_only=settings.read_only,
        )


# The settings a resumed run takes from its own record, and how the screen names them.
KEPT_SETTINGS = {
    "workspace": "workspace",
    "llm": "model backend",
    "model_path": "model file",
    "model": "model",
    "fast_model": "fast model",
    "openai_base_url": "endpoint",
    "memory_url": "memory server",
    "embeddings": "embeddings",
    "read_only": "read-only mode",
}


def resumed_settings(settings: Settings, config: RunConfig) -> tuple[Settings, list[str]]:
    """The settings for resuming a run made with `config`: what the user did not set comes
    from the run; what the user set differently wins, and a note says so."""
    keep: dict[str, Any] = {}
    notes: list[str] = []
    for field, label in KEPT_SETTINGS.items():
        saved, now = getattr(config, field), getattr(settings, field)
        if field not in settings.model_fields_set:
            keep[field] = saved
        elif (shown := _comparable(field, now)) != _comparable(field, saved):
            if isinstance(saved, bool):
                notes.append(
                    f"This run's {label} was {_on_off(saved)}; it is {_on_off(now)} now, as set "
                    "for this resume."
                )
                continue
            notes.append(
                f"This run's {label} was {saved or '(none)'}; it now uses {shown or '(none)'}, "
                "as set for this resume."
            )
    return settings.model_copy(update=keep), notes


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _comparable(field: str, value: Any) -> Any:
    if field in {"workspace", "model_path"} and value is not None:
        return Path(value).expanduser().resolve()
    return value


class RunState(BaseModel):
    """Everything needed to resume a run; saved as the checkpoint at every durable point."""

    version: int = CHECKPOINT_VERSION
    run_id: str
    profile: AgentProfile
    config: RunConfig
    tasks: TaskList = Field(default_factory=TaskList)
    spend: Spend = Field(default_factory=Spend)
    step: int = 0
    commands_run: int = 0
    status: RunStatus = RunStatus.RUNNING
    cause: StopCause | None = None  # why it ended, once it has
    reason: str = ""
    started: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    recent: list[StepRecord] = Field(default_factory=list)  # the last steps, in full
    # Older steps whose memory was not known to be in the store yet (it loads while the run
    # starts): written again on resume if it is not.
    unwritten: list[StepRecord] = Field(default_factory=list)
    earlier: list[str] = Field(default_factory=list)  # one line per older step
    current: StepRecord | None = None  # the step in flight: running, or its result recorded
    feedback: str | None = None  # the human's, for the next proposal
    notices: list[str] = Field(default_factory=list)  # for the model; kept until it has them
    detector: LoopDetector = Field(default_factory=LoopDetector)
    goal_report: list[str] = Field(default_factory=list)
    # What the project's AGENTS.md said when the run last went on (instructions.py), in short.
    instructions_digest: str | None = None
    files: list[str] = Field(default_factory=list)
    undone: list[int] = Field(default_factory=list)  # steps `resume --from-step` undid

    @classmethod
    def new(
        cls, run_id: str, profile: AgentProfile, config: RunConfig, stall_steps: int
    ) -> RunState:
        state = cls(
            run_id=run_id,
            profile=profile,
            config=config,
            detector=LoopDetector(stall_steps=stall_steps),
        )
        state.tasks.add(profile.goals)
        return state

    def add_step(self, record: StepRecord, window: int) -> StepRecord | None:
        """Keep a finished step in the recent window; returns the step that left it, if any."""
        self.recent = [*self.recent, record]
        if len(self.recent) <= window:
            return None
        oldest, *self.recent = self.recent
        self.earlier = [*self.earlier, _summary(oldest)][-EARLIER_STEPS_KEPT:]
        return oldest

    def stop(self, cause: StopCause, reason: str) -> None:
        """End the run: its status follows from why."""
        self.status, self.cause, self.reason = cause.status, cause, reason

    def unfinished_step(self) -> StepRecord | None:
        """The step in flight when the run stopped: waiting for a human, or started."""
        current = self.current
        in_flight = {StepStatus.AWAITING, StepStatus.RUNNING, StepStatus.RAN}
        if current is None or current.status not in in_flight:
            return None
        return current


def _summary(record: StepRecord) -> str:
    return record.view().summary()
