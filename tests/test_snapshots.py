"""Captures of a workspace a process watches equal what a walk of the whole workspace finds,
whatever was done to it in between (store/snapshots.py, store/watch.py)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from autoagent.base.errors import SnapshotError
from autoagent.store import snapshots as snapshots_module
from autoagent.store.manifest import Manifest
from autoagent.store.restore import restore
from autoagent.store.snapshots import Snapshots


def _walked(run: Path, root: Path) -> Manifest:
    """The workspace as a walk that reads every file finds it (no earlier capture to trust)."""
    return Snapshots(run.parent / "oracle", root).peek()


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    root, run = tmp_path / "ws", tmp_path / "run"
    (root / "src" / "deep").mkdir(parents=True)
    run.mkdir()
    for number in range(5):
        (root / "src" / f"m{number}.py").write_text(f"x = {number}\n")
    (root / "src" / "deep" / "data.txt").write_text("data\n")
    (root / "notes.md").write_text("notes\n")
    return root, run


def _operations(root: Path) -> list[tuple[str, Callable[[], object]]]:
    def same_size_rewrite() -> None:
        path = root / "notes.md"
        stamp = path.stat().st_mtime_ns
        path.write_text("NOTES\n")
        os.utime(path, ns=(stamp, stamp))  # same size, same mtime: only ctime and content differ

    def replace_folder_with_link() -> None:
        shutil.rmtree(root / "src" / "deep")
        (root / "src" / "deep").symlink_to("../notes.md")

    def new_tree() -> None:
        (root / "out" / "a" / "b").mkdir(parents=True, exist_ok=True)
        (root / "out" / "a" / "b" / "r.txt").write_text("result\n")
        (root / "out" / "top.txt").write_bytes(os.urandom(3000))

    def move_tree() -> None:
        if (root / "out").exists():
            os.replace(root / "out", root / "moved")

    def change_under_moved() -> None:
        target = root / "moved" / "a" / "b" / "r.txt"
        if target.exists():
            target.write_text("changed after the move\n")

    def linked_then_changed_through_the_other_name() -> None:
        if not (root / "linked.txt").exists():
            os.link(root / "notes.md", root / "linked.txt")
        with open(root / "linked.txt", "a") as file:
            file.write("through the other name\n")
        os.chmod(root / "linked.txt", 0o600)

    def folder_becomes_file() -> None:
        if (root / "src").is_dir():
            shutil.rmtree(root / "src")
        (root / "src").write_text("now a file\n")

    def rename_over() -> None:
        (root / "tmp.txt").write_text("replacement\n")
        os.replace(root / "tmp.txt", root / "notes.md")

    return [
        ("a file appended", lambda: (root / "src" / "m1.py").write_text("x = 11\n")),
        ("same size, same mtime", same_size_rewrite),
        ("mode changed", lambda: os.chmod(root / "src" / "m2.py", 0o755)),
        ("a file deleted", lambda: (root / "src" / "m3.py").unlink(missing_ok=True)),
        ("a folder replaced by a link", replace_folder_with_link),
        ("a new tree", new_tree),
        ("a tree moved", move_tree),
        ("a file changed under a moved tree", change_under_moved),
        ("a hard link changed", linked_then_changed_through_the_other_name),
        ("a folder become a file", folder_becomes_file),
        ("renamed over", rename_over),
        ("nothing", lambda: None),
    ]


def test_each_capture_of_a_watched_workspace_is_what_a_whole_walk_finds(tmp_path: Path) -> None:
    root, run = _workspace(tmp_path)
    snapshots = Snapshots(run, root)
    snapshots.capture(0, "before")
    for step, (what, operation) in enumerate(_operations(root), start=1):
        operation()
        _, watched = snapshots.capture(step, "after")
        assert watched == _walked(run, root), what


def test_a_random_mix_of_changes_is_captured_as_a_walk_finds_it(tmp_path: Path) -> None:
    root, run = _workspace(tmp_path)
    snapshots = Snapshots(run, root)
    snapshots.capture(0, "before")
    operations = _operations(root)
    chooser = random.Random(7)
    for step in range(1, 40):
        for _, operation in chooser.sample(operations, 3):
            # an operation that no longer applies to the tree as it now is fails: let it
            with contextlib.suppress(OSError):
                operation()
        _, watched = snapshots.capture(step, "after")
        assert watched == _walked(run, root), f"step {step}"


def test_a_capture_in_which_nothing_changed_lists_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, run = _workspace(tmp_path)
    snapshots = Snapshots(run, root)
    snapshots.capture(0, "before")
    listed: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: str) -> object:
        if str(path).startswith(str(root)):
            listed.append(path)
        return real_scandir(path)

    monkeypatch.setattr(snapshots_module.os, "scandir", counting_scandir)
    capture, _ = snapshots.capture(1, "before")
    assert listed == []
    assert capture.manifest == snapshots.captures()[0].manifest  # the same manifest, not a copy
    (root / "notes.md").write_text("changed\n")
    _, after = snapshots.capture(1, "after")
    assert listed == []  # one path looked at again, no folder listed
    assert after["notes.md"].size == len("changed\n")


def test_an_overflowing_queue_of_changes_falls_back_to_a_whole_walk(tmp_path: Path) -> None:
    root, run = _workspace(tmp_path)
    snapshots = Snapshots(run, root)
    snapshots.capture(0, "before")
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    many = root / "many"
    many.mkdir()
    snapshots.capture(1, "before")  # `many` is watched from here
    for number in range(limit // 2 + 100):  # each file: a create and a close, more than the queue
        (many / f"{number}").touch()
    shutil.rmtree(root / "src")
    _, watched = snapshots.capture(1, "after")
    assert watched == _walked(run, root)
    assert "src/m0.py" not in watched and len([p for p in watched if p.startswith("many/")]) > 0


def test_without_inotify_every_capture_walks_and_is_still_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_inotify(*args: object, **kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr("autoagent.store.watch.INotify", no_inotify)
    root, run = _workspace(tmp_path)
    snapshots = Snapshots(run, root)
    snapshots.capture(0, "before")
    for step, (what, operation) in enumerate(_operations(root)[:6], start=1):
        operation()
        _, walked = snapshots.capture(step, "after")
        assert walked == _walked(run, root), what


def test_a_resumed_process_walks_first_then_watches(tmp_path: Path) -> None:
    root, run = _workspace(tmp_path)
    Snapshots(run, root).capture(0, "before")
    (root / "notes.md").write_text("changed while no process watched\n")
    resumed = Snapshots(run, root)
    _, first = resumed.capture(1, "before")
    assert first["notes.md"].size == len("changed while no process watched\n")
    (root / "src" / "m0.py").unlink()
    _, second = resumed.capture(1, "after")
    assert "src/m0.py" not in second and second == _walked(run, root)


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_few_bytes_changed_in_a_big_file_add_one_piece_and_every_version_comes_back(
    tmp_path: Path,
) -> None:
    root, run = _workspace(tmp_path)
    big = root / "db.bin"
    versions = [os.urandom(1 << 20)]
    big.write_bytes(versions[0])
    snapshots = Snapshots(run, root)
    _, first = snapshots.capture(0, "after")
    stored = _tree_bytes(run / "snapshots")
    refs = [first["db.bin"].ref]
    for step in range(1, 6):
        edited = bytearray(versions[-1])
        edited[300_000:300_008] = step.to_bytes(8, "big")  # in place, as a database writes
        versions.append(bytes(edited))
        big.write_bytes(versions[-1])
        _, entries = snapshots.capture(step, "after")
        refs.append(entries["db.bin"].ref)
    added = _tree_bytes(run / "snapshots") - stored
    assert added < 5 * 100_000  # a 64 KiB piece and a little bookkeeping a step, not 1 MB
    assert len(set(refs)) == 6
    for ref, content in zip(refs, versions, strict=True):
        assert b"".join(snapshots.content(ref)) == content

    restore(snapshots, snapshots.peek(), snapshots.manifest(snapshots.captures()[0].manifest))
    assert big.read_bytes() == versions[0]


def test_a_capture_that_changed_little_is_kept_as_the_change_and_read_back_whole(
    tmp_path: Path,
) -> None:
    root, run = _workspace(tmp_path)
    for number in range(40):
        (root / f"f{number}.txt").write_text(f"{number}\n")
    snapshots = Snapshots(run, root)
    snapshots.capture(0, "before")
    expected = []
    for step in range(1, 40):  # past the longest chain of changes: a whole one comes between
        (root / f"f{step}.txt").write_text(f"changed at {step}\n")
        (root / f"f{step - 1}.txt").unlink()
        _, entries = snapshots.capture(step, "after")
        expected.append((snapshots.captures()[-1].manifest, dict(entries)))
    manifests = run / "snapshots" / "manifests"
    sizes = [(manifests / f"{number}.json").stat().st_size for number, _ in expected]
    assert sorted(sizes)[len(sizes) // 2] < (manifests / "1.json").stat().st_size / 4
    reread = Snapshots(run, root)  # another process: nothing cached
    for number, entries in expected:
        assert reread.manifest(number) == entries


def test_the_root_folders_own_mode_and_times_change_nothing_a_rewind_removes(
    tmp_path: Path,
) -> None:
    root, run = _workspace(tmp_path)
    snapshots = Snapshots(run, root)
    snapshots.capture(0, "before")
    os.chmod(root, 0o700)
    os.utime(root)
    (root / "new.txt").write_text("made by the step\n")
    _, after = snapshots.capture(0, "after")
    assert after == _walked(run, root)
    restore(snapshots, snapshots.peek(), snapshots.manifest(snapshots.captures()[0].manifest))
    assert (root / "notes.md").read_text() == "notes\n" and not (root / "new.txt").exists()


def test_a_capture_naming_a_path_outside_the_workspace_is_refused(tmp_path: Path) -> None:
    root, run = _workspace(tmp_path)
    snapshots = Snapshots(run, root)
    capture, _ = snapshots.capture(0, "before")
    path = run / "snapshots" / "manifests" / f"{capture.manifest}.json"
    data = json.loads(path.read_text())
    data["entries"]["../outside"] = data["entries"]["notes.md"]
    path.write_text(json.dumps(data))
    with pytest.raises(SnapshotError, match="not a path inside the workspace"):
        Snapshots(run, root).manifest(capture.manifest)
