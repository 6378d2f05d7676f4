"""Opening a Chroma store: the local one (locked, so one process writes it at a time) or a
Chroma server; every failure is a MemoryStoreError that says what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..base.errors import MemoryStoreError
from .embeddings import Embedder
from .locks import try_lock

LOCK_FILE = "autoagent.lock"
CHROMA_FILE = "chroma.sqlite3"  # a local store without it has never held a memory


def open_in_order(path: Path, embedder: Embedder) -> Any:
    """The embedder's models (if it loads any), then chromadb and the client, on one thread:
    importing them on two at once can meet a package (numpy) half initialised."""
    load = getattr(embedder, "load", None)
    if callable(load):
        load()
    return local_client(path)


def local_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(
            path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
        )
    except Exception as exc:
        raise MemoryStoreError(
            f"Cannot open the memory store at {path}: {exc}. Check that the folder is "
            "writable; it is never wiped automatically."
        ) from exc


def lock_store(path: Path) -> int:
    """Hold an exclusive lock on the store, so two processes never write it at once."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = try_lock(path / LOCK_FILE)
    except OSError as exc:
        raise MemoryStoreError(f"Cannot open the memory store at {path}: {exc}") from exc
    if fd is None:
        raise MemoryStoreError(
            f"The memory store at {path} is in use by another autoagent process. "
            "Wait for it to end, or give this one its own AUTOAGENT_HOME."
        )
    return fd


def server_client(url: str) -> Any:
    """A client for the Chroma server at `url`, checked before the loop starts."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise MemoryStoreError(f"The memory URL {url!r} is not like http://host:8000.")
    try:
        client = chromadb.HttpClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            settings=ChromaSettings(anonymized_telemetry=False),
        )
        client.heartbeat()
    except Exception as exc:
        raise MemoryStoreError(
            f"Cannot reach the Chroma server at {url} ({exc.__class__.__name__}): check that it "
            "runs (`chroma run --path DIR --port PORT`) and the address, or unset "
            "AUTOAGENT_MEMORY_URL to use the local store."
        ) from exc
    return client
