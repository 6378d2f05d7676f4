"""The workspace boundary: every refusal leaves everything outside the workspace unchanged."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from autoagent.base.errors import CommandError, ConfigError, RefusedError, WorkspaceGone
from autoagent.tools.workspace import Workspace


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its kind and content (or link target)."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink():
                state[str(path)] = "link:" + os.readlink(path)
            elif path.is_dir():
                state[str(path)] = "dir"
            else:
                state[str(path)] = "file:" + path.read_bytes().decode("latin-1")
    return state


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("top secret")
    return folder


@pytest.fixture
def ws(tmp_path: Path, outside: Path) -> Workspace:
    return Workspace(tmp_path / "ws", forbidden=[tmp_path / "ws" / ".autoagent"])


def attempt_everything(ws: Workspace, path: str) -> None:
    """Every operation on `path` must be refused (or fail) without touching the outside."""
    for operation in (
        lambda: ws.read_text(path),
        lambda: ws.write_text(path, "pwned"),
        lambda: ws.append_text(path, "pwned"),
        lambda: ws.delete(path),
        lambda: ws.list_dir(path),
        lambda: ws.resolve(path),
    ):
        with pytest.raises(RefusedError, match="Refused"):
            operation()


BAD_PATHS = [
    "../outside/secret.txt",
    "../outside/new.txt",
    "a/../../outside/secret.txt",
    "./../outside/secret.txt",
    "..",
    "/etc/passwd",
    "/tmp/pwned.txt",
    "~/pwned.txt",
    "~root/pwned.txt",
    "notes\x00.txt",
    "line\nbreak.txt",
    "C:\\Windows\\win.ini",
    "C:/x.txt",
    "a\\..\\..\\x",
    "\\\\server\\share\\x",
    ".autoagent/runs/x.json",
    "sub/../.autoagent/x",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths_are_refused_and_nothing_outside_changes(
    ws: Workspace, tmp_path: Path, path: str
) -> None:
    (ws.root / ".autoagent").mkdir()
    (ws.root / ".autoagent" / "x").write_text("agent data")
    before = snapshot(tmp_path)
    attempt_everything(ws, path)
    assert snapshot(tmp_path) == before


def test_the_parent_of_an_absolute_traversal_is_checked(ws: Workspace, outside: Path) -> None:
    with pytest.raises(RefusedError, match="outside the workspace"):
        ws.write_text(str(ws.root / ".." / "outside" / "x.txt"), "pwned")
    assert not (outside / "x.txt").exists()


def test_absolute_paths_inside_the_workspace_are_accepted(ws: Workspace) -> None:
    ws.write_text(str(ws.root / "notes.md"), "hello")
    assert ws.read_text("notes.md") == "hello"
    assert ws.display(str(ws.root / "a" / ".." / "notes.md")) == "notes.md"


def test_dot_dot_that_stays_inside_is_fine(ws: Workspace) -> None:
    ws.write_text("a/../b.txt", "one")
    ws.write_text("a/x/../c.txt", "two")
    assert (ws.root / "b.txt").read_text() == "one"
    assert (ws.root / "a" / "c.txt").read_text() == "two"
    assert ws.display("a/..") == "."
    assert ws.list_dir("a/..") == ["a/", "b.txt", "a/c.txt"]


def test_read_write_append_delete_roundtrip(ws: Workspace) -> None:
    ws.write_text("deep/er/notes.md", "héllo")
    ws.append_text("deep/er/notes.md", "\nworld")
    assert ws.read_text("deep/er/notes.md") == "héllo\nworld"
    ws.write_text("deep/er/notes.md", "short")
    assert ws.read_text("deep/er/notes.md") == "short"
    ws.append_text("new.log", "x")
    assert ws.read_text("new.log") == "x"
    ws.delete("deep/er/notes.md")
    ws.delete("deep/er")
    assert ws.list_dir() == ["deep/", "new.log"]
    assert ws.resolve("new.log") == ws.root / "new.log"


def test_binary_files_do_not_crash(ws: Workspace) -> None:
    (ws.root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    text = ws.read_text("blob.bin")
    assert "\ufffd" in text


def test_reading_a_too_large_file_is_a_clear_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", max_read_bytes=1000)
    (ws.root / "big.txt").write_text("x" * 5000)
    with pytest.raises(CommandError, match="too large"):
        ws.read_text("big.txt")


def test_errors_for_missing_files_and_folders(ws: Workspace) -> None:
    with pytest.raises(CommandError, match="No such file"):
        ws.read_text("missing.txt")
    with pytest.raises(CommandError, match="No such file"):
        ws.list_dir("missing")
    ws.write_text("full/x.txt", "x")
    with pytest.raises(CommandError, match="not empty"):
        ws.delete("full")
    with pytest.raises(CommandError, match="is a folder"):
        ws.read_text("full")
    with pytest.raises(CommandError, match="not a folder"):
        ws.write_text("full/x.txt/y.txt", "x")
    with pytest.raises(RefusedError, match="workspace folder itself"):
        ws.delete(".")


def test_write_without_overwrite_refuses_an_existing_file(ws: Workspace) -> None:
    ws.write_text("once.txt", "first")
    with pytest.raises(CommandError, match="already exists"):
        ws.write_text("once.txt", "second", overwrite=False)
    assert ws.read_text("once.txt") == "first"


# Links: never followed, wherever they are and wherever they point.


def make_links(ws: Workspace, outside: Path) -> None:
    (ws.root / "inside.txt").write_text("inside")
    (ws.root / "link_to_file").symlink_to(outside / "secret.txt")
    (ws.root / "link_to_dir").symlink_to(outside, target_is_directory=True)
    (ws.root / "dangling").symlink_to(outside / "does_not_exist.txt")
    (ws.root / "relative_escape").symlink_to("../outside/secret.txt")
    (ws.root / "sub").mkdir()
    (ws.root / "sub" / "nested_dir_link").symlink_to(outside, target_is_directory=True)


@pytest.mark.parametrize(
    "path",
    [
        "link_to_file",
        "link_to_dir/secret.txt",
        "link_to_dir/new.txt",
        "link_to_dir/deeper/new.txt",
        "dangling",
        "relative_escape",
        "sub/nested_dir_link/secret.txt",
        "sub/nested_dir_link/new.txt",
    ],
)
def test_links_out_of_the_workspace_are_refused(
    ws: Workspace, outside: Path, tmp_path: Path, path: str
) -> None:
    make_links(ws, outside)
    before = snapshot(tmp_path)
    attempt_everything(ws, path)
    assert snapshot(tmp_path) == before
    assert (outside / "secret.txt").read_text() == "top secret"


def test_listing_a_linked_folder_is_refused(ws: Workspace, outside: Path) -> None:
    make_links(ws, outside)
    with pytest.raises(RefusedError, match="points outside"):
        ws.list_dir("link_to_dir")
    with pytest.raises(RefusedError):
        ws.list_dir("sub/nested_dir_link")


def test_listing_shows_links_without_following_them(ws: Workspace, outside: Path) -> None:
    make_links(ws, outside)
    listing = ws.list_dir()
    assert "link_to_dir@" in listing
    assert "dangling@" in listing
    assert not any("secret" in entry for entry in listing)


def test_links_inside_the_workspace_are_refused_with_a_hint(ws: Workspace) -> None:
    ws.write_text("real/data.txt", "data")
    (ws.root / "alias").symlink_to("real", target_is_directory=True)
    with pytest.raises(RefusedError, match="it points to 'real'; use that path"):
        ws.read_text("alias/data.txt")


def test_a_folder_that_is_a_link_is_never_written_through(ws: Workspace, outside: Path) -> None:
    # The swap has already happened by the time of the write: no check-then-use gap to win.
    (ws.root / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RefusedError):
        ws.write_text("sub/x", "pwned")
    assert not (outside / "x").exists()


def test_a_folder_swapped_for_a_link_during_writes_never_leaks(
    ws: Workspace, outside: Path
) -> None:
    """A thread keeps swapping ws/sub between a real folder and a link to the outside."""
    sub, parked = ws.root / "sub", ws.root / "parked"
    sub.mkdir()
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            try:
                sub.rename(parked)
                sub.symlink_to(outside, target_is_directory=True)
                time.sleep(0)  # let the writer run while the link is in place
                sub.unlink()
                parked.rename(sub)
                time.sleep(0)
            except OSError:
                pass

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so writes meet both states
    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        for n in range(2000):
            with contextlib.suppress(CommandError):
                ws.write_text(f"sub/x{n}.txt", "pwned")
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_hard_links_are_refused(ws: Workspace, outside: Path) -> None:
    try:
        os.link(outside / "secret.txt", ws.root / "hard.txt")
    except OSError:
        pytest.skip("hard links are not possible here")
    with pytest.raises(RefusedError, match="hard links"):
        ws.write_text("hard.txt", "pwned")
    with pytest.raises(RefusedError, match="hard links"):
        ws.read_text("hard.txt")
    assert (outside / "secret.txt").read_text() == "top secret"


def test_a_fifo_does_not_hang(ws: Workspace) -> None:
    os.mkfifo(ws.root / "pipe")
    with pytest.raises(RefusedError, match="not a regular file"):
        ws.read_text("pipe")


def test_the_forbidden_folder_is_hidden_from_listings(ws: Workspace) -> None:
    (ws.root / ".autoagent").mkdir()
    (ws.root / ".autoagent" / "secret.json").write_text("{}")
    ws.write_text("visible.txt", "x")
    assert ws.list_dir() == ["visible.txt"]


def test_a_workspace_inside_the_forbidden_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inside"):
        Workspace(tmp_path / "home" / "workspace", forbidden=[tmp_path / "home"])


def test_listing_is_capped(ws: Workspace) -> None:
    for n in range(30):
        ws.write_text(f"d/f{n:02}.txt", "")
    listing = ws.list_dir(limit=10)
    assert len(listing) == 10
    assert listing[0] == "d/"


def test_a_full_disk_leaves_the_old_file_whole(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes go to a temporary file renamed into place: a failed write or append changes
    nothing (before, write_file truncated first and left part of the new text)."""
    ws.write_text("report.md", "old report\n" * 100)
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[:10]))  # some bytes land, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("autoagent.tools.workspace.os.write", disk_full)
    with pytest.raises(CommandError, match="No space left on device"):
        ws.write_text("report.md", "new text " * 1000)
    with pytest.raises(CommandError, match="No space left on device"):
        ws.append_text("report.md", "more " * 1000)
    monkeypatch.undo()
    assert ws.read_text("report.md") == "old report\n" * 100
    assert ws.list_dir() == ["report.md"]  # no temporary file left behind


def test_writes_keep_the_file_mode(ws: Workspace) -> None:
    ws.write_text("run.sh", "echo 1\n")
    (ws.root / "run.sh").chmod(0o750)
    ws.write_text("run.sh", "echo 2\n")
    ws.append_text("run.sh", "echo 3\n")
    assert (ws.root / "run.sh").stat().st_mode & 0o777 == 0o750
    assert ws.read_text("run.sh") == "echo 2\necho 3\n"


@pytest.mark.parametrize(
    "use",
    [
        lambda ws: ws.read_text("a.txt"),
        lambda ws: ws.write_text("a.txt", "x"),
        lambda ws: ws.append_text("sub/a.txt", "x"),
        lambda ws: ws.delete("a.txt"),
        lambda ws: ws.list_dir(),
        lambda ws: ws.check_present(),
    ],
    ids=["read", "write", "append", "delete", "list", "check"],
)
def test_a_workspace_removed_under_it_is_said_once_and_never_made_again(
    tmp_path: Path, use
) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace(tmp_path / "ws")
    (tmp_path / "ws").rmdir()
    with pytest.raises(WorkspaceGone, match=r"The workspace .* was removed during the run"):
        use(ws)
    assert not (tmp_path / "ws").exists()
