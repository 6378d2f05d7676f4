"""The words every layer uses of a run and of its step in flight, as the checkpoint keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"  # a limit, the budget, the human said stop, the workspace was removed
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


class StopCause(StrEnum):
    """Why a run ended: what the exit code, the styles and `show` go by."""

    FINISHED = "finished"  # the agent's finish command: its goals are met, or cannot be
    MAX_STEPS = "max-steps"  # --max-steps
    CONTINUOUS_LIMIT = "continuous-limit"  # --continuous-limit
    BUDGET = "budget"  # --budget
    LOOPING = "looping"  # the agent went round in circles with no human to tell it
    HUMAN = "human"  # a human said stop
    INPUT_ENDED = "input-ended"  # the input ended while the human was asked a question
    WORKSPACE_GONE = "workspace-gone"  # the workspace folder was removed during the run
    INTERRUPTED = "interrupted"  # Ctrl-C or a signal
    ERROR = "error"  # the model, the harness or the disk failed

    @property
    def status(self) -> RunStatus:
        """The run's status after a stop of this kind."""
        match self:
            case StopCause.FINISHED:
                return RunStatus.FINISHED
            case StopCause.INTERRUPTED:
                return RunStatus.INTERRUPTED
            case StopCause.ERROR:
                return RunStatus.FAILED
            case _:
                return RunStatus.STOPPED


@dataclass(frozen=True)
class StepInFlight:
    """The step a run's checkpoint says is under way, and where it stands."""

    step: int
    status: StepStatus
