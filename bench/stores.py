"""Memory stores of 1k to 100k memories, built once and kept in bench/.cache/.

Embedding 100k texts would take the better part of an hour, so a few hundred real memories
are embedded, and the rest are those vectors moved a little at random (then normalised),
inserted into the Chroma collection directly, in batches.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from autoagent.store.chroma import local_client
from autoagent.store.embeddings import LocalEmbedder
from autoagent.store.memory import EMBED_CHARS, collection_name

from .common import AGENT, CACHE_DIR, TOPICS

BASE_TEXTS = 300
BATCH = 5000
NOISE = 0.45  # the length of the random move: a copy stays near its source (cosine ~0.9)
COMMANDS = ["read_file", "write_file", "list_files", "web_search", "execute_python_code"]


def base_texts() -> list[str]:
    texts = []
    for i in range(BASE_TEXTS):
        topic = TOPICS[i % len(TOPICS)]
        command = COMMANDS[i % len(COMMANDS)]
        texts.append(
            f"Task: Find out what the team knows about {topic} (item {i})\n"
            f'Command: {command} {{"target": "item-{i}"}}\n'
            f"Result: Notes on {topic}, part {i // len(TOPICS)}: what was decided, "
            "who owns it and what is still open. " * 2
        )
    return texts


def base_vectors() -> np.ndarray:
    path = CACHE_DIR / f"base-{LocalEmbedder.key}-{BASE_TEXTS}.npy"
    if path.exists():
        return np.load(path)
    embedder = LocalEmbedder()
    vectors = np.array(
        embedder.embed_documents([t[:EMBED_CHARS] for t in base_texts()]), dtype=np.float32
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def store_home(size: int) -> Path:
    """An AUTOAGENT_HOME whose memory holds `size` memories of the agent AGENT."""
    home = CACHE_DIR / f"home-{LocalEmbedder.key}-{size}"
    if (home / "complete").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    if size == 0:
        (home / "memory").mkdir(parents=True)
        (home / "complete").write_text("0")
        return home
    started = time.perf_counter()
    texts, vectors = base_texts(), base_vectors()
    client = local_client(home / "memory")
    collection = client.get_or_create_collection(
        collection_name(AGENT, LocalEmbedder.key),
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"agent": AGENT, "embedder": LocalEmbedder.key},
    )
    rng = np.random.default_rng(size)
    for first in range(0, size, BATCH):
        ids = list(range(first, min(first + BATCH, size)))
        source = np.array([i % len(texts) for i in ids])
        batch = vectors[source] + rng.normal(0, NOISE, (len(ids), vectors.shape[1])).astype(
            np.float32
        ) / np.sqrt(vectors.shape[1])
        batch /= np.linalg.norm(batch, axis=1, keepdims=True)
        collection.add(
            ids=[f"seed-{i}" for i in ids],
            embeddings=batch,
            documents=[f"{texts[s]} (copy {i})" for i, s in zip(ids, source, strict=True)],
            metadatas=[
                {"agent": AGENT, "time": 1.7e9 + i, "run_id": "seed", "step": i} for i in ids
            ],
        )
    del client
    seconds = time.perf_counter() - started
    (home / "complete").write_text(f"{size} memories built in {seconds:.0f} s\n")
    return home


def build_seconds(size: int) -> float | None:
    marker = CACHE_DIR / f"home-{LocalEmbedder.key}-{size}" / "complete"
    try:
        return float(marker.read_text().split()[4])
    except (OSError, IndexError, ValueError):
        return None


def remove_run_memories(home: Path, run_ids: list[str]) -> None:
    """Take a benchmark run's own memories out again, so the store keeps its size."""
    if not run_ids:
        return
    client = local_client(home / "memory")
    collection = client.get_collection(collection_name(AGENT, LocalEmbedder.key))
    collection.delete(where={"run_id": {"$in": run_ids}})
    shutil.rmtree(home / "runs", ignore_errors=True)
