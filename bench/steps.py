"""Harness cost per step with an instant model, and how it scales with the memory's size."""

from __future__ import annotations

import tempfile
from pathlib import Path

from autoagent.model.testing import FakeOpenAIServer
from autoagent.store.embeddings import LocalEmbedder
from autoagent.store.memory import Memory

from .common import (
    AGENT,
    GOALS,
    TOPICS,
    Figure,
    RunSample,
    drive,
    make_loop,
    median,
    script_server,
    timed,
)
from .stores import build_seconds, remove_run_memories, store_home

PARTS = [
    "prompt",
    "parse",
    "memory_query",
    "memory_write",
    "command",
    "journal",
    "checkpoint",
    "display",
]
# No targets here: what users pay is bench.whole's (overhead a step <= 40 ms, also at 100k
# memories no more than 1.5x the 1k figure); these in-process figures say where it goes.
TARGETS: dict[int, float] = {}


def harness_parts(sample: RunSample) -> list[dict[str, float]]:
    """Per step: the harness's wall time (all but the model) and its parts, in seconds."""
    rows = []
    for step in sample.steps:
        row = {part: step.timings.get(part, 0.0) for part in PARTS}
        row["display"] = step.display
        row["model"] = step.timings.get("model", 0.0)
        row["harness"] = step.wall - row["model"]
        row["other"] = row["harness"] - sum(row[p] for p in PARTS)
        rows.append(row)
    return rows


def measure_steps(size: int, runs: int, steps: int) -> dict[str, float]:
    """Median over runs of each run's median per step; plus background figures per step."""
    home = store_home(size)
    per_run: list[dict[str, float]] = []
    with FakeOpenAIServer() as server:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                script_server(server, steps)
                loop = make_loop(Path(tmp), server, home=home)
                try:
                    sample = drive(loop)
                finally:
                    remove_run_memories(home, [loop.state.run_id])
            rows = harness_parts(sample)
            summary = {key: median([r[key] for r in rows]) for key in rows[0]}
            summary["background_write"] = sample.write_seconds / len(rows)
            summary["close_wait"] = sample.close_wait
            per_run.append(summary)
    return {key: median([r[key] for r in per_run]) for key in per_run[0]}


def measure_queries(size: int, count: int) -> dict[str, float]:
    """Memory.recall as the loop calls it (k=11), each query new; and its embedding alone."""
    home = store_home(size)
    embedder = LocalEmbedder()
    memory: Memory | None = None

    def open_store() -> None:
        nonlocal memory
        memory = Memory.open_local(home / "memory", AGENT, embedder)

    opened = timed(open_store)
    assert memory is not None
    queries = [
        f"Check what document {i} says about {TOPICS[i % 10]} (from step {i})\n" + "\n".join(GOALS)
        for i in range(count + 1)
    ]
    try:
        memory.recall(queries[-1], 11)  # the first query loads the index
        recall = [timed(lambda q=q: memory.recall(q, 11)) for q in queries[:count]]  # type: ignore[union-attr]
        # A fresh embedder: this one keeps what it embedded, and the recalls above were first.
        fresh = LocalEmbedder()
        fresh.embed_query("warm up")
        embed = [timed(lambda q=q: fresh.embed_query(q)) for q in queries[:count]]
        cached = [timed(lambda q=q: memory.recall(q, 11)) for q in queries[:count]]  # type: ignore[union-attr]
    finally:
        memory.close()
    return {
        "open": opened,
        "recall": median(recall),
        "embed": median(embed),
        "search": max(median(recall) - median(embed), 0.0),
        "cached": median(cached),
    }


def run(quick: bool) -> tuple[list[Figure], list[dict[str, object]]]:
    sizes = [0, 1000] if quick else [0, 1000, 10_000, 100_000]
    runs, steps, queries = (1, 8, 8) if quick else (3, 20, 30)
    figures: list[Figure] = []
    breakdown: list[dict[str, object]] = []
    for size in sizes:
        store_home(size)  # build (once) before timing anything
        cost = measure_steps(size, runs, steps)
        query = measure_queries(size, queries)
        target = TARGETS.get(size)
        figures.append(
            Figure(
                "Harness per step",
                f"harness cost per step, {size:,} memories",
                cost["harness"] * 1000,
                "ms",
                f"< {target * 1000:.0f} ms" if target else "",
                cost["harness"] < target if target else None,
                note="wall time minus the model call",
            )
        )
        figures.append(
            Figure(
                "Memory query",
                f"memory query, {size:,} memories (new / repeated query)",
                query["recall"] * 1000,
                "ms",
                note=f"embedding {query['embed'] * 1000:.1f} ms + search "
                f"{query['search'] * 1000:.1f} ms; repeated {query['cached'] * 1000:.1f} ms; "
                f"store opens in {query['open']:.2f} s",
            )
        )
        built = build_seconds(size)
        breakdown.append(
            {"size": size, **cost, **{f"query_{k}": v for k, v in query.items()}, "built": built}
        )
    return figures, breakdown
