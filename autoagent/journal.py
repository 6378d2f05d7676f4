"""A run on disk: an append-only JSONL event log (the audit trail) and an atomic checkpoint."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import JournalError
from .locks import is_locked, try_lock

CHECKPOINT = "checkpoint.json"
LOCK = "run.lock"
EVENTS = "events.jsonl"
UNFINISHED = {"running", "interrupted", "stopped", "failed"}


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def runs_dir(home: Path) -> Path:
    return home / "runs"


class RunJournal:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self._lock_fd: int | None = None

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
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @classmethod
    def create(cls, home: Path) -> RunJournal:
        run_dir = runs_dir(home) / new_run_id()
        try:
            run_dir.mkdir(parents=True)
        except OSError as exc:
            raise JournalError(
                f"Cannot create the run folder {run_dir}: {exc.strerror}. "
                "Check that AUTOAGENT_HOME is writable and the disk is not full."
            ) from exc
        return cls(run_dir)

    @classmethod
    def open(cls, home: Path, run_id: str) -> RunJournal:
        run_dir = runs_dir(home) / run_id
        if not (run_dir / CHECKPOINT).is_file():
            raise JournalError(
                f"No run {run_id!r} in {runs_dir(home)}: `autoagent runs` lists them."
            )
        return cls(run_dir)

    def record(self, kind: str, **data: Any) -> None:
        """Append one event. Flushed at once, so a killed process loses at most a torn last line."""
        line = json.dumps(
            {"time": time.time(), "event": kind, **data}, default=str, ensure_ascii=False
        )
        try:
            with open(self.run_dir / EVENTS, "a", encoding="utf-8", errors="replace") as log:
                log.write(line + "\n")
        except OSError as exc:
            raise JournalError(
                f"Cannot write the run journal in {self.run_dir}: {exc.strerror}."
            ) from exc

    def events(self) -> list[dict[str, Any]]:
        path = self.run_dir / EVENTS
        if not path.exists():
            return []
        events = []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError("not an event")
                events.append(event)
            except ValueError:
                if number == len(lines):
                    break  # a line torn by a crash mid-write: everything before it stands
                raise JournalError(f"The run journal {path} is corrupt at line {number}.") from None
        return events

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write the checkpoint atomically: a temp file, fsync, then rename over the old one."""
        target = self.run_dir / CHECKPOINT
        data = json.dumps(state, ensure_ascii=False, indent=1, default=str)
        tmp_name = None
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.run_dir, prefix=".checkpoint-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
            tmp_name = None
            dir_fd = os.open(self.run_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
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


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    name: str
    status: str
    steps: int
    cost: float
    started: float
    readable: bool = True


def list_runs(home: Path) -> list[RunSummary]:
    """Every run under `home`, newest first; unreadable ones are listed as such."""
    folder = runs_dir(home)
    if not folder.is_dir():
        return []
    runs = []
    for run_dir in sorted(folder.iterdir(), reverse=True):
        if not run_dir.is_dir():
            continue
        try:
            runs.append(_summary(run_dir, RunJournal(run_dir).load_checkpoint()))
        except (JournalError, TypeError, ValueError, AttributeError):
            runs.append(RunSummary(run_dir.name, "?", "corrupt", 0, 0.0, 0.0, readable=False))
    return runs


def _summary(run_dir: Path, state: dict[str, Any]) -> RunSummary:
    status = str(state.get("status", "?"))
    if status == "running" and not is_live(run_dir):
        status = "interrupted"  # its process died without saying so (a crash, kill -9)
    return RunSummary(
        run_id=run_dir.name,
        name=str((state.get("profile") or {}).get("name", "?")),
        status=status,
        steps=int(state.get("step", 0)),
        cost=float((state.get("spend") or {}).get("cost", 0.0)),
        started=float(state.get("started", 0.0)),
    )


def is_live(run_dir: Path) -> bool:
    """True while a process holds the run's lock."""
    return is_locked(run_dir / LOCK)
