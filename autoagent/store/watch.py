"""Which paths of the workspace changed since the last capture, as the kernel tells it (inotify),
so a capture looks again at those alone instead of walking every folder.

A hint, never the record: every path named here is looked at again (a path named for nothing
costs one lstat), and whenever the kernel cannot vouch for every change (its queue overflowed,
a folder could not be watched, inotify is missing or used up) the capture walks the whole
workspace, as it does without a watch. Watches are added to a folder before it is listed, so a
change made while it is read is in the next capture.

What inotify does not tell: writes through a shared memory map still mapped at the capture; a
change through a second hard link that is gone by then, or leads outside the workspace (the
kernel names only the link written through); a watched folder made unreadable (its mode
changes, its listing is not read again); the root replaced while another reference holds it
open (no delete event yet); changes made by another machine on a network filesystem. The
README lists them; the next walk (a resumed run) finds them.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field

from inotify_simple import INotify
from inotify_simple import flags as f

log = logging.getLogger(__name__)

WATCHED = (
    f.MODIFY
    | f.ATTRIB
    | f.CLOSE_WRITE
    | f.MOVED_FROM
    | f.MOVED_TO
    | f.CREATE
    | f.DELETE
    | f.DELETE_SELF
    | f.MOVE_SELF
    | f.DONT_FOLLOW
    | f.ONLYDIR
    | f.EXCL_UNLINK
)
# Errors that mean no watch will work in this process (no inotify, instances or watches used up).
EXHAUSTED = {errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOSYS, errno.EINVAL, errno.ENOMEM}


@dataclass
class Changed:
    """What to look at again: paths whose entry (or absence) may differ, and folders created or
    moved in, walked whole (their contents came with them, before they were watched)."""

    paths: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)


class Watch:
    """One inotify instance over every folder of `root`, and the changes it reported."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._inotify: INotify | None = None
        self._folders: dict[int, str] = {}  # watch descriptor -> folder, relative ("" the root)
        self._pending = Changed()
        self._trusted = False  # every folder watched since the last full walk, nothing lost
        self._broken = False  # a folder of this walk could not be watched
        self._usable = True  # False once inotify proved unavailable here

    def restart(self) -> None:
        """Forget every watch and change: a full walk follows, adding folders as it lists them."""
        self.close()
        self._pending = Changed()
        self._broken = not self._usable
        if self._usable:
            try:
                self._inotify = INotify(nonblocking=True)
            except OSError as exc:
                self._give_up(exc)

    def add(self, folder: str) -> None:
        """Watch `folder` (relative to the root); call it before the folder is listed."""
        if self._inotify is None:
            return
        path = os.path.join(self.root, folder) if folder else self.root
        try:
            self._folders[self._inotify.add_watch(path, WATCHED)] = folder
        except (FileNotFoundError, NotADirectoryError):
            pass  # gone since its parent was listed: the parent's watch says so
        except OSError as exc:
            if exc.errno in EXHAUSTED:
                self._give_up(exc)
            self._broken = True

    def changes(self) -> Changed | None:
        """Everything changed since the last settled capture; None when that cannot be known
        (then the workspace must be walked whole). Reading does not clear them: settle() does."""
        if not self._trusted or self._inotify is None:
            return None
        try:
            events = self._inotify.read(timeout=0)
        except OSError:
            self._trusted = False
            return None
        for event in events:
            if event.mask & (f.Q_OVERFLOW | f.UNMOUNT):  # changes lost, or no longer told
                self._trusted = False
                return None
            if event.mask & f.IGNORED:
                self._folders.pop(event.wd, None)
                continue
            folder = self._folders.get(event.wd)
            if folder is None:
                continue
            if not event.name:  # the folder itself: its mode, or it went away
                if folder:
                    self._pending.paths.add(folder)
                elif event.mask & (f.DELETE_SELF | f.MOVE_SELF):
                    self._trusted = False  # the root itself
                    return None
                continue  # the root's own mode or times: not an entry of a capture
            path = f"{folder}/{event.name}" if folder else event.name
            self._pending.paths.add(path)
            if folder:
                self._pending.paths.add(folder)  # its times changed with its contents
            if event.mask & f.ISDIR and event.mask & (f.CREATE | f.MOVED_TO):
                self._pending.folders.add(path)
        return self._pending

    def settle(self) -> None:
        """A capture was kept: the changes so far are in it."""
        self._pending = Changed()
        self._trusted = self._inotify is not None and not self._broken

    def lose(self) -> None:
        """A capture failed: the next one walks the whole workspace again."""
        self._trusted = False

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
        self._inotify = None
        self._folders = {}
        self._trusted = False

    def _give_up(self, exc: OSError) -> None:
        log.info("Workspace watch unavailable (%s): every capture walks the workspace.", exc)
        self._usable = False
        self.close()
