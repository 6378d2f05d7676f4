"""Rewinding a run's workspace: back to how it was before a step (or before the last rewind),
from the captures its commands left (store/snapshots.py), recorded in the run's journal.

The run is locked while it is rewound, so no process runs it meanwhile; the workspace is
captured first, so a rewind can itself be rewound. A rewind journals that it starts (which
capture it leaves from) before it touches a file: one killed half way is undone as the others
are, or done again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.errors import JournalError, SnapshotError
from ..store.journal import RunJournal
from ..store.manifest import Manifest
from ..store.restore import RestorePlan, plan_restore, restore
from ..store.snapshots import Capture, Snapshots
from .events import Rewound, from_data, to_data

STARTED = "rewind_started"  # a journal entry, not a loop event: its Rewound may never come


@dataclass
class Rewind:
    """A rewind ready to be applied (the run is locked until `apply` or `cancel`)."""

    journal: RunJournal
    snapshots: Snapshots
    to_step: int | None
    undo_of: int | None
    number: int  # this rewind's number
    before: Capture  # the workspace now, captured
    current: Manifest
    target: Manifest
    plan: RestorePlan
    owns_lock: bool = True  # False inside the run, which holds its own lock

    def apply(self) -> Rewound:
        try:
            self.journal.record(STARTED, sync=True, rewind=self.number, capture=self.before.number)
            lost = restore(self.snapshots, self.current, self.target)
            event = Rewound(
                self.to_step,
                self.number,
                self.before.number,
                self.plan.changes,
                lost,
                undo_of=self.undo_of,
            )
            self.journal.record(event.event, sync=True, **to_data(event))
            return event
        finally:
            self.cancel()

    def cancel(self) -> None:
        if self.owns_lock:
            self.journal.release()


def run_workspace(journal: RunJournal) -> Path:
    """The workspace the run works in, as its checkpoint says."""
    try:
        return Path(journal.load_checkpoint()["config"]["workspace"])
    except (KeyError, TypeError) as exc:
        raise JournalError(
            f"Run {journal.run_id}'s checkpoint does not say where its workspace is."
        ) from exc


def rewinds(journal: RunJournal) -> list[Rewound]:
    """The rewinds recorded in the run's journal, oldest first."""
    found = []
    for entry in journal.events():
        if entry.get("event") == "Rewound":
            event = from_data("Rewound", entry)
            if isinstance(event, Rewound):
                found.append(event)
    return found


def interrupted(journal: RunJournal) -> tuple[int, int] | None:
    """The last rewind that started and was never recorded done (its process was killed):
    its number and the capture it left from."""
    started: tuple[int, int] | None = None
    for entry in journal.events():
        kind = entry.get("event")
        if kind == STARTED:
            started = (int(entry.get("rewind", 0)), int(entry.get("capture", 0)))
        elif kind == "Rewound" and started is not None and entry.get("rewind") == started[0]:
            started = None
    return started


def _next_number(journal: RunJournal) -> int:
    """One more than any rewind's, recorded or only started."""
    numbers = [
        int(entry.get("rewind") or 0)
        for entry in journal.events()
        if entry.get("event") in {STARTED, "Rewound"}
    ]
    return max(numbers, default=0) + 1


def prepare_rewind(
    journal: RunJournal, max_file_bytes: int, *, to_step: int | None, undo: bool = False
) -> Rewind:
    """Lock the run, capture its workspace, and plan the way back; JournalError or
    SnapshotError (one sentence) when it cannot be done."""
    try:
        journal.acquire()
    except JournalError as exc:
        raise JournalError(
            f"Run {journal.run_id} is running: stop it before rewinding its workspace."
        ) from exc
    try:
        return _plan(journal, max_file_bytes, to_step, undo)
    except BaseException:
        journal.release()
        raise


def prepare_undo_in_run(journal: RunJournal, snapshots: Snapshots, step: int) -> Rewind:
    """Plan putting the workspace back as it was before step `step`'s command, from inside
    the run (which holds the lock); SnapshotError when that command was not captured."""
    pair = snapshots.of_step(step)
    if pair is None:
        raise SnapshotError(f"Step {step}'s command was not captured: it cannot be undone.")
    return _rewind_to(journal, snapshots, pair[0], step, None, owns_lock=False)


def _plan(journal: RunJournal, max_file_bytes: int, to_step: int | None, undo: bool) -> Rewind:
    snapshots = Snapshots(journal.run_dir, run_workspace(journal), max_file_bytes)
    done = rewinds(journal)
    undo_of = None
    if undo:
        cut = interrupted(journal)
        if cut is not None:  # killed half way: back to where it left from
            undo_of, capture = cut
        elif done:
            undo_of, capture = done[-1].rewind, done[-1].capture
        else:
            raise SnapshotError(f"Run {journal.run_id} has not been rewound: nothing to undo.")
        target_capture = next((c for c in snapshots.captures() if c.number == capture), None)
    else:
        assert to_step is not None
        target_capture = _before_step(journal, snapshots, to_step)
    if target_capture is None:
        raise SnapshotError("The capture to go back to is missing from the run's snapshots.")
    return _rewind_to(journal, snapshots, target_capture, to_step, undo_of)


def _before_step(journal: RunJournal, snapshots: Snapshots, to_step: int) -> Capture:
    steps = int(journal.load_checkpoint().get("step", 0))
    if not 1 <= to_step <= max(steps, 1):
        raise SnapshotError(f"Run {journal.run_id} has steps 1 to {steps}; no step {to_step}.")
    target_capture = snapshots.before_step(to_step)
    if target_capture is None:
        raise SnapshotError(
            f"No command of step {to_step} or later changed the workspace as far as the "
            "captures know: there is nothing to rewind."
        )
    return target_capture


def preview_rewind(journal: RunJournal, max_file_bytes: int, to_step: int) -> RestorePlan:
    """What a rewind to before step `to_step` would change now; nothing is locked or
    written (a page shows it before the human confirms)."""
    snapshots = Snapshots(journal.run_dir, run_workspace(journal), max_file_bytes)
    target = snapshots.manifest(_before_step(journal, snapshots, to_step).manifest)
    return plan_restore(snapshots.peek(), target)


def _rewind_to(
    journal: RunJournal,
    snapshots: Snapshots,
    target_capture: Capture,
    to_step: int | None,
    undo_of: int | None,
    *,
    owns_lock: bool = True,
) -> Rewind:
    target = snapshots.manifest(target_capture.manifest)
    number = _next_number(journal)
    before, current = snapshots.capture(number, "rewind")
    return Rewind(
        journal,
        snapshots,
        to_step,
        undo_of,
        number,
        before,
        current,
        target,
        plan_restore(current, target),
        owns_lock,
    )
