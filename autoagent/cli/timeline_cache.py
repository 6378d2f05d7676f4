"""The console's timelines: one per run it shows, kept between requests and given only the
lines its log gained since, so a page of a long run costs its page, not the whole run.

Each timeline has a version (how much of the log was read, the checkpoint's time, whether the
run is live): a live page sends the version it holds and is told "nothing new" while it stands.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import JournalError
from ..store.journal import CHECKPOINT, EVENTS, RunJournal, is_live
from .timeline import Timeline, TimelineBuilder, read_log

PAGE = 50  # items on a page of the timeline
RUNS_KEPT = 32  # timelines kept at once (the least recently shown go first)


@dataclass
class _Kept:
    builder: TimelineBuilder
    identity: tuple[int, int]  # the log's device and inode: a new file starts again
    offset: int = 0  # bytes of the log read: whole lines only
    lock: threading.Lock = field(default_factory=threading.Lock)


class TimelineCache:
    def __init__(self) -> None:
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def version(self, journal: RunJournal) -> str:
        """What a page of this run was built from; it changes whenever the page would."""
        parts = []
        for name in (EVENTS, CHECKPOINT):
            try:
                info = os.stat(journal.run_dir / name)
                parts.append(f"{info.st_ino}.{info.st_size}.{info.st_mtime_ns}")
            except OSError:
                parts.append("-")
        parts.append("live" if is_live(journal.run_dir) else "still")
        return "-".join(parts)

    def timeline(self, journal: RunJournal, before: int | None = None) -> Timeline:
        """The page of PAGE items ending before item `before` (the newest page by default);
        JournalError when the log cannot be read."""
        kept = self._catch_up(journal)
        state: dict[str, Any] | None = None
        try:
            state = journal.load_checkpoint()
        except JournalError:
            if not kept.builder.events:
                raise
        with kept.lock:
            total = len(kept.builder.items)
            end = total if before is None else max(0, min(before, total))
            return kept.builder.timeline(
                state, live=is_live(journal.run_dir), page=(max(0, end - PAGE), end)
            )

    def _catch_up(self, journal: RunJournal) -> _Kept:
        path = journal.run_dir / EVENTS
        try:
            info = os.stat(path)
            identity = (info.st_dev, info.st_ino)
        except FileNotFoundError:
            identity = (0, 0)
        with self._lock:
            kept = self._kept.pop(journal.run_id, None)
            if kept is None or kept.identity != identity:
                kept = _Kept(TimelineBuilder(journal.run_id), identity)
            self._kept[journal.run_id] = kept  # the newest last
            while len(self._kept) > RUNS_KEPT:
                del self._kept[next(iter(self._kept))]
        with kept.lock:
            if identity != (0, 0) and info.st_size < kept.offset:  # the log was cut (repaired)
                kept.builder, kept.offset = TimelineBuilder(journal.run_id), 0
            if identity != (0, 0):
                try:
                    kept.offset = read_log(path, kept.offset, kept.builder)
                except JournalError:
                    kept.builder, kept.offset = TimelineBuilder(journal.run_id), 0
                    raise
        return kept
