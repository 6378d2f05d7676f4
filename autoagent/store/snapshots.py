"""The workspace as it stood before and after each command, kept so a step can be undone.

A capture is a manifest (path -> kind, mode, size, times, inode, and the hash of its content)
plus content-addressed blobs, all in the run folder (runs/<id>/snapshots/), which the sandbox
never shows. Like git's index, an entry whose size, times and inode match the previous
manifest keeps its hash without being read, so a capture costs what changed, not the size of
the workspace; a capture in which nothing changed points at the previous manifest. While the
process watches the workspace (store/watch.py), a capture does not even walk it: it looks again
at the paths the kernel said changed, and walks it whole only when that cannot be known.

What is written grows with what changed too: a file of PIECES_FROM bytes or more is kept in
pieces, so a few bytes changed in it add one piece; a manifest is written as what changed since
the previous one (a whole one every DELTAS_IN_A_ROW, and first in each process).

Durable before a command runs, at a cost that grows with what changed: new blobs are written
first and synced together at the end of the capture (with each folder they were added to, once),
then the manifest, then the capture's line in the log; a capture in which nothing changed syncs
that line only.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..base.errors import SnapshotError
from ..base.files import sync_folder
from .manifest import Entry, Manifest, human_size
from .watch import Changed, Watch

FOLDER = "snapshots"
CAPTURES = "captures.jsonl"
# File times come from a coarse clock: a file changed this close before a capture may change
# again with the same time and size, so the next capture reads it again (git's "racy" rule).
RACY_NS = 20_000_000
CHUNK = 1 << 20
# A file this size or larger is kept in pieces of PIECE bytes, each a blob of its own, plus a
# list of them: a step that changes a few bytes of a big file (a database page, an appended log)
# adds one piece, not another whole copy. Bytes inserted in the middle shift every later piece,
# so such a change costs a whole copy, as without pieces.
PIECES_FROM = 256 << 10
PIECE = 64 << 10
# More new blobs than this in one capture (the first one, a big change) are synced with one
# syncfs of the store's filesystem instead of one fdatasync each.
SYNC_EACH_UP_TO = 32
# A manifest is written as what changed since the previous one, at most this many in a row
# before one with every entry (reading a capture follows that chain back).
DELTAS_IN_A_ROW = 32

Phase = Literal["before", "after", "rewind"]


@dataclass(frozen=True)
class Capture:
    number: int  # its place among the run's captures
    step: int
    phase: str  # a Phase
    manifest: int  # the manifest it uses (the previous one's when nothing changed)
    at: float


def _sync_filesystem(folder: Path) -> bool:
    """syncfs(2) on the filesystem holding `folder`; False where it is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


def _forget(entries: Manifest, path: str, *, under_only: bool = False) -> bool:
    """Remove `path` (unless `under_only`) and everything under it; whether anything was."""
    prefix = path + "/"
    gone = [p for p in entries if p.startswith(prefix)]
    if not under_only and path in entries:
        gone.append(path)
    for p in gone:
        del entries[p]
    return bool(gone)


def _inside(path: str) -> bool:
    """Whether `path` is one a capture can hold: relative, below the root, no `.` or `..`."""
    return (
        bool(path)
        and not path.startswith("/")
        and all(part not in ("", ".", "..") for part in path.split("/"))
    )


def _hash_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Snapshots:
    """The captures of one run's workspace, in `run_dir`/snapshots."""

    def __init__(self, run_dir: Path, root: Path, max_file_bytes: int = 50 << 20) -> None:
        self.folder = run_dir / FOLDER
        self.root = root
        self.max_file_bytes = max_file_bytes
        self._last: tuple[int, float, Manifest] | None = None  # number, taken, entries
        self._count: int | None = None  # captures made so far
        self._manifests: int | None = None  # the highest manifest number used
        self._depth = DELTAS_IN_A_ROW  # manifests written as changes since the last whole one
        self._unsynced: list[str] = []  # blobs this capture added, synced at its end
        self._folders_made: set[str] = set()  # blob folders known to exist
        self._watch = Watch(str(root))  # what changed since the last capture, when it can tell
        # Files with other hard links: a change through another name is not told of this one.
        self._linked: set[str] = set()

    # Reading.

    def captures(self) -> list[Capture]:
        path = self.folder / CAPTURES
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SnapshotError(
                f"Cannot read the run's captures in {path}: {exc.strerror}."
            ) from exc
        found = []
        for line in lines:
            try:
                found.append(Capture(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line torn by a crash: that capture never finished
        return found

    def manifest(self, number: int) -> Manifest:
        """Capture `number`'s entries: kept whole, or as what changed since an earlier one."""
        wanted = number
        chain: list[dict] = []
        while True:
            path = self.folder / "manifests" / f"{number}.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                chain.append(data)
                if "entries" in data:
                    break
                number = int(data["base"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise SnapshotError(f"The capture {path} cannot be read ({exc}).") from exc
        entries = {p: Entry(*fields) for p, fields in chain.pop()["entries"].items()}
        for delta in reversed(chain):
            for gone in delta["removed"]:
                entries.pop(gone, None)
            entries.update((p, Entry(*fields)) for p, fields in delta["changed"].items())
        # A rewind removes and writes what a capture names: only paths inside the workspace.
        if outside := next((p for p in entries if not _inside(p)), None):
            raise SnapshotError(
                f"The capture {wanted} names {outside!r}, not a path inside the workspace: "
                "it is damaged, and no rewind uses it."
            )
        return entries

    def blob(self, digest: str) -> Path:
        return self.folder / "blobs" / digest[:2] / digest

    def _pieces(self, digest: str) -> Path:
        return self.folder / "blobs" / digest[:2] / f"{digest}.pieces"

    def is_kept(self, digest: str) -> bool:
        return self.blob(digest).is_file() or self._pieces(digest).is_file()

    def content(self, digest: str) -> Iterator[bytes]:
        """A kept file's content, part by part (FileNotFoundError when it is not kept)."""
        try:
            whole = open(self.blob(digest), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            for piece in self._pieces(digest).read_text(encoding="ascii").split():
                yield self.blob(piece).read_bytes()
            return
        with whole:
            while chunk := whole.read(CHUNK):
                yield chunk

    # Capturing.

    def capture(self, step: int, phase: Phase) -> tuple[Capture, Manifest]:
        """Capture the workspace now; SnapshotError (one sentence) when it cannot be kept."""
        started = time.time_ns()
        previous = self._previous()
        index = previous[2] if previous else {}
        racy_before = previous[1] - RACY_NS if previous else 0
        changed = self._watch.changes() if previous else None
        try:
            self._unsynced = []
            if changed is None:
                self._watch.restart()
                self._linked = set()
                entries, reused = self._walk(index, racy_before, watch=True)
            else:
                entries, reused = self._update(index, changed, racy_before)
            self._sync_blobs()
            number = previous[0] if previous and reused and len(entries) == len(index) else None
            if number is None:
                number = self._next_manifest()
                self._write_json(
                    self.folder / "manifests" / f"{number}.json",
                    self._manifest_record(started, previous, entries),
                )
            if self._count is None:
                self._count = len(self.captures())
            capture = Capture(self._count + 1, step, phase, number, time.time())
            line = json.dumps(capture.__dict__) + "\n"
            new_log = not (self.folder / CAPTURES).exists()
            with open(self.folder / CAPTURES, "a", encoding="utf-8") as log:
                log.write(line)
                log.flush()
                os.fdatasync(log.fileno())
            if new_log:
                sync_folder(self.folder)
            self._count += 1
        except OSError as exc:
            self._watch.lose()
            raise SnapshotError(
                f"Cannot record the workspace in {self.folder}: {exc.strerror or exc}."
            ) from exc
        except BaseException:
            self._watch.lose()
            raise
        self._watch.settle()
        if previous is None or number != previous[0]:
            self._last = (number, started, entries)
        return capture, entries

    def peek(self) -> Manifest:
        """The workspace now, as a capture would hold it, but nothing is written (a file
        that changed is read to hash it, not kept)."""
        previous = self._previous()
        index = previous[2] if previous else {}
        racy_before = previous[1] - RACY_NS if previous else 0
        changed = self._watch.changes() if previous else None
        try:
            if changed is None:
                return self._walk(index, racy_before, keep=False)[0]
            return self._update(index, changed, racy_before, keep=False)[0]
        except OSError as exc:
            raise SnapshotError(f"Cannot read the workspace {self.root}: {exc.strerror}.") from exc

    def close(self) -> None:
        """Stop watching the workspace (the captures stay)."""
        self._watch.close()

    def _previous(self) -> tuple[int, float, Manifest] | None:
        if self._last is None:
            captures = self.captures()
            if captures:
                number = captures[-1].manifest
                path = self.folder / "manifests" / f"{number}.json"
                try:
                    taken = json.loads(path.read_text(encoding="utf-8"))["taken_ns"]
                except (OSError, ValueError, KeyError):
                    return None  # captured again in full
                self._last = (number, taken, self.manifest(number))
        return self._last

    def _manifest_record(
        self, taken: int, previous: tuple[int, float, Manifest] | None, entries: Manifest
    ) -> dict:
        """What is written of a new manifest: what changed since the previous one when that is
        small and the chain to a whole one short, else every entry."""
        if previous is not None and self._depth < DELTAS_IN_A_ROW:
            index = previous[2]
            changed = {
                p: e for p, e in entries.items() if index.get(p) is not e and index.get(p) != e
            }
            removed = sorted(index.keys() - entries.keys())
            if len(changed) + len(removed) <= len(entries) // 4:
                self._depth += 1
                return {
                    "taken_ns": taken,
                    "base": previous[0],
                    "changed": changed,
                    "removed": removed,
                }
        self._depth = 0
        return {"taken_ns": taken, "entries": entries}

    def _next_manifest(self) -> int:
        if self._manifests is None:
            folder = self.folder / "manifests"
            folder.mkdir(parents=True, exist_ok=True)
            numbers = [int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()]
            self._manifests = max(numbers, default=0)
        self._manifests += 1
        return self._manifests

    def _walk(
        self,
        index: Manifest,
        racy_before: float,
        *,
        keep: bool = True,
        watch: bool = False,
        top: str = "",
        entries: Manifest | None = None,
    ) -> tuple[Manifest, bool]:
        """Every entry under the folder `top` ("" the root; links not followed) into `entries`;
        whether all came from `index`. A file's content is kept in the blobs (`keep`), or only
        hashed. With `watch`, each folder is watched before it is listed."""
        entries = {} if entries is None else entries
        all_reused = True
        pending = [top]
        while pending:
            folder = pending.pop()
            if watch:
                self._watch.add(folder)
            try:
                with os.scandir(os.path.join(self.root, folder) if folder else self.root) as it:
                    found = list(it)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:  # an unreadable folder: named, its contents unknown
                if folder:
                    entries[folder] = entries[folder]._replace(note=f"unreadable: {exc.strerror}")
                    all_reused = False
                continue
            for item in found:
                path = folder + "/" + item.name if folder else item.name
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone while it was listed
                if watch and info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                    self._linked.add(path)
                old = index.get(path)
                # The common case inline, without making an entry: a file as it was.
                if (
                    old is not None
                    and old[0] == "file"
                    and old[3] == info.st_mtime_ns
                    and old[4] == info.st_ctime_ns
                    and old[2] == info.st_size
                    and old[5] == info.st_ino
                    and old[6]
                    and info.st_mtime_ns < racy_before
                    and info.st_ctime_ns < racy_before
                    and stat.S_ISREG(info.st_mode)
                    and old[1] == info.st_mode & 0o7777
                ):
                    entries[path] = old
                    continue
                entry = self._entry(path, info, old, racy_before, keep)
                if entry is not old:
                    all_reused = False
                entries[path] = entry
                if entry.kind == "dir":
                    pending.append(path)
        return entries, all_reused

    def _update(
        self, index: Manifest, changed: Changed, racy_before: float, *, keep: bool = True
    ) -> tuple[Manifest, bool]:
        """`index` with the paths the watch named looked at again (parents first: a path under
        a folder that is gone, or is now a file or a link, is gone too); folders created or
        moved in are walked whole. A file found with other hard links brings them along."""
        entries = dict(index)
        linked_before = set(self._linked)
        named = changed.paths | changed.folders | self._linked
        all_reused = True
        for path in sorted(named, key=lambda p: p.count("/")):
            all_reused &= not self._look_again(path, entries, index, changed, racy_before, keep)
        newly_linked = {entries[p].ino for p in self._linked - linked_before if p in entries}
        if newly_linked:
            for path in [p for p, e in entries.items() if e.ino in newly_linked]:
                all_reused &= not self._look_again(path, entries, index, changed, racy_before, keep)
        return entries, all_reused

    def _look_again(
        self,
        path: str,
        entries: Manifest,
        index: Manifest,
        changed: Changed,
        racy_before: float,
        keep: bool,
    ) -> bool:
        """Bring `entries[path]` (and, for a new folder, all under it) up to date; whether it
        changed."""
        parent = path.rpartition("/")[0]
        info = None
        if not parent or (parent in entries and entries[parent].kind == "dir"):
            with contextlib.suppress(OSError):  # gone, or not to be looked at: as a walk skips it
                info = os.lstat(os.path.join(self.root, path))
        old = entries.get(path)
        if info is None:
            self._linked.discard(path)
            return _forget(entries, path)
        if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
            self._linked.add(path)
        entry = self._entry(path, info, old, racy_before, keep)
        if old is not None and old.kind == "dir" and entry.kind != "dir":
            _forget(entries, path, under_only=True)
        entries[path] = entry
        if entry.kind == "dir" and (path in changed.folders or old is None or old.kind != "dir"):
            _forget(entries, path, under_only=True)
            self._walk(index, racy_before, keep=keep, watch=True, top=path, entries=entries)
            return True
        return entry is not old

    def _entry(
        self,
        path: str,
        info: os.stat_result,
        old: Entry | None,
        racy_before: float,
        keep: bool = True,
    ) -> Entry:
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            kind = "dir"
        elif stat.S_ISREG(mode):
            kind = "file"
        elif stat.S_ISLNK(mode):
            kind = "link"
        else:
            kind = "other"
        entry = Entry(
            kind, stat.S_IMODE(mode), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino
        )
        if old is not None and old.same_stat(entry):
            if kind == "dir" or (kind == "link" and old.ref):
                return old
            if kind == "file" and entry.mtime_ns < racy_before and entry.ctime_ns < racy_before:
                return old
        full = os.path.join(self.root, path)
        if kind == "link":
            try:
                return entry._replace(ref=os.readlink(full))
            except OSError as exc:
                return entry._replace(note=f"unreadable: {exc.strerror}")
        if kind == "other":
            return entry._replace(note="not a file, folder or link: not kept")
        if kind == "dir":
            return entry
        if info.st_size > self.max_file_bytes:
            return entry._replace(note=f"over {human_size(self.max_file_bytes)}: not kept")
        try:
            return entry._replace(ref=self._keep(full, info.st_size) if keep else _hash_of(full))
        except PermissionError as exc:
            return entry._replace(note=f"unreadable: {exc.strerror}")
        except FileNotFoundError:
            return entry._replace(note="gone while it was read: not kept")

    def _keep(self, path: str, size: int) -> str:
        """Copy a file's content into the blobs (once per content, in pieces when it is big);
        the hash of the whole content."""
        if size >= PIECES_FROM:
            return self._keep_in_pieces(path)
        with open(path, "rb") as source:
            data = source.read(PIECES_FROM)
            if source.read(1):  # it grew since it was looked at
                return self._keep_in_pieces(path)
        name = hashlib.sha256(data).hexdigest()
        if not self.is_kept(name):
            self._put(str(self.blob(name)), [data])
        return name

    def _keep_in_pieces(self, path: str) -> str:
        blobs = str(self.folder / "blobs")
        digest = hashlib.sha256()
        pieces = []
        with open(path, "rb") as source:
            while piece := source.read(PIECE):
                digest.update(piece)
                piece_name = hashlib.sha256(piece).hexdigest()
                piece_path = os.path.join(blobs, piece_name[:2], piece_name)
                if not os.path.exists(piece_path):
                    self._put(piece_path, [piece])
                pieces.append(piece_name)
        name = digest.hexdigest()
        if not self.is_kept(name):
            self._put(str(self._pieces(name)), ["\n".join(pieces).encode("ascii")])
        return name

    def _put(self, target: str, parts: list[bytes]) -> None:
        """Write a blob whole under its name (a crash leaves a temporary file, never a torn
        blob); synced with the others at the end of the capture."""
        folder = os.path.dirname(target)
        if folder not in self._folders_made:
            os.makedirs(folder, exist_ok=True)
            self._folders_made.add(folder)
        # One writer per run: a name of its own is enough (a crash's leftover is overwritten).
        tmp = os.path.join(os.path.dirname(folder), ".new-" + os.path.basename(target))
        try:
            with open(tmp, "wb") as copy:
                for part in parts:
                    copy.write(part)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._unsynced.append(target)

    def _sync_blobs(self) -> None:
        """Make this capture's new blobs durable: written first, synced together (the disk
        gets them in one go), then the folders they were added to, once each."""
        if len(self._unsynced) > SYNC_EACH_UP_TO and _sync_filesystem(self.folder):
            self._unsynced = []
            return
        folders = {os.path.dirname(blob) for blob in self._unsynced}
        for blob in self._unsynced:
            fd = os.open(blob, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        if folders:
            folders.add(str(self.folder / "blobs"))  # a new two-letter folder is an entry there
        for folder in sorted(folders):
            sync_folder(folder)
        self._unsynced = []

    def _write_json(self, path: Path, data: object) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as file:
            file.write(json.dumps(data, separators=(",", ":")))
            file.flush()
            os.fdatasync(file.fileno())
        os.replace(tmp, path)
        sync_folder(path.parent)

    # Finding what a step changed.

    def before_step(self, step: int) -> Capture | None:
        """The workspace as it was before step `step` (or the first later step captured: none
        in between means the agent changed nothing): that step's last capture before its
        command, which follows any undo done while the human was asked about it."""
        befores = [c for c in self.captures() if c.phase == "before" and c.step >= step]
        if not befores:
            return None
        first = min(c.step for c in befores)
        return [c for c in befores if c.step == first][-1]

    def of_step(self, step: int) -> tuple[Capture, Capture] | None:
        """The captures around step `step`'s command, if it was captured."""
        captures = self.captures()
        befores = [c for c in captures if c.step == step and c.phase == "before"]
        afters = [c for c in captures if c.step == step and c.phase == "after"]
        if not befores or not afters:
            return None
        return befores[-1], afters[-1]
