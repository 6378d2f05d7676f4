"""Putting a workspace back as a capture (snapshots.py) holds it: contents, modes, times,
links, folders; whatever the capture does not hold is removed.

Each file and link is written beside its place under a temporary name, then renamed over it,
so a crash leaves every path either as it was or as it should be (and at most a temporary
file, which the next rewind removes): a capture taken before the rewind brings either side back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field

from ..base.errors import SnapshotError
from .manifest import Entry, FileChange, Manifest, changes_between
from .snapshots import Snapshots

TEMP_PREFIX = ".autoagent-rewind-"


@dataclass
class RestorePlan:
    changes: list[FileChange]  # what the restore does, as changes from now to the capture
    lost: list[str] = field(default_factory=list)  # paths it cannot bring back, and why

    @property
    def empty(self) -> bool:
        return not self.changes and not self.lost

    @property
    def digest(self) -> str:
        """The same for the same plan: a confirmation names the plan it confirms."""
        shown = [[c.model_dump(mode="json") for c in self.changes], self.lost]
        return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()


def plan_restore(current: Manifest, target: Manifest) -> RestorePlan:
    changes = changes_between(current, target)
    lost = [
        f"{path} ({entry.note or 'not kept'})"
        for path, entry in sorted(target.items())
        if not entry.kept and not _unchanged(current.get(path), entry)
    ]
    return RestorePlan(changes, lost)


def restore(snapshots: Snapshots, current: Manifest, target: Manifest) -> list[str]:
    """Make the workspace what `target` holds; returns the paths it could not bring back."""
    root = str(snapshots.root)
    lost: list[str] = []
    try:
        _remove_extra(root, current, target)
        for path, entry in sorted(target.items()):
            full = os.path.join(root, path)
            now = current.get(path)
            if entry.kind == "dir":
                os.makedirs(full, exist_ok=True)
                _writable(full)
            elif not entry.kept or entry.kind == "other":
                if not _unchanged(now, entry):
                    lost.append(f"{path} ({entry.note or 'not kept'})")
            elif now is not None and now.kind == entry.kind and now.ref == entry.ref:
                if now.mode != entry.mode and entry.kind == "file":
                    os.chmod(full, entry.mode)
            elif entry.kind == "link":
                _put_link(full, entry)
            elif not _put_file(snapshots, full, entry):
                lost.append(f"{path} (its kept copy is missing)")
        dirs = [(p, e) for p, e in target.items() if e.kind == "dir"]
        for path, entry in sorted(dirs, reverse=True):  # deepest first: a folder's own time last
            full = os.path.join(root, path)
            os.chmod(full, entry.mode)
            os.utime(full, ns=(entry.mtime_ns, entry.mtime_ns))
    except OSError as exc:
        raise SnapshotError(
            f"The rewind stopped at {exc.filename or root}: {exc.strerror}. The workspace is "
            "part way; running the same rewind again finishes it."
        ) from exc
    return lost


def _unchanged(now: Entry | None, entry: Entry) -> bool:
    return now is not None and now.kind == entry.kind and now.same_stat(entry)


def _remove_extra(root: str, current: Manifest, target: Manifest) -> None:
    """Remove what the target does not hold (or holds as another kind), top-most first."""
    removed: list[str] = []
    for path in sorted(current):
        if any(path.startswith(gone + "/") for gone in removed[-1:]):
            continue
        now, wanted = current[path], target.get(path)
        if wanted is not None and wanted.kind == now.kind:
            continue
        if wanted is not None and not wanted.kept and wanted.kind == "file":
            continue  # cannot be brought back: left as it is, and said
        full = os.path.join(root, path)
        _writable(os.path.dirname(full))
        with contextlib.suppress(FileNotFoundError):
            if now.kind == "dir" and not os.path.islink(full):
                shutil.rmtree(full, onerror=_make_removable)
            else:
                os.unlink(full)
        removed.append(path)


def _make_removable(function: object, path: str, info: object) -> None:
    """rmtree's second try at a path a read-only folder kept it from removing."""
    _writable(os.path.dirname(path))
    if os.path.isdir(path) and not os.path.islink(path):
        _writable(path)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _writable(folder: str) -> None:
    with contextlib.suppress(OSError):
        mode = os.stat(folder).st_mode
        if mode & 0o700 != 0o700:
            os.chmod(folder, mode | 0o700)


def _temp_beside(full: str) -> str:
    return os.path.join(os.path.dirname(full), TEMP_PREFIX + uuid.uuid4().hex[:12])


def _put_file(snapshots: Snapshots, full: str, entry: Entry) -> bool:
    if not snapshots.is_kept(entry.ref):
        return False
    _writable(os.path.dirname(full))
    tmp = _temp_beside(full)
    try:
        with open(tmp, "xb") as copy:
            for part in snapshots.content(entry.ref):
                copy.write(part)
        os.chmod(tmp, entry.mode)
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _into_place(tmp, full)
    return True


def _put_link(full: str, entry: Entry) -> None:
    tmp = _temp_beside(full)
    os.symlink(entry.ref, tmp)
    _into_place(tmp, full)


def _into_place(tmp: str, full: str) -> None:
    """Rename the finished `tmp` over `full` (a folder there goes first); `tmp` never stays."""
    try:
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        os.replace(tmp, full)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
