"""Noticing an agent that goes round in circles: repeats, A-B-A-B cycles, and stalls."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

REPEATS = 3  # the same action (and result) this many times in a row
CYCLE = 4  # A-B-A-B over the last four actions


def _action_key(command: str, args: dict[str, Any]) -> str:
    return command + " " + json.dumps(args, sort_keys=True, ensure_ascii=False)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()


class Seen(BaseModel):
    """One observed step: its action (shortened for messages), and digests to compare."""

    label: str
    action: str
    outcome: str


class LoopDetector(BaseModel):
    """Fed every step's action and result; says what repeats, if something does.

    Saved with the run, so a resumed run remembers what its agent already did."""

    stall_steps: int = 8  # steps with no new result, file or task before calling it a stall
    recent: list[Seen] = Field(default_factory=list)  # the last CYCLE steps
    seen_results: set[str] = Field(default_factory=set)
    since_progress: int = 0
    warned: bool = False  # the agent was told it loops, last step

    def observe(
        self, command: str, args: dict[str, Any], result: str, *, progress: bool
    ) -> str | None:
        """Record one step; `progress` is True when it made a file or a new task."""
        action = _action_key(command, args)
        seen = Seen(label=_short(action), action=_digest(action), outcome=_digest(result))
        self.recent = [*self.recent, seen][-CYCLE:]
        new_result = seen.outcome not in self.seen_results
        self.seen_results.add(seen.outcome)
        self.since_progress = 0 if (progress or new_result) else self.since_progress + 1

        last = {(s.action, s.outcome) for s in self.recent[-REPEATS:]}
        if len(self.recent) >= REPEATS and len(last) == 1:
            return f"the same command ({seen.label}) ran {REPEATS} times with the same result"
        actions = [s.action for s in self.recent]
        if (
            len(actions) == CYCLE
            and actions[0] == actions[2]
            and actions[1] == actions[3]
            and actions[0] != actions[1]
        ):
            return (
                f"the commands alternate in a cycle: {self.recent[0].label} then "
                f"{self.recent[1].label}, twice"
            )
        if self.since_progress >= self.stall_steps:
            return f"{self.since_progress} steps in a row brought no new result, file or task"
        return None


def _short(action: str) -> str:
    return action if len(action) <= 120 else action[:117] + "..."
