"""Kill a continuous run at random moments, resume it each time, and count what was lost.

    .venv/bin/python -m bench.killtest [--kills 50] [--steps 20] [--seed 1]
    .venv/bin/python -m bench.killtest --crash [--sandbox bwrap|landlock] [--kills 50]

The agent runs the installed CLI against a local scripted model that behaves like a careful
agent: its next command is always "log entry k" for the first k missing from ran.log, so it
never repeats an entry unless the harness does. Commands alternate between append_to_file and
execute_python_code (which takes a while, so kills land inside it); model replies come after
a random delay. Each process is killed with SIGKILL (with any program it started) at a random
moment: while starting, while waiting on the model, during a command, a memory write or a
checkpoint. Then the run is resumed. At the end it counts:

- lost steps: a command that took effect and that the model was never told about, or whose
  recorded result was replaced by "may or may not have taken effect";
- repeated commands: a log entry written twice;
- missing memories: a step with a recorded result that is not in the memory store;
- lost notes: a command cut short by a kill whose "may or may not have taken effect" note
  never reached the model.

With --crash, only the agent is killed, as a crash does: what it started is left to die with
it, and the run is resumed at once. Every command is then a sandboxed program, and most kills
land in the first 40 ms after a command starts. It also counts leftovers: a process of the
run (its folder or command line in the test's folder) that a killed agent left, still there
once the resumed process's loop has started (the resume must end it first), or at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoagent.model.testing import FakeOpenAIServer, Slow, execution_reply

PROFILE = ["--name", "Scout", "--role", "a test agent", "--goal", "Write the log entries"]
ENTRY = re.compile(r"entry-(\d+)")


@dataclass
class Oracle:
    """The scripted model: proposes the first log entry missing from ran.log, then finish."""

    log: Path
    steps: int
    rng: random.Random
    max_delay: float = 0.4
    every_command_runs: bool = False  # each command a program (in the sandbox), not a file write

    def entries(self) -> list[int]:
        try:
            return [int(n) for n in ENTRY.findall(self.log.read_text())]
        except FileNotFoundError:
            return []

    def execution(self, request: dict[str, Any]) -> Slow:
        written = set(self.entries())
        missing = [k for k in range(1, self.steps + 1) if k not in written]
        if not missing:
            reply = execution_reply("finish", reason="All entries are written.")
        else:
            k = missing[0]
            if k % 3 == 0 or self.every_command_runs:
                code = f"open('ran.log', 'a').write('entry-{k}\\n'); import time; time.sleep(0.4)"
                reply = execution_reply("execute_python_code", code=code)
            else:
                reply = execution_reply("append_to_file", path="ran.log", content=f"entry-{k}\n")
        return Slow(reply, self.rng.uniform(0, self.max_delay))

    def task_creation(self, request: dict[str, Any]) -> Slow:
        tasks = [f"Check entry {self.rng.randint(1, 99)}"] if self.rng.random() < 0.3 else []
        return Slow(json.dumps({"tasks": tasks}), self.rng.uniform(0, self.max_delay))


@dataclass
class Figures:
    kills: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    lives: int = 0
    lost_steps: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    missing_memories: list[str] = field(default_factory=list)
    lost_notes: list[str] = field(default_factory=list)
    show_ok: bool = False  # `autoagent show` reads the whole journal at the end
    entries: int = 0  # log entries written
    notes_due: int = 0  # commands cut short by a kill, each owed a note
    restored: int = 0  # results recorded before a kill and completed after it
    leftovers: list[str] = field(default_factory=list)  # processes a killed agent left running


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_all(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the agent and whatever it started (a real crash takes its children with it
    once the children-die-with-the-agent fix is in; here the test makes sure of it)."""
    family = descendants(process.pid)
    for pid in [process.pid, *family]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in family):
        time.sleep(0.02)


def run_processes(root: Path) -> dict[int, str]:
    """The processes whose folder or command line is in `root` (the agent's and what it
    started; a sandbox's show the same paths), by pid: their start time and command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            started = (entry / "stat").read_text().rsplit(")", 1)[1].split()[19]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(root) in cmdline or Path(cwd).is_relative_to(root):
            found[int(entry.name)] = f"{started} {cmdline.strip()[:200]}"
    return found


def still_there(processes: dict[int, str], root: Path) -> list[str]:
    """Those of `processes` that still run (the same pid and start time); killed here, so
    that each is counted once."""
    now = run_processes(root)
    left = [f"{pid}: {what}" for pid, what in processes.items() if now.get(pid) == what]
    for pid in processes:
        if now.get(pid) == processes[pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return left


def run_dir(home: Path) -> Path | None:
    runs = [p for p in (home / "runs").glob("*") if p.is_dir() and not p.name.startswith(".")]
    return runs[0] if runs else None


def events(folder: Path) -> list[dict[str, Any]]:
    path = folder / "events.jsonl"
    if not path.exists():
        return []
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a torn last line, repaired by the next process
    return found


def phase_of(folder: Path | None) -> str:
    """Roughly what the agent was doing when it was killed, from its last journal entry."""
    if folder is None:
        return "starting (no run yet)"
    found = events(folder)
    if not found:
        return "starting"
    last = found[-1]["event"]
    return {
        "Thinking": f"model call ({found[-1].get('role')})",
        "CommandStarted": "command",
        "CommandDone": "memory write / planning",
        "Proposed": "authorizing",
        "Authorized": "authorizing",
        "TasksChanged": "checkpoint",
        "StepFinished": "between steps",
        "RunStarted": "starting the loop",
        "model_call": "checkpoint / journal",
        "StepRecovered": "completing a step recovered after a kill",
    }.get(last, last)


def expected_notes(folder: Path) -> set[int]:
    """Steps whose command was cut short: their note must reach the model."""
    try:
        state = json.loads((folder / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return set()
    steps = set()
    current = state.get("current") or {}
    done = {
        e["record"]["step"] for e in events(folder) if e["event"] == "CommandDone" and "record" in e
    }
    if current.get("status") == "running" and current["step"] not in done:
        steps.add(int(current["step"]))
    for note in state.get("notices", []):
        if match := re.match(r"Step (\d+)'s command", note):
            steps.add(int(match.group(1)))
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the run's folder.")
    parser.add_argument(
        "--crash", action="store_true", help="Kill only the agent, as a crash does."
    )
    parser.add_argument("--sandbox", default="auto", help="AUTOAGENT_SANDBOX for the runs.")
    options = parser.parse_args()
    rng = random.Random(options.seed)
    root = Path(tempfile.mkdtemp(prefix="killtest-"))
    home, workspace = root / "home", root / "ws"
    workspace.mkdir()
    oracle = Oracle(workspace / "ran.log", options.steps, rng, every_command_runs=options.crash)
    figures = Figures()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOAGENT_"))}
    notes_due: set[int] = set()
    with FakeOpenAIServer() as server:
        server.respond("execution", oracle.execution)
        server.respond("task-creation", oracle.task_creation)
        env |= {
            "OPENAI_BASE_URL": server.base_url,
            "AUTOAGENT_HOME": str(home),
            "AUTOAGENT_WORKSPACE": str(workspace),
            "AUTOAGENT_MAX_RETRIES": "1",
            "AUTOAGENT_STALL_STEPS": "1000",
            "AUTOAGENT_MAX_STEPS": "1000",
            "NO_COLOR": "1",
            "AUTOAGENT_SANDBOX": options.sandbox,
        }
        finished = False
        left: dict[int, str] = {}  # what the last killed agent left running
        while not finished:
            folder = run_dir(home)
            verb = ["resume"] if folder is not None else ["run", *PROFILE]
            argv = [sys.executable, "-m", "autoagent", *verb, "-c", "--allow-high-risk"]
            with open(root / f"life-{figures.lives:03}.log", "wb") as out:
                process = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=out)
            figures.lives += 1
            if figures.kills >= options.kills:
                code = process.wait(timeout=300)
                finished = code == 0 and "Run finished" in (
                    root / f"life-{figures.lives - 1:03}.log"
                ).read_text(errors="replace")
                if not finished:
                    print(f"the last life ended with {code}; see {root}", file=sys.stderr)
                    break
                continue
            started = _wait_for_loop(process, home, rng)
            if started and left:  # the resumed process's loop runs: nothing of the last may
                figures.leftovers += still_there(left, root)
                left = {}
            phase = ""
            if started:
                done = len(set(oracle.entries()))
                ahead = done + 1 >= options.steps * (figures.kills + 1) / options.kills
                phase = ""
                if rng.random() < 0.4:
                    time.sleep(rng.uniform(0, 0.2 if ahead else 1.5))
                else:  # just after a durable point, or inside a command or a memory write
                    kind = rng.choice(list(TARGETS))
                    if options.crash and rng.random() < 0.7:
                        kind = "CommandStarted"  # the start of a sandboxed program
                    _wait_for_event(process, home, kind, 1 if ahead else rng.randint(1, 3))
                    time.sleep(rng.uniform(0, 0.04 if options.crash else 0.03))
                    phase = TARGETS[kind]
            if process.poll() is not None:
                finished = process.returncode == 0 and run_dir(home) is not None
                continue
            if options.crash:
                process.kill()
                process.wait()
                left |= run_processes(root)
            else:
                kill_all(process)
            figures.kills += 1
            folder = run_dir(home)
            phase = (phase or phase_of(folder)) if started else "start-up"
            figures.phases[phase] = figures.phases.get(phase, 0) + 1
            if folder is not None:
                notes_due |= expected_notes(folder)
        time.sleep(0.5)
        figures.leftovers += still_there({**left, **run_processes(root)}, root)
        tally(figures, home, oracle, server, notes_due)
    report(figures, options, root)
    if not options.keep and not failed(figures):
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _wait_for_loop(process: subprocess.Popen[bytes], home: Path, rng: random.Random) -> bool:
    """Wait until this process's loop runs (True); or kill it while starting, now and then."""
    if rng.random() < 0.1:
        time.sleep(rng.uniform(0, 3))
        return False
    folder = run_dir(home)
    before = len(events(folder)) if folder is not None else 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        folder = run_dir(home)
        if folder is not None:
            found = events(folder)
            if any(e["event"] == "RunStarted" for e in found[before:]):
                return True
        time.sleep(0.02)
    return True


# Journal events to kill just after (0-30 ms), and what the agent is then doing.
TARGETS = {
    "CommandStarted": "a command, or just after it (pending saved)",
    "CommandDone": "a memory write (result just saved)",
    "TasksChanged": "the end-of-step checkpoint",
    "StepFinished": "between steps",
    "Thinking": "a model call, just started",
}


def _wait_for_event(
    process: subprocess.Popen[bytes], home: Path, kind: str, count: int, seconds: float = 20
) -> None:
    """Return as soon as the journal gains `count` more events of `kind`."""
    folder = run_dir(home)
    if folder is None:
        return
    path = folder / "events.jsonl"
    offset = path.stat().st_size if path.exists() else 0
    needle = f'"event": "{kind}"'.encode()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with open(path, "rb") as log:
                log.seek(offset)
                new = log.read()
        except OSError:
            new = b""
        if new:
            complete = new[: new.rfind(b"\n") + 1]
            offset += len(complete)
            count -= complete.count(needle)
            if count <= 0:
                return
        time.sleep(0.001)


def tally(
    figures: Figures,
    home: Path,
    oracle: Oracle,
    server: FakeOpenAIServer,
    notes_due: set[int],
) -> None:
    from autoagent.store.embeddings import LocalEmbedder
    from autoagent.store.memory import Memory

    folder = run_dir(home)
    assert folder is not None
    log = events(folder)
    entries = oracle.entries()
    figures.repeated = sorted(f"entry-{k}" for k in set(entries) if entries.count(k) > 1)

    prompts = [r["messages"][-1]["content"] for r in server.requests_for("execution")]
    recorded: dict[int, int] = {}  # entry -> the step whose result was recorded
    for event in log:
        if event["event"] == "CommandDone":
            record = event["record"]
            if match := ENTRY.search(json.dumps(record["proposal"]["args"])):
                recorded[int(match.group(1))] = record["step"]
    for k in sorted(set(entries)):
        told = [p for p in prompts if re.search(rf"entry-{k}\b", p)]
        if not told:
            figures.lost_steps.append(f"entry-{k}: took effect, never shown to the model")
            continue
        step = recorded.get(k)
        if step is not None and not any(
            re.search(rf"Step {step}: \S+ .*entry-{k}\b.*\n\s*Result:(?! Interrupted)", p)
            or re.search(rf"step {step}: \S+ .*entry-{k}\b.* -> (?!Interrupted)", p)
            for p in told
        ):
            figures.lost_steps.append(f"entry-{k}: its recorded result never reached the model")

    figures.entries = len(set(entries))
    figures.notes_due = len(notes_due)
    figures.restored = sum(
        1 for e in log if e["event"] == "StepRecovered" and e["record"]["status"] == "ran"
    )
    for step in sorted(notes_due):
        pattern = rf"Step {step}'s command .*may or may not have taken effect"
        if not any(re.search(pattern, p) for p in prompts):
            figures.lost_notes.append(f"step {step}")

    shown = subprocess.run(
        [sys.executable, "-m", "autoagent", "show", folder.name],
        cwd=home.parent,
        env={**os.environ, "AUTOAGENT_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    figures.show_ok = shown.returncode == 0 and "Run finished" in shown.stdout

    memory = Memory.open_local(home / "memory", "Scout", LocalEmbedder())
    try:
        ids = [f"{folder.name}-step-{step}" for step in sorted(set(recorded.values()))]
        figures.missing_memories = memory.missing(ids)
    finally:
        memory.close()


def report(figures: Figures, options: argparse.Namespace, root: Path) -> None:
    mode = "only the agent killed (a crash)" if options.crash else "the agent and its children"
    print(
        f"Kill test: {options.steps}-step continuous run, seed {options.seed}, {mode}, "
        f"sandbox {options.sandbox}, uid {os.geteuid()}"
    )
    print(f"  kills: {figures.kills} (processes started: {figures.lives})")
    print(
        f"  log entries written: {figures.entries}; resumes that completed a step whose result "
        f"was saved before the kill: {figures.restored}; commands cut short by a kill: "
        f"{figures.notes_due}"
    )
    for phase, count in sorted(figures.phases.items(), key=lambda item: -item[1]):
        print(f"    {count:3} while {phase}")
    for label, found in (
        ("lost steps", figures.lost_steps),
        ("repeated commands", figures.repeated),
        ("missing memories", figures.missing_memories),
        ("lost notes", figures.lost_notes),
        ("leftover processes", figures.leftovers),
    ):
        print(f"  {label}: {len(found)}" + (f"  {found}" if found else ""))
    print(f"  `autoagent show` of the run: {'ok' if figures.show_ok else 'FAILED'}")
    if failed(figures):
        print(f"  the run is kept in {root}")


def failed(figures: Figures) -> bool:
    return any(
        [
            figures.lost_steps,
            figures.repeated,
            figures.missing_memories,
            figures.lost_notes,
            figures.leftovers,
        ]
    )


if __name__ == "__main__":
    main()
