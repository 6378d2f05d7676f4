"""Noticing an agent that goes round in circles: repeats, A-B-A-B cycles, and stalls."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

REPEATS = 3  # the same action (and result) this many times in a row
CYCLE = 4  # A-B-A-B over the last four actions


def _action_key(command: str, args: dict[str, Any]) -> str:
    return command + " " + json.dumps(args, sort_keys=True, ensure_ascii=False)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()


@dataclass
class LoopDetector:
    """Fed every step's action and result; says what repeats, if something does."""

    stall_steps: int = 8  # steps with no new result, file or task before calling it a stall
    _recent: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=CYCLE))
    _seen_results: set[str] = field(default_factory=set)
    _since_progress: int = 0

    def observe(
        self, command: str, args: dict[str, Any], result: str, *, progress: bool
    ) -> str | None:
        """Record one step; `progress` is True when it made a file or a new task."""
        action, outcome = _action_key(command, args), _digest(result)
        self._recent.append((action, outcome))
        new_result = outcome not in self._seen_results
        self._seen_results.add(outcome)
        self._since_progress = 0 if (progress or new_result) else self._since_progress + 1

        steps = list(self._recent)
        last = steps[-REPEATS:]
        if len(last) == REPEATS and len(set(last)) == 1:
            return f"the same command ({_short(action)}) ran {REPEATS} times with the same result"
        actions = [a for a, _ in steps]
        if (
            len(actions) == CYCLE
            and actions[0] == actions[2]
            and actions[1] == actions[3]
            and actions[0] != actions[1]
        ):
            return (
                f"the commands alternate in a cycle: {_short(actions[0])} then "
                f"{_short(actions[1])}, twice"
            )
        if self._since_progress >= self.stall_steps:
            return f"{self._since_progress} steps in a row brought no new result, file or task"
        return None


def _short(action: str) -> str:
    return action if len(action) <= 120 else action[:117] + "..."
