"""Retrieval quality of the embedding model: recall@5 on the labelled set in data/, through the
real Memory class (the real embedder, Chroma, and the same head-of-text embedding)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from autoagent.store.chroma import local_client
from autoagent.store.embeddings import LocalEmbedder
from autoagent.store.memory import Memory

from .common import BENCH_DIR, GOALS, Figure, median

DATA = BENCH_DIR / "data" / "retrieval.json"
K = 5


def run(quick: bool) -> list[Figure]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    # Until this benchmark the loop added the agent's goals to every query; compare.
    plain = measure(data, "")
    with_goals = measure(data, "\n" + "\n".join(GOALS))
    return [
        Figure(
            "Retrieval",
            f"recall@{K} ({len(data['queries'])} queries, {len(data['documents'])} memories)",
            plain["recall"],
            "",
            note=f"MRR {plain['mrr']:.2f}; query {plain['seconds'] * 1000:.1f} ms (median)",
        ),
        Figure(
            "Retrieval",
            f"recall@{K}, the agent's goals added to each query (as before)",
            with_goals["recall"],
            "",
            note=f"MRR {with_goals['mrr']:.2f}; query {with_goals['seconds'] * 1000:.1f} ms",
        ),
    ]


def measure(data: dict[str, Any], suffix: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(local_client(Path(tmp)), "Retrieval", LocalEmbedder(), tmp)
        try:
            for doc in data["documents"]:
                memory.add(doc["text"], doc_id=doc["id"])
            memory.flush()
            recalls, ranks, seconds = [], [], []
            for item in data["queries"]:
                start = time.perf_counter()
                found = memory.recall(item["query"] + suffix, K)
                seconds.append(time.perf_counter() - start)
                ids = [r.metadata["doc_id"] for r in found]
                relevant = set(item["relevant"])
                recalls.append(len(relevant & set(ids)) / len(relevant))
                first = next((n for n, i in enumerate(ids, 1) if i in relevant), None)
                ranks.append(1 / first if first else 0.0)
        finally:
            memory.close()
    return {
        "recall": sum(recalls) / len(recalls),
        "mrr": sum(ranks) / len(ranks),
        "seconds": median(seconds),
    }
