"""A long run looked at: `autoagent show` and the web console on a 5,000-step run.

    python -m bench.long_run [--steps 5000] [--runs 3] [--viewers 20]

A real 30-step run (the scripted model, the real loop) is made first; its journal's steps are
then repeated, renumbered, up to `--steps`, as a long run's journal would hold them. Measured
from outside, as users pay it: `autoagent show` as a whole process (wall time and peak memory,
median of `--runs`), the console's page of the run (first byte to last), and `--viewers`
viewers of the run while it is live, each asking for the live part of the page at once.
Targets (issue #23): show under 3 s and 100 MB, first page under 0.3 s, each viewer under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autoagent.model.testing import FakeOpenAIServer
from autoagent.store.journal import RunJournal

from .common import drive, make_loop, median, script_server
from .sections import replace_section

SHORT = 30
CYCLE = (4, 6)  # the steps repeated (the scripted commands come in threes)


def make_long_run(root: Path, steps: int) -> tuple[Path, str]:
    """A run of `steps` steps under root/home; its home and id."""
    with FakeOpenAIServer() as server:
        script_server(server, SHORT)
        loop = make_loop(root, server)
        drive(loop)
        loop.close()
    run_dir = next((root / "home" / "runs").iterdir())
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]

    def step_of(event: dict) -> int | None:
        record = event.get("record")
        return record.get("step") if isinstance(record, dict) else None

    finished = {step_of(e): i for i, e in enumerate(events) if e["event"] == "StepFinished"}
    head = events[: finished[CYCLE[0] - 1] + 1]
    block = events[finished[CYCLE[0] - 1] + 1 : finished[CYCLE[1]] + 1]
    end = [e for e in events if e["event"] == "RunEnded"]
    width = CYCLE[1] - CYCLE[0] + 1
    with open(run_dir / "events.jsonl", "w", encoding="utf-8") as log:
        for event in head:
            log.write(json.dumps(event, ensure_ascii=False) + "\n")
        first = CYCLE[0]
        while first <= steps:
            for event in block:
                step = step_of(event)
                if step is not None:
                    if first + step - CYCLE[0] > steps:
                        break
                    event = json.loads(json.dumps(event))
                    event["record"]["step"] = first + step - CYCLE[0]
                log.write(json.dumps(event, ensure_ascii=False) + "\n")
            first += width
        for event in end:
            event["steps"] = steps
            log.write(json.dumps(event, ensure_ascii=False) + "\n")
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text(encoding="utf-8"))
    checkpoint["step"] = steps
    (run_dir / "checkpoint.json").write_text(json.dumps(checkpoint), encoding="utf-8")
    return root / "home", run_dir.name


def _autoagent() -> list[str]:
    return [sys.executable, "-m", "autoagent"]


def time_show(home: Path, run_id: str) -> tuple[float, float, int]:
    """Wall seconds, peak memory (MB) of one `autoagent show`, and the lines it printed."""
    env = {**os.environ, "AUTOAGENT_HOME": str(home), "COLUMNS": "100"}
    started = time.monotonic()
    done = subprocess.run(
        [*_autoagent(), "show", run_id], env=env, capture_output=True, text=True, check=True
    )
    wall = time.monotonic() - started
    # ru_maxrss of the children is the largest of any child so far: each run is measured from a
    # fresh interpreter (_show_in_child), so the figure is this one's.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak / 1024, done.stdout.count("\n")


def _show_in_child(home: Path, run_id: str) -> tuple[float, float, int]:
    code = (
        "import sys; from pathlib import Path; from bench.long_run import time_show; "
        f"print(*time_show(Path({str(home)!r}), {run_id!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_repo()
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def _repo() -> Path:
    return Path(__file__).resolve().parent.parent


class Console:
    """`autoagent serve` on a free port, with a session cookie."""

    def __init__(self, home: Path) -> None:
        env = {**os.environ, "AUTOAGENT_HOME": str(home)}
        self.process = subprocess.Popen(
            [*_autoagent(), "serve", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
            if found:
                self.base, token = found.group(1), found.group(2)
                break
        else:
            raise RuntimeError("the console did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        opener.open(f"{self.base}/?token={token}").read()
        self.opener = opener

    def get(self, path: str) -> tuple[float, int]:
        """Seconds to the last byte of `path`, and its size."""
        started = time.monotonic()
        with self.opener.open(self.base + path) as response:
            body = response.read()
        return time.monotonic() - started, len(body)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def measure(steps: int, runs: int, viewers: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="autoagent-long-") as place:
        home, run_id = make_long_run(Path(place), steps)
        figures["journal_mb"] = (home / "runs" / run_id / "events.jsonl").stat().st_size / 1e6
        shows = [_show_in_child(home, run_id) for _ in range(runs)]
        figures["show_s"] = median([s[0] for s in shows])
        figures["show_mb"] = median([s[1] for s in shows])
        figures["show_lines"] = shows[0][2]

        console = Console(home)
        try:
            # The first look reads the whole log; the next ones only what it gained since.
            cold = console.get(f"/runs/{run_id}")
            figures["page_cold_s"], figures["page_kb"] = cold[0], cold[1] / 1000
            figures["page_s"] = median([console.get(f"/runs/{run_id}")[0] for _ in range(runs)])
            # The run made live: a process holds its lock while the viewers look.
            journal = RunJournal.open(home, run_id)
            journal.acquire()
            try:
                live = f"/runs/{run_id}/timeline"
                console.get(live)
                with ThreadPoolExecutor(viewers) as pool:
                    rounds = []
                    for _ in range(runs):
                        rounds.append(list(pool.map(lambda _: console.get(live), range(viewers))))
                figures["viewer_s"] = median([max(t for t, _ in r) for r in rounds])
                figures["viewer_kb"] = rounds[0][0][1] / 1000
            finally:
                journal.release()
        finally:
            console.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    f = measure(args.steps, args.runs, args.viewers)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    def result(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "## A long run looked at",
        "",
        f"Made by `python -m bench.long_run`: a run of {args.steps:,} steps (its journal "
        f"{f['journal_mb']:.0f} MB), medians of {args.runs}; load average after: {load}.",
        "",
        "| figure | value | target | result |",
        "|---|---|---|---|",
        f"| `autoagent show`, the whole process | {f['show_s']:.2f} s | < 3 s | "
        f"{result(f['show_s'] < 3)} |",
        f"| its peak memory | {f['show_mb']:.0f} MB | < 100 MB | {result(f['show_mb'] < 100)} |",
        f"| the console's page of the run ({f['page_kb']:.0f} kB), its first look "
        f"| {f['page_cold_s']:.3f} s | < 0.3 s | {result(f['page_cold_s'] < 0.3)} |",
        f"| the same page again | {f['page_s']:.3f} s | < 0.3 s | {result(f['page_s'] < 0.3)} |",
        f"| {args.viewers} viewers of the live run at once, the slowest "
        f"({f['viewer_kb']:.0f} kB each) | {f['viewer_s']:.3f} s | < 0.5 s | "
        f"{result(f['viewer_s'] < 0.5)} |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        replace_section("long-run", "\n".join(lines))


if __name__ == "__main__":
    main()
