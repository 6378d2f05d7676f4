"""A run as it stands on disk, read once and typed: for `runs`, `resume`, the approvals of
every channel, the console and `show`, none of which loads the run itself.

The checkpoint says what the run's process last saved; the lock says whether that process is
still there. A run saved as running whose lock no one holds was interrupted (a crash, kill -9):
that rule is here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import JournalError
from ..base.files import runs_dir
from ..base.status import RunStatus, StepInFlight, StepStatus
from .journal import RunJournal, is_live


@dataclass(frozen=True)
class RunView:
    run_id: str
    folder: Path
    status: RunStatus | None  # None when the run cannot be read (see problem)
    live: bool  # a process holds the run now
    name: str = "?"
    reason: str = ""  # why it stopped, when it did
    steps: int = 0
    cost: float = 0.0
    started: float = 0.0
    current: StepInFlight | None = None
    problem: str = ""  # what is wrong with a run that cannot be read
    unreadable_as: str = ""  # how `runs` names such a run: "no checkpoint" or "corrupt"

    @property
    def readable(self) -> bool:
        return self.status is not None

    @property
    def label(self) -> str:
        """The status as `runs` and the console show it."""
        return self.status.value if self.status is not None else self.unreadable_as


def read_run(folder: Path) -> RunView:
    """The run in `folder`, as its checkpoint and its lock say."""
    journal = RunJournal(folder)
    live = is_live(folder)
    try:
        return _from_checkpoint(folder, journal.load_checkpoint(), live)
    except JournalError as exc:
        kind = "no checkpoint" if not journal.has_checkpoint else "corrupt"
        return RunView(folder.name, folder, None, live, problem=str(exc), unreadable_as=kind)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        problem = f"The checkpoint of run {folder.name} is damaged ({exc})."
        return RunView(folder.name, folder, None, live, problem=problem, unreadable_as="corrupt")


def read_runs(home: Path) -> list[RunView]:
    """Every run under the data folder `home`, newest first; unreadable ones say why."""
    folder = runs_dir(home)
    if not folder.is_dir():
        return []
    return [
        read_run(run_dir)
        for run_dir in sorted(folder.iterdir(), reverse=True)
        if run_dir.is_dir() and not run_dir.name.startswith(".")
    ]


def _from_checkpoint(folder: Path, state: dict[str, Any], live: bool) -> RunView:
    status = RunStatus(state.get("status", ""))
    if status is RunStatus.RUNNING and not live:
        status = RunStatus.INTERRUPTED  # its process died without saying so
    current = state.get("current")
    in_flight = None
    if isinstance(current, dict) and "step" in current and "status" in current:
        in_flight = StepInFlight(int(current["step"]), StepStatus(current["status"]))
    return RunView(
        run_id=folder.name,
        folder=folder,
        status=status,
        live=live,
        name=str((state.get("profile") or {}).get("name", "?")),
        reason=str(state.get("reason", "")),
        steps=int(state.get("step", 0)),
        cost=float((state.get("spend") or {}).get("cost", 0.0)),
        started=float(state.get("started", 0.0)),
        current=in_flight,
    )
