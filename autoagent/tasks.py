"""The task list: ids, order and status. A reorder never loses or invents a task."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Task:
    id: int
    text: str
    result: str | None = None  # set when the task is done


MAX_OPEN_TASKS = 50  # beyond this, new tasks wait until some are done: prompts stay bounded
MAX_TASK_CHARS = 500


def _normalized(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


class TaskList:
    def __init__(self) -> None:
        self._open: list[Task] = []
        self._done: list[Task] = []
        self._next_id = 1

    @property
    def open(self) -> list[Task]:
        return list(self._open)

    @property
    def done(self) -> list[Task]:
        return list(self._done)

    @property
    def current(self) -> Task | None:
        return self._open[0] if self._open else None

    def add(self, texts: Iterable[str]) -> list[Task]:
        """Append new tasks, skipping blanks and duplicates of open tasks (or of each other)."""
        seen = {_normalized(t.text) for t in self._open}
        added = []
        for text in texts:
            if len(self._open) >= MAX_OPEN_TASKS:
                break
            text = " ".join(str(text).split())[:MAX_TASK_CHARS]
            key = _normalized(text)
            if not key or key in seen:
                continue
            seen.add(key)
            task = Task(self._next_id, text)
            self._next_id += 1
            self._open.append(task)
            added.append(task)
        return added

    def reorder(self, order: Iterable[int]) -> None:
        """Put the listed ids first, in that order; the rest keep their relative order after.

        Unknown and repeated ids are ignored, so no task is lost or invented.
        """
        by_id = {task.id: task for task in self._open}
        first: list[Task] = []
        for task_id in order:
            task = by_id.pop(task_id, None)
            if task is not None:
                first.append(task)
        self._open = first + [t for t in self._open if t.id in by_id]

    def complete(self, task_id: int, result: str) -> Task:
        for position, task in enumerate(self._open):
            if task.id == task_id:
                del self._open[position]
                task.result = result
                self._done.append(task)
                return task
        raise KeyError(f"no open task {task_id}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": [asdict(t) for t in self._open],
            "done": [asdict(t) for t in self._done],
            "next_id": self._next_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskList:
        tasks = cls()
        tasks._open = [Task(**t) for t in data["open"]]
        tasks._done = [Task(**t) for t in data["done"]]
        tasks._next_id = int(data["next_id"])
        return tasks
