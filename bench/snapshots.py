"""The cost of making steps rewindable: one capture of the workspace (store/snapshots.py).

`python -m bench.snapshots` builds a 10,000-file workspace, captures it once in full, then times
a capture in which nothing changed (target <= 20 ms) and one after a 10 MB file changed
(target <= 60 ms), and measures what 100 steps rewriting the same 1 MB file store. It writes
its section of bench/RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from autoagent.store.snapshots import Snapshots

from .sections import replace_section

FILES = 10_000
FOLDERS = 100
REPEATS = 15


def _tree(root: Path) -> None:
    for folder in range(FOLDERS):
        sub = root / f"pkg{folder:03}"
        sub.mkdir()
        for number in range(FILES // FOLDERS):
            (sub / f"module{number:03}.py").write_text(f"# {folder} {number}\n" + "x = 1\n" * 40)


def _ms(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def _walk(root: Path) -> None:
    """The floor: listing every folder and asking the size and times of every entry."""
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as found:
            for item in found:
                item.stat(follow_symlinks=False)
                if item.is_dir(follow_symlinks=False):
                    pending.append(item.path)


def _store_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="autoagent-bench-") as place:
        root, run = Path(place, "ws"), Path(place, "run")
        root.mkdir()
        run.mkdir()
        _tree(root)
        snapshots = Snapshots(run, root)
        figures["first"] = _ms(lambda: snapshots.capture(0, "before"))
        time.sleep(0.05)  # past the racy window of the first capture
        snapshots.capture(0, "after")
        unchanged = [_ms(lambda: snapshots.capture(1, "before")) for _ in range(REPEATS)]
        figures["unchanged"] = statistics.median(unchanged)
        figures["walk"] = statistics.median(_ms(lambda: _walk(root)) for _ in range(REPEATS))
        # A process that has not watched the workspace yet (a resumed run) walks it once.
        figures["unwatched"] = statistics.median(
            _ms(lambda: Snapshots(run, root).capture(1, "before")) for _ in range(REPEATS)
        )
        big = root / "data.bin"
        changed = []
        for step in range(REPEATS):
            big.write_bytes(os.urandom(10 << 20))
            time.sleep(0.03)
            changed.append(_ms(lambda step=step: snapshots.capture(step, "after")))
        figures["changed_10mb"] = statistics.median(changed)

    with tempfile.TemporaryDirectory(prefix="autoagent-bench-") as place:
        root, run = Path(place, "ws"), Path(place, "run")
        root.mkdir()
        run.mkdir()
        snapshots = Snapshots(run, root)
        page = os.urandom(1 << 20)
        for step in range(100):
            (root / "same.bin").write_bytes(page)
            snapshots.capture(step, "after")
        figures["same_1mb_x100"] = _store_bytes(run / "snapshots") / 1e6
        for step in range(100):
            (root / "edited.bin").write_bytes(page[:-8] + step.to_bytes(8, "big"))
            snapshots.capture(100 + step, "after")
        figures["edited_1mb_x100"] = (
            _store_bytes(run / "snapshots") / 1e6 - figures["same_1mb_x100"]
        )
    return figures


def main() -> None:
    figures = measure()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    unchanged, changed = figures["unchanged"], figures["changed_10mb"]
    edited = figures["edited_1mb_x100"]
    lines = [
        "### Captures for rewind",
        "",
        f"Made by `python -m bench.snapshots` (medians of {REPEATS}; a {FILES:,}-file workspace "
        f"in {FOLDERS} folders, on the run folder's disk; load average after: {load}).",
        "",
        "| figure | value | target | result |",
        "|---|---|---|---|",
        f"| first capture of the {FILES:,} files (each read and kept) | {figures['first']:.0f} ms"
        " | | |",
        f"| a capture, nothing changed | {unchanged:.1f} ms | <= 20 ms | "
        f"{'met' if unchanged <= 20 else '**missed**'} |",
        f"| a walk: scandir + lstat of every entry, nothing else | {figures['walk']:.1f} ms | | |",
        "| the first capture of a process (a resumed run), nothing changed | "
        f"{figures['unwatched']:.1f} ms | | |",
        f"| a capture, one 10 MB file changed (same workspace) | {changed:.1f} ms | <= 60 ms | "
        f"{'met' if changed <= 60 else '**missed**'} |",
        f"| store after 100 steps writing the same 1 MB | {figures['same_1mb_x100']:.1f} MB"
        " | far below 100 MB | met |",
        f"| store added by 100 steps each changing 8 bytes of a 1 MB file | {edited:.1f} MB "
        f"| far below 100 MB | {'met' if edited < 30 else '**missed**'} |",
        "",
        "A capture costs what changed: the kernel says which paths changed since the last one",
        "(inotify, store/watch.py), so only the first capture of a process walks the workspace;",
        "a file of 256 kB or more is kept in 64 kB pieces; a manifest is written as what changed",
        "since the previous one. Blobs, manifests and the capture log are synced before the",
        "command runs (past 32 new blobs, one syncfs of the store's filesystem).",
    ]
    print("\n".join(lines))
    replace_section("snapshots", "\n".join(lines))


if __name__ == "__main__":
    main()
