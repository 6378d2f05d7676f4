"""A run on disk: an append-only JSONL event log (the audit trail) and an atomic checkpoint."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..base.errors import JournalError
from ..base.files import runs_dir, sync_folder
from .locks import is_locked, try_lock

CHECKPOINT = "checkpoint.json"
LOCK = "run.lock"
EVENTS = "events.jsonl"
TORN = "events.torn"  # a torn last line cut from the log, kept for the record
NEW_PREFIX = ".new-"  # a run folder being made; renamed to the run id once the run can start

log = logging.getLogger(__name__)


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def check_run_id(run_id: str) -> str:
    """A run id chosen outside (a fleet's): a folder name of letters, digits, - and _."""
    if not RUN_ID.fullmatch(run_id):
        raise JournalError(
            f"{run_id!r} cannot be a run id: at most 64 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return run_id


class RunJournal:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self._lock_fd: int | None = None
        self._repaired = False  # the log's tail is checked once, before the first append
        self._events_fd: int | None = None  # kept open while the run appends: fewer opens
        self._saver: ThreadPoolExecutor | None = None  # saves that need not be waited for
        self._saving: list[Future[None]] = []

    def acquire(self) -> None:
        """Mark the run as live; a second process resuming it gets a clear error."""
        try:
            fd = try_lock(self.run_dir / LOCK)
        except OSError as exc:
            raise JournalError(f"Cannot lock the run in {self.run_dir}: {exc.strerror}.") from exc
        if fd is None:
            raise JournalError(f"Run {self.run_id} is running in another process.")
        self._lock_fd = fd

    def release(self) -> None:
        try:
            self._settle()
        except JournalError as exc:  # only points whose loss is safe are saved in the background
            log.warning("%s", exc)
        if self._saver is not None:
            self._saver.shutdown()
            self._saver = None
        self._close_events()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @classmethod
    def create(cls, home: Path, run_id: str | None = None) -> RunJournal:
        """A new run, locked, in a hidden folder until `publish`: a run that never starts
        (refused, or killed while starting) leaves no run behind. `run_id` is the id chosen
        for it, if any; no run may have it yet."""
        folder = runs_dir(home)
        if run_id is None:
            run_id = new_run_id()
        else:
            check_run_id(run_id)
            if (folder / run_id).exists():
                raise JournalError(f"A run {run_id} exists already: `autoagent resume {run_id}`.")
            _remove_abandoned(folder)  # one that died while starting with this id
        run_dir = folder / f"{NEW_PREFIX}{run_id}"
        try:
            run_dir.mkdir(parents=True)
        except OSError as exc:
            raise JournalError(
                f"Cannot create the run folder {run_dir}: {exc.strerror}. "
                "Check that AUTOAGENT_HOME is writable and the disk is not full."
            ) from exc
        journal = cls(run_dir)
        journal.run_id = run_id
        journal.acquire()
        _remove_abandoned(folder)
        return journal

    def publish(self) -> None:
        """Give a new run its name, once its first checkpoint is saved."""
        if not self.run_dir.name.startswith(NEW_PREFIX):
            return
        target = self.run_dir.parent / self.run_id
        try:
            os.rename(self.run_dir, target)
            sync_folder(target.parent)
        except OSError as exc:
            raise JournalError(f"Cannot create the run folder {target}: {exc.strerror}.") from exc
        self.run_dir = target

    def discard(self) -> None:
        """Remove a new run that could not start; a published run is never removed."""
        if self.run_dir.name.startswith(NEW_PREFIX):
            self.release()
            shutil.rmtree(self.run_dir, ignore_errors=True)

    @classmethod
    def open(cls, home: Path, run_id: str) -> RunJournal:
        run_dir = runs_dir(home) / run_id
        if run_id.startswith(".") or not run_dir.is_dir():
            raise JournalError(
                f"No run {run_id!r} in {runs_dir(home)}: `autoagent runs` lists them."
            )
        return cls(run_dir)

    @property
    def has_checkpoint(self) -> bool:
        return (self.run_dir / CHECKPOINT).is_file()

    def record(self, kind: str, *, sync: bool = False, **data: Any) -> None:
        """Append one event in one write, so a killed process leaves at most a torn last line
        (repaired before the next append). `sync` waits until it is on the disk."""
        line = json.dumps(
            {"time": time.time(), "event": kind, **data}, default=str, ensure_ascii=False
        )
        if not self._repaired:
            self.repair()
        try:
            if self._events_fd is None:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                self._events_fd = os.open(self.run_dir / EVENTS, flags, 0o600)
            _append_whole(self._events_fd, (line + "\n").encode("utf-8", errors="replace"))
            if sync:
                os.fsync(self._events_fd)
        except OSError as exc:
            self._close_events()  # opened again for the next event
            raise JournalError(
                f"Cannot write the run journal in {self.run_dir}: {exc.strerror}."
            ) from exc

    def _close_events(self) -> None:
        if self._events_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._events_fd)
            self._events_fd = None

    def repair(self) -> None:
        """Cut a torn last line (a crash or a full disk mid-write) off the log, so that what
        is appended next starts on a line of its own; the torn text is kept in events.torn.
        A last line that is not an event is torn too, even when a newline ends it."""
        path = self.run_dir / EVENTS
        self._repaired = True
        try:
            with open(path, "rb+") as log:
                size = log.seek(0, os.SEEK_END)
                if size == 0:
                    return
                log.seek(max(size - 1, 0))
                whole = log.read(1) == b"\n"
                end = size - 1 if whole else size
                cut = _after_last_newline(log, end)
                log.seek(cut)
                torn = log.read()
                if whole and _is_event(torn):
                    return
                with open(self.run_dir / TORN, "ab") as kept:
                    kept.write(torn if torn.endswith(b"\n") else torn + b"\n")
                log.truncate(cut)
                log.flush()
                os.fsync(log.fileno())
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalError(f"Cannot repair the run journal {path}: {exc.strerror}.") from exc

    def events(self) -> list[dict[str, Any]]:
        return list(self.iter_events())

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """The events, read as they are needed (a long run's log is never held whole). A last
        line torn by a crash mid-write ends them; a damaged line before it is a JournalError."""
        path = self.run_dir / EVENTS
        try:
            log = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return
        with log:
            number = 0
            line = log.readline()
            while line:
                number += 1
                following = log.readline()
                try:
                    event = json.loads(line.decode("utf-8", errors="replace"))
                    if not isinstance(event, dict):
                        raise ValueError("not an event")
                except ValueError:
                    if not following:
                        return  # a line torn by a crash mid-write: everything before it stands
                    raise JournalError(
                        f"The run journal {path} is corrupt at line {number}."
                    ) from None
                yield event
                line = following

    def save_checkpoint(self, state: dict[str, Any], *, wait: bool = True) -> None:
        """Write the checkpoint atomically: a temp file, fsync, then rename over the old one.

        `wait=False` is for a point whose loss is safe (a crash before it is on the disk only
        means redoing what came after the last save): the writing and its syncs happen on the
        journal's saver thread, in order, while the caller goes on. A save that waits waits for
        those first, so the checkpoint on disk never goes back in time."""
        # Compact: an indented dump goes through json's pure-Python encoder, several times
        # slower, and the checkpoint is written three times a step.
        data = json.dumps(state, ensure_ascii=False, separators=(",", ":"), default=str)
        finished = [future for future in self._saving if future.done()]
        if finished and finished[-1].exception() is not None:
            wait = True  # the last one failed (a full disk?): this one says why if it fails too
        self._saving = [future for future in self._saving if not future.done()]
        if not wait:
            if self._saver is None:
                self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
            self._saving.append(self._saver.submit(self._write_checkpoint, data))
            return
        with contextlib.suppress(JournalError):  # superseded by this save, if it succeeds
            self._settle()
        self._write_checkpoint(data)

    def _settle(self) -> None:
        """Wait for the saves made in the background; raise if the last one failed."""
        saving, self._saving = self._saving, []
        for future in saving:
            future.exception()
        if saving and (failed := saving[-1].exception()) is not None:
            raise failed

    def _write_checkpoint(self, data: str) -> None:
        target = self.run_dir / CHECKPOINT
        tmp_name = None
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.run_dir, prefix=".checkpoint-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
            tmp_name = None
            sync_folder(self.run_dir)
        except OSError as exc:
            raise JournalError(
                f"Cannot save the run's checkpoint in {self.run_dir}: {exc.strerror}. "
                "The previous checkpoint is intact."
            ) from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def load_checkpoint(self) -> dict[str, Any]:
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            raise JournalError(self.missing_checkpoint())
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise JournalError(
                f"The checkpoint {path} cannot be read ({exc}); the run cannot be resumed. "
                "It was left as it is."
            ) from exc
        if not isinstance(data, dict) or "run_id" not in data:
            raise JournalError(
                f"The checkpoint {path} is not a run checkpoint; it was left as it is."
            )
        return data

    def missing_checkpoint(self) -> str:
        if (self.run_dir / EVENTS).is_file():
            return (
                f"Run {self.run_id} has no checkpoint.json (it was deleted or never written), so "
                f"it cannot be resumed; its event log is intact: `autoagent show {self.run_id}` "
                "shows what it did."
            )
        return (
            f"Run {self.run_id} has neither a checkpoint.json nor an events.jsonl in "
            f"{self.run_dir}: nothing of it can be read."
        )


def _append_whole(fd: int, data: bytes) -> None:
    """Append all of `data` or none of it: a short write (a disk filling up) is carried on,
    and a write that fails half-way is taken back, so no later line is glued onto a torn one."""
    start = os.fstat(fd).st_size
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise


def _is_event(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _after_last_newline(log: Any, size: int) -> int:
    """The offset just after the last newline of an open file (0 if it has none)."""
    end = size
    while end > 0:
        start = max(end - (1 << 16), 0)
        log.seek(start)
        chunk = log.read(end - start)
        if (found := chunk.rfind(b"\n")) >= 0:
            return start + found + 1
        end = start
    return 0


def _remove_abandoned(folder: Path) -> None:
    """Remove new-run folders whose process died before the run could start."""
    for entry in folder.glob(f"{NEW_PREFIX}*"):
        if entry.is_dir() and not is_live(entry):
            shutil.rmtree(entry, ignore_errors=True)


def is_live(run_dir: Path) -> bool:
    """True while a process holds the run's lock."""
    return is_locked(run_dir / LOCK)
