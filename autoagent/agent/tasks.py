"""The task list: ids, order and status. A reorder never loses or invents a task."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field


class Task(BaseModel):
    id: int
    text: str
    result: str | None = None  # set when the task is done


MAX_OPEN_TASKS = 50  # beyond this, new tasks wait until some are done: prompts stay bounded
MAX_TASK_CHARS = 500


def _normalized(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


class TaskList(BaseModel):
    """Saved with the run: the open tasks in order, the done ones, and the next id."""

    open_tasks: list[Task] = Field(default_factory=list)
    done_tasks: list[Task] = Field(default_factory=list)
    next_id: int = 1

    @property
    def open(self) -> list[Task]:
        return list(self.open_tasks)

    @property
    def done(self) -> list[Task]:
        return list(self.done_tasks)

    @property
    def current(self) -> Task | None:
        return self.open_tasks[0] if self.open_tasks else None

    def add(self, texts: Iterable[str]) -> list[Task]:
        """Append new tasks, skipping blanks and duplicates of open tasks (or of each other)."""
        seen = {_normalized(t.text) for t in self.open_tasks}
        added = []
        for text in texts:
            if len(self.open_tasks) >= MAX_OPEN_TASKS:
                break
            text = " ".join(str(text).split())[:MAX_TASK_CHARS]
            key = _normalized(text)
            if not key or key in seen:
                continue
            seen.add(key)
            task = Task(id=self.next_id, text=text)
            self.next_id += 1
            self.open_tasks.append(task)
            added.append(task)
        return added

    def plan(self, texts: Sequence[str], order: Sequence[int]) -> tuple[list[Task], bool]:
        """Add the new tasks `texts`, then put the open tasks in `order`: the ids of open
        tasks, the new ones counted on from `next_id` as listed (before any was skipped).
        Returns the tasks added and whether the order of the open tasks changed."""
        first = self.next_id
        renumbered: dict[int, int] = {}
        added: list[Task] = []
        for offset, text in enumerate(texts):
            for task in self.add([text]):
                renumbered[first + offset] = task.id
                added.append(task)
        before = [t.id for t in self.open_tasks]
        self.reorder(
            renumbered[i] if i >= first else i for i in order if i < first or i in renumbered
        )
        return added, [t.id for t in self.open_tasks] != before

    def reorder(self, order: Iterable[int]) -> None:
        """Put the listed ids first, in that order; the rest keep their relative order after.

        Unknown and repeated ids are ignored, so no task is lost or invented.
        """
        by_id = {task.id: task for task in self.open_tasks}
        first: list[Task] = []
        for task_id in order:
            task = by_id.pop(task_id, None)
            if task is not None:
                first.append(task)
        self.open_tasks = first + [t for t in self.open_tasks if t.id in by_id]

    def complete(self, task_id: int, result: str) -> Task:
        for position, task in enumerate(self.open_tasks):
            if task.id == task_id:
                del self.open_tasks[position]
                task.result = result
                self.done_tasks.append(task)
                return task
        raise KeyError(f"no open task {task_id}")
