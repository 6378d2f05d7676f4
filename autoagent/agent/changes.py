"""What the run's commands change in its workspace: captured before and after each command that
can change it (store/snapshots.py), so every step's changes are recorded and can be undone."""

from __future__ import annotations

import logging
from pathlib import Path

from ..base.errors import SnapshotError
from ..store.manifest import FileChange, Manifest, changes_between
from ..store.snapshots import Snapshots

log = logging.getLogger(__name__)

CHANGES_KEPT = 200  # in a step's record; `autoagent diff` has them all


class WorkspaceChanges:
    """The loop's side of the captures: one before a command, one after it."""

    def __init__(self, run_dir: Path, root: Path, max_file_bytes: int) -> None:
        self.snapshots = Snapshots(run_dir, root, max_file_bytes)
        self.root = root
        self.files: set[str] = set()  # made or changed by this process's commands
        self._before: tuple[int, Manifest] | None = None

    def before(self, step: int) -> str | None:
        """Capture the workspace before step `step`'s command; the problem, if it cannot be
        (said before the command runs: the step will not be undoable)."""
        try:
            _, manifest = self.snapshots.capture(step, "before")
        except SnapshotError as exc:
            self._before = None
            return f"{exc} Step {step} cannot be rewound."
        self._before = (step, manifest)
        return None

    def after(self, step: int) -> tuple[list[FileChange] | None, int, str | None]:
        """Capture after the command: its changes (at most CHANGES_KEPT, and how many more),
        or the problem that kept them from being known."""
        if self._before is None or self._before[0] != step:
            return None, 0, None
        before = self._before[1]
        self._before = None
        try:
            _, after = self.snapshots.capture(step, "after")
        except SnapshotError as exc:
            return None, 0, str(exc)
        changes = changes_between(before, after)
        self.files |= {
            c.path for c in changes if c.kind in {"file", "link"} and c.change != "deleted"
        }
        return changes[:CHANGES_KEPT], max(len(changes) - CHANGES_KEPT, 0), None
