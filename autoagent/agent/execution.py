"""Running a step's command, and the ways a run ends from inside the loop: a command's failure
is an observation for the model and the run goes on; a harness's (the input ended, the
workspace is gone) or a limit stops it, saying why."""

from __future__ import annotations

import logging
from typing import Any

from ..base.errors import CommandError, InputEnded, WorkspaceGone
from ..base.settings import Settings
from ..base.status import StopCause
from ..tools.commands.base import Command, CommandContext
from .record import StepResult
from .state import RunState

log = logging.getLogger(__name__)


class RunOver(Exception):
    """Raised inside the loop to end the run, saying why."""

    def __init__(self, cause: StopCause, reason: str) -> None:
        super().__init__(reason)
        self.cause = cause
        self.reason = reason


def run_command(command: Command, context: CommandContext, args: dict[str, Any]) -> StepResult:
    """The command's result; InputEnded and WorkspaceGone go up (the caller stops the run)."""
    try:
        return StepResult(output=command(context, args), ok=True)
    except (InputEnded, WorkspaceGone):
        raise
    except CommandError as exc:
        return StepResult(output=f"Error: {exc}", ok=False, error=repr(exc))
    except Exception as exc:  # a command's own bug: logged in full, and the run goes on
        log.exception("command %s failed unexpectedly", command.name)
        return StepResult(
            output=f"Error: {command.name} failed ({type(exc).__name__}: {exc}).",
            ok=False,
            error=repr(exc),
        )


def without_workspace(gone: WorkspaceGone, run_id: str) -> RunOver:
    """The stop of a run whose workspace was removed; it goes on with `resume`."""
    return RunOver(
        StopCause.WORKSPACE_GONE,
        f"{gone}; put the folder back and go on with `autoagent resume {run_id}` "
        "(an empty one is made if it is still missing).",
    )


def check_limits(state: RunState, settings: Settings, commands_at_start: int) -> None:
    """Raise RunOver when the run reached its step limit or, continuous, its command limit
    (counted from `commands_at_start`, the commands run when this process began)."""
    if state.step >= settings.max_steps:
        raise RunOver(
            StopCause.MAX_STEPS,
            f"Reached the limit of {settings.max_steps} steps (--max-steps).",
        )
    limit = settings.continuous_limit
    ran = state.commands_run - commands_at_start
    if settings.continuous and limit is not None and ran >= limit:
        raise RunOver(
            StopCause.CONTINUOUS_LIMIT,
            f"Ran {limit} commands, the continuous limit (--continuous-limit).",
        )
