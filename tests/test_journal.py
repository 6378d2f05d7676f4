import json
import os
import threading
import time
from pathlib import Path

import pytest

from autoagent.base.errors import JournalError
from autoagent.store.journal import RunJournal
from autoagent.store.runs import read_runs


def new_run(home: Path) -> RunJournal:
    journal = RunJournal.create(home)
    journal.save_checkpoint({"run_id": journal.run_id, "step": 0})
    journal.publish()
    return journal


def test_checkpoint_is_replaced_atomically_and_listed(tmp_path: Path) -> None:
    journal = new_run(tmp_path)
    state = {
        "run_id": journal.run_id,
        "profile": {"name": "Scout"},
        "status": "running",
        "step": 3,
        "spend": {"cost": 0.5},
        "started": 1.0,
    }
    journal.save_checkpoint(state)
    journal.save_checkpoint({**state, "step": 4})
    assert journal.load_checkpoint()["step"] == 4
    assert sorted(p.name for p in journal.run_dir.iterdir()) == ["checkpoint.json", "run.lock"]
    [summary] = read_runs(tmp_path)
    assert (summary.name, summary.status, summary.steps, summary.cost) == (
        "Scout",
        "running",
        4,
        0.5,
    )
    with pytest.raises(JournalError, match="running in another process"):
        RunJournal.open(tmp_path, journal.run_id).acquire()
    journal.release()  # as if its process had died
    assert read_runs(tmp_path)[0].status == "interrupted"


def test_a_new_run_is_hidden_until_published_and_discarded_if_it_cannot_start(
    tmp_path: Path,
) -> None:
    journal = RunJournal.create(tmp_path)
    assert journal.run_dir.name.startswith(".new-") and read_runs(tmp_path) == []
    journal.discard()
    assert list(journal.run_dir.parent.iterdir()) == []
    killed = RunJournal.create(tmp_path)  # its process dies before the run can start
    killed.release()
    later = new_run(tmp_path)
    assert [p.name for p in later.run_dir.parent.iterdir()] == [later.run_id]
    with pytest.raises(JournalError, match="No run"):
        RunJournal.open(tmp_path, killed.run_dir.name)


def test_corrupt_checkpoint_refuses_and_is_left_alone(tmp_path: Path) -> None:
    journal = new_run(tmp_path)
    (journal.run_dir / "checkpoint.json").write_text('{"run_id": "x", "step": ')
    with pytest.raises(JournalError, match="cannot be read"):
        journal.load_checkpoint()
    assert (journal.run_dir / "checkpoint.json").read_text() == '{"run_id": "x", "step": '
    assert read_runs(tmp_path)[0].label == "corrupt"


def test_a_missing_checkpoint_is_named_as_such(tmp_path: Path) -> None:
    journal = new_run(tmp_path)
    journal.record("A", n=1)
    (journal.run_dir / "checkpoint.json").unlink()
    with pytest.raises(JournalError, match=r"no checkpoint\.json.*autoagent show"):
        journal.load_checkpoint()
    [summary] = read_runs(tmp_path)
    assert summary.label == "no checkpoint" and "event log is intact" in summary.problem


def test_events_survive_a_torn_last_line_but_not_a_corrupt_middle(tmp_path: Path) -> None:
    journal = new_run(tmp_path)
    journal.record("A", n=1)
    journal.record("B", n=2)
    with open(journal.run_dir / "events.jsonl", "a") as log:
        log.write('{"event": "C", "n"')
    assert [e["event"] for e in journal.events()] == ["A", "B"]
    lines = (journal.run_dir / "events.jsonl").read_text().splitlines()
    (journal.run_dir / "events.jsonl").write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(JournalError, match="line 2"):
        journal.events()


def test_a_torn_last_line_is_cut_before_the_next_append(tmp_path: Path) -> None:
    journal = new_run(tmp_path)
    journal.record("A", n=1)
    with open(journal.run_dir / "events.jsonl", "a") as log:
        log.write('{"event": "B", "n"')
    resumed = RunJournal.open(tmp_path, journal.run_id)  # the next process
    resumed.record("C", n=3)
    assert [e["event"] for e in resumed.events()] == ["A", "C"]
    assert (journal.run_dir / "events.torn").read_text() == '{"event": "B", "n"\n'


def test_full_disk_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = new_run(tmp_path)
    journal.save_checkpoint({"run_id": journal.run_id, "step": 1})

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(
        JournalError, match=r"No space left on device.*previous checkpoint is intact"
    ):
        journal.save_checkpoint({"run_id": journal.run_id, "step": 2})
    monkeypatch.undo()
    assert json.loads((journal.run_dir / "checkpoint.json").read_text())["step"] == 1
    names = sorted(p.name for p in journal.run_dir.iterdir())
    assert names == ["checkpoint.json", "run.lock"]  # no temp file left


def background_saves_done(journal: RunJournal) -> None:
    """Wait until the saves handed to the journal's saver thread have run (or failed)."""
    deadline = time.monotonic() + 10
    while any(not f.done() for f in journal._saving):
        assert time.monotonic() < deadline, "a background save never ended"
        time.sleep(0.01)


def test_saves_not_waited_for_land_in_order_before_the_next_one_that_waits(
    tmp_path: Path,
) -> None:
    journal = new_run(tmp_path)
    for step in range(1, 6):
        journal.save_checkpoint({"run_id": journal.run_id, "step": step}, wait=False)
    journal.save_checkpoint({"run_id": journal.run_id, "step": 6})  # waits for the five
    assert journal.load_checkpoint()["step"] == 6
    journal.save_checkpoint({"run_id": journal.run_id, "step": 7}, wait=False)
    journal.release()  # waits for it too
    assert json.loads((journal.run_dir / "checkpoint.json").read_text())["step"] == 7
    assert sorted(p.name for p in journal.run_dir.iterdir()) == ["checkpoint.json", "run.lock"]


def test_a_failed_background_save_is_superseded_by_the_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    journal = new_run(tmp_path)
    real_fsync = os.fsync
    full = threading.Event()
    full.set()

    def fsync(fd: int) -> None:
        if full.is_set():
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", fsync)
    journal.save_checkpoint({"run_id": journal.run_id, "step": 1}, wait=False)
    background_saves_done(journal)
    full.clear()
    journal.save_checkpoint({"run_id": journal.run_id, "step": 2})  # succeeds: no error
    assert journal.load_checkpoint()["step"] == 2
    full.set()
    journal.save_checkpoint({"run_id": journal.run_id, "step": 3}, wait=False)
    journal.release()  # the last one failed: said in the log, the step-2 checkpoint stands
    assert "No space left on device" in caplog.text
    assert journal.load_checkpoint()["step"] == 2


def test_a_failing_background_save_is_told_at_the_next_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = new_run(tmp_path)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    journal.save_checkpoint({"run_id": journal.run_id, "step": 1}, wait=False)
    background_saves_done(journal)
    with pytest.raises(JournalError, match="No space left on device"):  # not silently queued
        journal.save_checkpoint({"run_id": journal.run_id, "step": 2}, wait=False)
    monkeypatch.undo()
    journal.release()
    assert json.loads((journal.run_dir / "checkpoint.json").read_text())["step"] == 0


def test_a_last_line_that_is_not_an_event_is_cut_even_with_its_newline(tmp_path: Path) -> None:
    journal = new_run(tmp_path)
    journal.record("A", n=1)
    with open(journal.run_dir / "events.jsonl", "a") as log:
        log.write("garbage from a full disk\n")
    resumed = RunJournal.open(tmp_path, journal.run_id)
    resumed.record("B", n=2)
    assert [e["event"] for e in resumed.events()] == ["A", "B"]
    assert (journal.run_dir / "events.torn").read_text() == "garbage from a full disk\n"


def test_a_short_write_is_finished_and_a_failed_one_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = new_run(tmp_path)
    journal.record("A", n=1)
    real_write = os.write
    calls = {"n": 0}

    def filling_disk(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, data[:10])  # the disk takes a part
        if calls["n"] == 2:
            return real_write(fd, data)  # then the rest
        if calls["n"] == 3:
            return real_write(fd, data[:7])  # a part of the next line, and then
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")  # the disk is full
        return real_write(fd, data)

    monkeypatch.setattr("autoagent.store.journal.os.write", filling_disk)
    journal.record("B", n=2)  # written in two pieces
    with pytest.raises(JournalError, match="No space left"):
        journal.record("C", n=3)  # half written, then the disk is full
    journal.record("D", n=4)
    assert [e["event"] for e in journal.events()] == ["A", "B", "D"]
    for line in (journal.run_dir / "events.jsonl").read_text().splitlines():
        json.loads(line)
