"""The offline challenge suite: small tasks run by the installed CLI, checked on the workspace.

    python -m bench.challenges                    # the bundled local model (no API), 5 runs each
    python -m bench.challenges --model scripted   # the scripted test server: must pass all
    python -m bench.challenges --model endpoint --llm-model NAME   # OPENAI_BASE_URL/_API_KEY

It prints a pass rate per task and overall and, with --write, puts them in bench/RESULTS.md.
Tasks live in bench/challenges.yaml.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoagent.model.testing import FakeOpenAIServer, execution_reply

from .sections import replace_section

TASKS_FILE = Path(__file__).parent / "challenges.yaml"


@dataclass(frozen=True)
class Check:
    path: str
    contains: str | None = None
    equals: str | None = None
    lines: tuple[str, ...] | None = None

    def passes(self, workspace: Path) -> bool:
        file = workspace / self.path
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        if self.contains is not None:
            return _words(self.contains) in _words(text)
        if self.equals is not None:
            return text.strip() == self.equals.strip()
        if self.lines is not None:
            found = [line.strip() for line in text.splitlines() if line.strip()]
            return found == [line.strip() for line in self.lines]
        raise ValueError(f"check of {self.path} has no condition")


@dataclass(frozen=True)
class Task:
    id: str
    level: str
    goal: str
    checks: tuple[Check, ...]
    files: dict[str, str] = field(default_factory=dict)
    solution: tuple[tuple[str, dict[str, Any]], ...] = ()

    def passes(self, workspace: Path) -> bool:
        return all(check.passes(workspace) for check in self.checks)


def _words(text: str) -> str:
    """Lower case, every run of spaces and punctuation made one space."""
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def load_tasks(path: Path = TASKS_FILE) -> list[Task]:
    tasks = []
    for raw in yaml.safe_load(path.read_text(encoding="utf-8")):
        checks = tuple(
            Check(
                c["path"],
                c.get("contains"),
                c.get("equals"),
                tuple(c["lines"]) if "lines" in c else None,
            )
            for c in raw["checks"]
        )
        solution = tuple((name, dict(args)) for name, args in raw.get("solution", []))
        tasks.append(
            Task(raw["id"], raw["level"], raw["goal"], checks, raw.get("files") or {}, solution)
        )
    return tasks


@dataclass(frozen=True)
class Outcome:
    task: str
    passed: bool
    seconds: float
    exit_code: int


def run_task(
    task: Task,
    folder: Path,
    env: dict[str, str],
    max_steps: int,
    extra_args: list[str],
    timeout: float,
) -> Outcome:
    """One run of the installed CLI on `task` in `folder`, checked afterwards."""
    workspace = folder / "ws"
    workspace.mkdir(parents=True)
    for name, text in task.files.items():
        (workspace / name).write_text(text, encoding="utf-8")
    argv = [
        sys.executable,
        "-m",
        "autoagent",
        "run",
        "--name",
        "Challenger",
        "--role",
        "an assistant that does small file tasks",
        "--goal",
        task.goal,
        "-y",
        "--continuous",
        "--max-steps",
        str(max_steps),
        "--workspace",
        str(workspace),
        *extra_args,
    ]
    env = {**env, "AUTOAGENT_HOME": str(folder / "home"), "NO_COLOR": "1"}
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
        code, screen = done.returncode, done.stdout
    except subprocess.TimeoutExpired:
        code, screen = -1, b"(timed out)"
    (folder / "screen.txt").write_bytes(screen)
    return Outcome(task.id, task.passes(workspace), time.monotonic() - started, code)


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AUTOAGENT_"))}


@contextmanager
def scripted_server(task: Task) -> Iterator[dict[str, str]]:
    """The test server, scripted with the task's solution and a finish."""
    with FakeOpenAIServer() as server:
        for name, args in task.solution:
            server.script("execution", execution_reply(name, **args))
        server.script("execution", execution_reply("finish", reason="Done."))
        yield {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test"}


def run_suite(
    model: str,
    runs: int,
    max_steps: int,
    tasks: list[Task],
    llm_model: str | None = None,
    keep: Path | None = None,
    timeout: float = 900,
) -> list[Outcome]:
    outcomes = []
    root = Path(keep or tempfile.mkdtemp(prefix="challenges-"))
    for task in tasks:
        for number in range(runs):
            folder = root / f"{task.id}-{number}"
            env = base_env()
            extra: list[str] = []
            if model == "endpoint":
                env |= {k: v for k, v in os.environ.items() if k.startswith("OPENAI_")}
                extra = ["--llm", "openai"] + (["--model", llm_model] if llm_model else [])
                outcome = run_task(task, folder, env, max_steps, extra, timeout)
            elif model == "scripted":
                with scripted_server(task) as server_env:
                    outcome = run_task(task, folder, env | server_env, max_steps, extra, timeout)
            else:
                outcome = run_task(task, folder, env, max_steps, extra, timeout)
            outcomes.append(outcome)
            print(
                f"{task.id:24} run {number + 1}: {'pass' if outcome.passed else 'FAIL'} "
                f"({outcome.seconds:.0f} s, exit {outcome.exit_code})",
                flush=True,
            )
    return outcomes


def summary(model: str, tasks: list[Task], outcomes: list[Outcome], max_steps: int) -> str:
    lines = [
        f"### {model}",
        "",
        f"Each task run with `--continuous --max-steps {max_steps}`; a pass is every check "
        "of the task holding on the workspace afterwards.",
        "",
        "| task | level | passed | median time |",
        "|---|---|---|---|",
    ]
    for task in tasks:
        mine = [o for o in outcomes if o.task == task.id]
        passed = sum(o.passed for o in mine)
        seconds = sorted(o.seconds for o in mine)[len(mine) // 2] if mine else 0.0
        lines.append(f"| {task.id} | {task.level} | {passed}/{len(mine)} | {seconds:.0f} s |")
    total = sum(o.passed for o in outcomes)
    lines += ["", f"Overall: {total}/{len(outcomes)} ({100 * total / max(len(outcomes), 1):.0f}%)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.challenges", description=__doc__)
    parser.add_argument("--model", choices=["bundled", "scripted", "endpoint"], default="bundled")
    parser.add_argument("--llm-model", help="the model name, with --model endpoint")
    parser.add_argument("--runs", type=int, default=None, help="runs per task (default 5; 1)")
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--only", action="append", help="run only these task ids")
    parser.add_argument("--keep", type=Path, help="keep each run's folder here")
    parser.add_argument("--write", action="store_true", help="put the figures in RESULTS.md")
    parser.add_argument("--label", help="the section's name in RESULTS.md (default: the model)")
    options = parser.parse_args()
    runs = options.runs or (1 if options.model == "scripted" else 5)
    tasks = [t for t in load_tasks() if not options.only or t.id in options.only]
    outcomes = run_suite(
        options.model, runs, options.max_steps, tasks, options.llm_model, options.keep
    )
    label = options.label or options.model
    text = summary(label, tasks, outcomes, options.max_steps)
    print(text)
    if options.write:
        replace_section(f"challenges-{label}", text)
    sys.exit(0 if options.model != "scripted" or all(o.passed for o in outcomes) else 1)


if __name__ == "__main__":
    main()
