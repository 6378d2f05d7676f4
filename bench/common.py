"""What every benchmark shares: figures, medians, the machine, and a scripted loop to drive."""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoagent.agent.events import RunEnded, StepFinished
from autoagent.agent.loop import AgentLoop
from autoagent.agent.profile import make_profile
from autoagent.agent.runner import prepare_run
from autoagent.base.settings import Settings
from autoagent.human.authorize import ScriptedHuman
from autoagent.model.llm import OpenAIChatModel
from autoagent.model.testing import FakeOpenAIServer, execution_reply

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
AGENT = "Bench"
GOALS = [
    "Read the project documents in docs/ and note what each one is about",
    "Write a short summary of the findings to notes/summary.md",
    "Keep a log of the work in log.md",
]
PROFILE = make_profile(AGENT, "an agent that reads and summarises documents", GOALS)
TOPICS = [
    "database migrations",
    "the release checklist",
    "error budgets",
    "the billing service",
    "onboarding new engineers",
    "cache invalidation",
    "the incident of March",
    "API rate limits",
    "log retention",
    "the mobile app's crash reports",
]


@dataclass
class Figure:
    """One line of the results table."""

    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""  # e.g. "< 0.3 s"
    ok: bool | None = None  # None: no target
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "ms":
            return f"{self.value:.1f} ms"
        if self.unit == "s":
            return f"{self.value:.3f} s"
        if self.unit in {"x", "calls"}:
            return f"{self.value:.2f}{'x' if self.unit == 'x' else ''}"
        if self.unit == "":
            return f"{self.value:.2f}"
        return f"{self.value:,.0f} {self.unit}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load": load,
    }


# A scripted run: the same commands, tasks and documents every time.


def make_documents(workspace: Path, count: int = 100) -> None:
    """Documents of 1-3k characters for read_file to return."""
    docs = workspace / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        body = (
            f"Document {i} is about {topic}. "
            + f"It explains how the team handles {topic} and what went wrong last time. " * 3
            + "Details follow. " * (20 + 10 * (i % 10))
        )
        (docs / f"d{i}.txt").write_text(body)


def scripted_command(step: int) -> str:
    """The execution reply of step `step` (1-based): writes, reads and appends, never twice."""
    kind = step % 3
    if kind == 0:
        return execution_reply(
            "write_file",
            f"Note the findings of step {step}.",
            path=f"notes/n{step}.md",
            content=f"# Note {step}\n" + f"Finding {step} about {TOPICS[step % 10]}. " * 6,
        )
    if kind == 1:
        return execution_reply(
            "read_file", f"Read document {step % 100}.", path=f"docs/d{step % 100}.txt"
        )
    return execution_reply(
        "append_to_file", "Log the step.", path="log.md", content=f"step {step} done\n"
    )


def scripted_tasks(step: int) -> str:
    """Task creation adds two tasks, then one, then none, in turn: the list stays short."""
    count = (2, 1, 0)[step % 3]
    topic = TOPICS[step % 10]
    tasks = [
        f"Check what document {step + n} says about {topic} (from step {step})"
        for n in range(count)
    ]
    return json.dumps({"tasks": tasks})


def script_server(server: FakeOpenAIServer, steps: int, finish: bool = True) -> None:
    server.script("execution", *(scripted_command(s) for s in range(1, steps + 1)))
    server.script("task-creation", *(scripted_tasks(s) for s in range(1, steps + 1)))
    if finish:
        server.script("execution", execution_reply("finish", reason="The scenario is done."))


def make_loop(
    root: Path, server: FakeOpenAIServer, home: Path | None = None, **settings: Any
) -> AgentLoop:
    workspace = root / "ws"
    if not (workspace / "docs").exists():
        make_documents(workspace)
    config = Settings(
        home=home or root / "home",
        workspace=workspace,
        openai_base_url=server.base_url,
        max_retries=0,
        continuous=True,
        stall_steps=1000,
        **settings,
    )
    model = OpenAIChatModel(api_key="bench", base_url=server.base_url, max_retries=0)
    return prepare_run(config, ScriptedHuman([]), profile=PROFILE, model=model)


@dataclass
class StepSample:
    wall: float
    display: float
    timings: dict[str, float]


@dataclass
class RunSample:
    steps: list[StepSample] = field(default_factory=list)
    end: RunEnded | None = None
    close_wait: float = 0.0  # Memory.close() waiting for the background writes
    write_seconds: float = 0.0  # the background writer's time, all steps


def drive(loop: AgentLoop) -> RunSample:
    """Run the loop to its end as the CLI does, rendering to a string; time every step."""
    from rich.console import Console

    from autoagent.cli.ui import Renderer

    renderer = Renderer(Console(file=io.StringIO(), width=100, highlight=False))
    sample = RunSample()
    display = 0.0
    try:
        events: Iterator[Any] = loop.run()
        last = time.perf_counter()
        for event in events:
            start = time.perf_counter()
            renderer.show(event)
            now = time.perf_counter()
            display += now - start
            if isinstance(event, StepFinished):
                sample.steps.append(StepSample(now - last, display, event.timings))
                last, display = now, 0.0
            elif isinstance(event, RunEnded):
                sample.end = event
    finally:
        renderer.close()
        loop.journal.release()
        if loop.memory is not None:
            sample.close_wait = timed(loop.memory.close)
            sample.write_seconds = loop.memory.write_seconds
    return sample
