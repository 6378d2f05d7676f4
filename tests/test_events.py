"""Every event type, written to a run's journal and read back by `show` and the console."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

from autoagent.agent.events import (
    TAGS,
    Authorized,
    CaptureFailed,
    CommandDone,
    CommandStarted,
    CommandsWithdrawn,
    Event,
    HumanAsked,
    Invalid,
    LoopWarning,
    Proposed,
    Rewound,
    RunEnded,
    RunStarted,
    StepFinished,
    StepRecovered,
    StepsUndone,
    TasksChanged,
    Thinking,
    from_data,
    to_data,
)
from autoagent.agent.profile import AgentProfile
from autoagent.agent.record import StepProposal, StepRecord, StepResult
from autoagent.agent.tasks import Task
from autoagent.base.status import RunStatus, StepStatus, StopCause
from autoagent.cli.timeline import load_timeline
from autoagent.model.pricing import Spend
from autoagent.store.journal import RunJournal
from autoagent.store.manifest import FileChange

from .cli_helpers import cli_env


def one_of_each(journal: RunJournal) -> list[Event]:
    """A run's worth of events, one of every type (a new type must be added here)."""
    profile = AgentProfile(name="Scout", role="a test agent", goals=["Tidy the notes"])
    proposal = StepProposal(task="Tidy", command="write_file", args={"path": "a.txt"})
    record = StepRecord(run_id=journal.run_id, step=1, proposal=proposal)
    changes = [FileChange(path="a.txt", change="added", size_after=312)]
    ran = record.advance(
        StepStatus.DONE, result=StepResult(output="Wrote a.txt", ok=True), changes=changes
    )
    return [
        RunStarted(journal.run_id, str(journal.run_dir), "/ws", False, profile=profile),
        Thinking("execution"),
        Proposed(record),
        Invalid(record.advance(StepStatus.INVALID, invalid="no such file")),
        Authorized(record.advance(StepStatus.RUNNING)),
        CommandStarted(record.advance(StepStatus.RUNNING)),
        CommandDone(ran),
        StepRecovered(ran),
        HumanAsked("0123456789ab", 1, "approval", "delete_file", {"path": "a.txt"}, "high"),
        TasksChanged([Task(id=2, text="Check the notes")], [Task(id=2, text="Check the notes")]),
        StepFinished(ran, Spend(cost=0.001, calls=2), None),
        LoopWarning("the same write three times", escalated=False),
        CommandsWithdrawn("The MCP server notes stopped: its tools are gone.", ["mcp__notes__x"]),
        CaptureFailed(2, "Cannot record the workspace: No space left on device."),
        Rewound(1, 1, 3, [FileChange(path="a.txt", change="deleted", size_before=312)]),
        StepsUndone([1], "a.txt was wrong"),
        RunEnded(
            RunStatus.STOPPED,
            "Reached the limit of 1 steps (--max-steps).",
            str(journal.run_dir),
            "/ws",
            Spend(cost=0.001, calls=2),
            1,
            cause=StopCause.MAX_STEPS,
        ),
    ]


def test_every_event_type_has_a_tag_and_comes_back_as_it_went(tmp_path: Path) -> None:
    journal = RunJournal.create(tmp_path)
    events = one_of_each(journal)
    assert {event.event for event in events} == TAGS == {k.__name__ for k in get_args(Event)}
    for event in events:
        assert from_data(event.event, {"time": 1.0, **to_data(event)}) == event
    assert from_data("model_call", {"tokens": 3}) is None  # the journal's own entries


def test_show_and_the_console_replay_every_event_type(tmp_path: Path) -> None:
    home = tmp_path / "home"
    journal = RunJournal.create(home)
    checkpoint = {"run_id": journal.run_id, "status": "stopped", "step": 1, "started": time.time()}
    journal.save_checkpoint(checkpoint)
    journal.publish()
    for event in one_of_each(journal):
        journal.record(event.event, **to_data(event))
    journal.release()

    shown = subprocess.run(
        [sys.executable, "-m", "autoagent", "show", journal.run_id],
        env=cli_env(tmp_path, None, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    for text in (
        "Tidy the notes",
        "no such file",
        "Wrote a.txt",
        "Check the notes",
        "the same write three times",
        "The MCP server notes stopped: its tools are gone.",
        "Asked a human whether delete_file may run (request 0123456789ab)",
        "Changed: a.txt (+312 B)",
        "No space left on device",
        "Rewound to before step 1: a.txt (deleted)",
        "UNDONE: step 1 (a.txt was wrong)",
        "Run stopped: Reached the limit of 1 steps",
    ):
        assert text in shown.stdout, text

    timeline = load_timeline(RunJournal(journal.run_dir))
    notes = {(note.kind, note.text) for note in timeline.items if not hasattr(note, "record")}
    assert ("withdrawn", "The MCP server notes stopped: its tools are gone.") in notes
    assert ("warning", "the same write three times") in notes
    assert ("asked", "May delete_file run? (request 0123456789ab)") in notes
    assert ("rewound", "a.txt (deleted)") in notes and ("undone", "a.txt was wrong") in notes
    [step] = [item for item in timeline.items if hasattr(item, "record")]
    assert step.undone and step.changes_text == "Changed: a.txt (+312 B)"
    assert timeline.status == "stopped" and timeline.steps == 1
