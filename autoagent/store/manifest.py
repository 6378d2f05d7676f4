"""What a capture records of each path (an Entry; a Manifest maps paths to them), and what
changed between two captures, path by path, as a step's record and `autoagent diff` show it."""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

Kind = Literal["file", "dir", "link", "other"]


class Entry(NamedTuple):
    kind: str  # a Kind
    mode: int  # permission bits
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    ref: str = ""  # a file's blob hash, a link's target; "" when not kept
    note: str = ""  # why a file is not kept: too large, unreadable

    @property
    def kept(self) -> bool:
        return self.kind != "file" or bool(self.ref)

    def same_stat(self, other: Entry) -> bool:
        return self[:6] == other[:6]


Manifest = dict[str, Entry]


class FileChange(BaseModel):
    """One path a step added, modified or deleted, as the step's record keeps it."""

    model_config = ConfigDict(frozen=True)

    path: str
    change: Literal["added", "modified", "deleted"]
    kind: str = "file"
    size_before: int | None = None
    size_after: int | None = None
    mode_before: int | None = None
    mode_after: int | None = None
    target: str | None = None  # a link's target after (before, when deleted)
    note: str = ""  # e.g. not kept: over the size limit

    def describe(self) -> str:
        """`notes.md (+312 B)`, `old.txt (deleted)`, `bin/ (new folder)`, `x -> y (link)`."""
        name = self.path + ("/" if self.kind == "dir" else "")
        parts: list[str] = []
        if self.change == "deleted":
            parts.append("deleted")
        elif self.kind == "link":
            name += f" -> {self.target}"
            parts.append("link" if self.change == "added" else "link changed")
        elif self.kind == "dir":
            parts.append("new folder" if self.change == "added" else "")
        elif self.change == "added":
            parts.append(f"+{human_size(self.size_after or 0)}")
        else:
            delta = (self.size_after or 0) - (self.size_before or 0)
            sign = "+" if delta >= 0 else "-"
            parts.append(f"{sign}{human_size(abs(delta))}" if delta else "same size")
        if self.change == "modified" and self.mode_before != self.mode_after:
            parts.append(f"mode {self.mode_before or 0:o} -> {self.mode_after or 0:o}")
        if self.note:
            parts.append(self.note)
        shown = ", ".join(p for p in parts if p)
        return f"{name} ({shown})" if shown else name


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    for unit in ("kB", "MB", "GB"):
        size_f = size / 1000
        if size_f < 1000 or unit == "GB":
            return f"{size_f:.1f} {unit}"
        size = int(size_f)
    return f"{size} B"


def summary(changes: list[FileChange], more: int = 0, limit: int = 10) -> str:
    """The changes on one line: `notes.md (+312 B), old.txt (deleted)`."""
    shown = ", ".join(c.describe() for c in changes[:limit])
    rest = len(changes) - limit + more
    return shown + (f" and {rest} more" if rest > 0 else "")


def changes_between(before: Manifest, after: Manifest) -> list[FileChange]:
    """What turned `before` into `after`, path by path, in path order."""
    found: list[FileChange] = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None and not _differs(old, new):
            continue
        if new is None:
            assert old is not None
            found.append(_change(path, "deleted", old, None))
        elif old is None:
            found.append(_change(path, "added", None, new))
        elif old.kind != new.kind:
            found += [_change(path, "deleted", old, None), _change(path, "added", None, new)]
        else:
            found.append(_change(path, "modified", old, new))
    return found


def _differs(old: Entry, new: Entry) -> bool:
    if old.kind != new.kind or old.mode != new.mode:
        return True
    if old.kind == "dir":
        return False
    if old.kind == "file" and not (old.ref and new.ref):  # not kept: only its stat is known
        return not old.same_stat(new)
    return old.ref != new.ref


def _change(path: str, what: str, old: Entry | None, new: Entry | None) -> FileChange:
    shown = new or old
    assert shown is not None
    return FileChange(
        path=path,
        change=what,  # type: ignore[arg-type]
        kind=shown.kind,
        size_before=old.size if old and old.kind == "file" else None,
        size_after=new.size if new and new.kind == "file" else None,
        mode_before=old.mode if old else None,
        mode_after=new.mode if new else None,
        target=shown.ref if shown.kind == "link" else None,
        note=shown.note,
    )
