"""The words every layer uses of a run and of its step in flight, as the checkpoint keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"  # a limit, the budget, or the human said stop
    INTERRUPTED = "interrupted"  # Ctrl-C, or the process died
    FAILED = "failed"

    @property
    def resumable(self) -> bool:
        """A run that did not finish can go on with `autoagent resume`."""
        return self is not RunStatus.FINISHED


class StepStatus(StrEnum):
    PROPOSED = "proposed"  # the model proposed a command; nothing decided yet
    AWAITING = "awaiting"  # a human is asked whether it may run (a request is pending)
    INVALID = "invalid"  # unknown command or bad arguments: nothing ran
    REFUSED = "refused"  # the policy, continuous mode or a human's deny refused it: nothing ran
    FEEDBACK = "feedback"  # the human answered with feedback instead: nothing ran
    STOPPED = "stopped"  # the human stopped the run here: nothing ran
    RUNNING = "running"  # approved and started; its result is not recorded yet
    RAN = "ran"  # its result is recorded; planning from it may not be done
    CUT = "cut"  # it was running when the run died: whether it took effect is unknown
    DONE = "done"  # complete: result remembered, tasks planned
    FINISHED = "finished"  # the finish command: the run ends with it


@dataclass(frozen=True)
class StepInFlight:
    """The step a run's checkpoint says is under way, and where it stands."""

    step: int
    status: StepStatus
