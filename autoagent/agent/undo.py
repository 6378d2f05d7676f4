"""`resume --from-step N`: the run goes on from before step N. Those steps stay in the journal,
marked undone; the agent is told which were undone and why; recall no longer brings them back.
The same for one step undone at the prompt ('u'), its workspace changes with it."""

from __future__ import annotations

import re

from ..base.errors import ConfigError
from ..base.status import RunStatus
from ..base.text import trim_middle
from ..store.journal import RunJournal
from ..store.snapshots import Snapshots
from .events import Rewound, StepsUndone
from .rewind import prepare_undo_in_run, rewinds
from .state import RunState

COMMAND_CHARS = 120
_SUMMARY_STEP = re.compile(r"step (\d+):")
UNDONE_AT_THE_PROMPT = "undone at the prompt"


def undoable_step(state: RunState) -> int | None:
    """The step whose command the human may undo at the next prompt: the last command that
    ran, when it changed the workspace and is not undone already."""
    ran = [record for record in state.recent if record.ran]
    if not ran:
        return None
    last = ran[-1]
    changed = bool(last.changes) and last.changes_problem is None
    return last.step if changed and last.step not in state.undone else None


def undo_at_prompt(
    journal: RunJournal, state: RunState, snapshots: Snapshots, step: int, proposed: str
) -> tuple[Rewound, StepsUndone]:
    """Put the workspace back as it was before step `step`'s command and take the step out
    of the run's state, as the human asked at the prompt of the next one (which proposed
    `proposed` and does not run); SnapshotError when the workspace cannot be put back."""
    rewound = prepare_undo_in_run(journal, snapshots, step).apply()
    listing = _commands(journal, {step})
    state.recent = [r for r in state.recent if r.step != step]
    state.unwritten = [r for r in state.unwritten if r.step != step]
    state.undone = sorted({*state.undone, step})
    state.files = [f for f in state.files if (state.config.workspace / f).exists()]
    what = f" ({listing[step]})" if step in listing else ""
    notice = (
        f"The human undid step {step}{what}: the workspace is back as it was before it; do not "
        f"count on its result or files. Your proposed {proposed} was not run."
    )
    if rewound.lost:
        notice += " Not brought back: " + ", ".join(rewound.lost) + "."
    state.notices = [*state.notices, notice]
    return rewound, StepsUndone([step], UNDONE_AT_THE_PROMPT)


def undo_steps(
    journal: RunJournal, state: RunState, from_step: int, reason: str = ""
) -> tuple[StepsUndone, list[str]]:
    """Take steps `from_step` on out of the run's state; the event that records it, and notes
    for the human."""
    if not 1 <= from_step <= state.step:
        raise ConfigError(
            f"Run {state.run_id} has steps 1 to {state.step}: --from-step {from_step} is not one."
        )
    steps = list(range(from_step, state.step + 1))
    listing = _commands(journal, set(steps))
    state.recent = [r for r in state.recent if r.step < from_step]
    state.unwritten = [r for r in state.unwritten if r.step < from_step]
    state.earlier = [line for line in state.earlier if _summary_step(line) < from_step]
    if state.current is not None and state.current.step >= from_step:
        state.current = None
    state.undone = sorted(set(state.undone) | set(steps))
    state.files = [f for f in state.files if (state.config.workspace / f).exists()]
    if state.status is RunStatus.FINISHED:
        state.status, state.cause, state.goal_report = RunStatus.STOPPED, None, []
    span = f"step {from_step}" if len(steps) == 1 else f"steps {from_step}-{steps[-1]}"
    done = "; ".join(f"step {s}: {listing[s]}" for s in steps if s in listing)
    notice = (
        f"The human undid {span}" + (f" ({done})" if done else "") + ". What they did no longer "
        "holds: do not count on their results or files."
    )
    notes = []
    if _rewound_to(journal) == from_step:
        notice += f" The workspace is back as it was before step {from_step}."
    else:
        notes.append(
            f"The workspace was not rewound to before step {from_step}: `autoagent rewind "
            f"{state.run_id} --to-step {from_step}` does it."
        )
    if reason:
        notice += f" Why: {reason}"
    state.notices = [*state.notices, notice]
    return StepsUndone(steps, reason), notes


def _commands(journal: RunJournal, steps: set[int]) -> dict[int, str]:
    """Each step's command and arguments, from the journal."""
    found: dict[int, str] = {}
    for entry in journal.events():
        record = entry.get("record")
        if entry.get("event") != "Proposed" or not isinstance(record, dict):
            continue
        step = record.get("step")
        proposal = record.get("proposal") or {}
        if step in steps and isinstance(proposal, dict):
            args = trim_middle(str(proposal.get("args", {})), COMMAND_CHARS)
            found[step] = f"{proposal.get('command')} {args}"
    return found


def _summary_step(line: str) -> int:
    match = _SUMMARY_STEP.match(line)
    return int(match.group(1)) if match else 0


def _rewound_to(journal: RunJournal) -> int | None:
    done: list[Rewound] = rewinds(journal)
    return done[-1].to_step if done else None
