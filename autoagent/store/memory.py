"""Long-term memory: a ChromaDB vector store, one collection per agent name."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import MemoryStoreError
from . import spool
from .background import in_background
from .batching import Batcher
from .chroma import CHROMA_FILE, LOCK_FILE, local_client, lock_store, open_in_order, server_client
from .embeddings import Embedder

COLLECTION_PREFIX = "agent-"
MAX_MEMORY_CHARS = 4000
# Only the head of a memory (or a query) is embedded: the task, the command and how the result
# begins say what it is about, and embedding time grows with length (about 0.2 ms a character).
EMBED_CHARS = 250
# Query embeddings kept by text: a step that repeats its task (feedback, an invalid command,
# no task left) asks the same question again, and embedding it costs 15-30 ms.
QUERY_CACHE_SIZE = 128
# Memories written together: a store write costs about the same for one or several. A memory
# waits at most WRITE_DELAY seconds for others (a model that takes longer gets one a write).
WRITE_BATCH = 4
WRITE_DELAY = 1.0


@dataclass(frozen=True)
class Recollection:
    id: str
    text: str
    metadata: dict[str, Any]
    distance: float | None = None


def collection_name(agent_name: str, embedder_key: str) -> str:
    """A valid Chroma name per agent and vector space; the hash keeps odd names apart."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", agent_name).strip("-").lower()[:40] or "agent"
    digest = hashlib.sha1(agent_name.encode()).hexdigest()[:8]
    return f"{COLLECTION_PREFIX}{slug}-{digest}-{embedder_key}"


class Memory:
    """One agent's memories: every step's task, command and result, recalled by meaning."""

    def __init__(
        self,
        client: Any,
        agent_name: str,
        embedder: Embedder,
        where: str,
        *,
        fresh: bool = False,
        spool_folder: Path | None = None,
    ) -> None:
        """`client` is a Chroma client, or a Future of one: the store is then opened on a
        thread of its own while the run starts, and waited for when it is first needed.
        `fresh`: the store is known to have held nothing when opened, so a recall finds
        nothing (and needs no store) until a write of this process is in.
        `spool_folder`: where memories are kept when `close` comes before the store has
        loaded (see store/spool.py); those kept there by an earlier process are written
        as the store opens."""
        self._spool_folder = spool_folder
        self._queued: dict[str, spool.Item] = {}  # the memories not known to be written
        self._spooled = False  # closed before the store loaded: the rest is in the spool
        self._write_gate = threading.Lock()
        self.agent_name = agent_name
        self.embedder = embedder
        self.where = where
        self._lock_fd: int | None = None
        self._scratch: Path | None = None  # the copy a read-only store was opened from
        self._pending: list[tuple[str, Future[None]]] = []  # in the order written
        self._written: set[str] = set()  # ids whose write this process saw finish
        self.write_seconds = 0.0  # spent by the background writer, for the benchmark
        self._queries: OrderedDict[str, list[float]] = OrderedDict()
        self._queries_lock = threading.Lock()  # the preparing thread fills it too
        self._preparing: dict[str, Future[list[float]]] = {}
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory-queries")
        self._known_nonempty = False  # memories are only added, so once true it stays true
        self._fresh = fresh
        self._store: Future[tuple[Any, Any]] = Future()
        if isinstance(client, Future):
            self._store = in_background(lambda: self._opened(client.result()))
        else:
            self._store.set_result(self._opened(client))
        # Writes run in batches on a thread of their own, overlapping the next model call;
        # their errors surface on the next call to this object. Until its memory is written,
        # a step is kept in the checkpoint (see AgentLoop._keep) for a resume to write it.
        self._writer: Batcher[tuple[str, str, dict[str, Any]]] = Batcher(
            self._write, size=WRITE_BATCH, delay=WRITE_DELAY, name="memory-writer"
        )

    def _opened(self, client: Any) -> tuple[Any, Any]:
        collection = self._open_collection(client)
        folder = self._spool_folder
        with self._write_gate:  # not once closed: the store may be another process's now
            if folder is not None and not self._spooled and spool.waiting(folder):
                self._write_to(collection, spool.take(folder))
                spool.clear(folder)
        return client, collection

    @property
    def _client(self) -> Any:
        return self._store.result()[0]

    @property
    def _collection(self) -> Any:
        return self._store.result()[1]

    def _open_collection(self, client: Any) -> Any:
        try:
            return client.get_or_create_collection(
                collection_name(self.agent_name, self.embedder.key),
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"agent": self.agent_name, "embedder": self.embedder.key},
            )
        except Exception as exc:  # chromadb raises many kinds; all mean the store is unusable
            raise MemoryStoreError(f"Cannot open the memory store at {self.where}: {exc}") from exc

    @classmethod
    def open_local(
        cls, path: Path, agent_name: str, embedder: Embedder, *, background: bool = False
    ) -> Memory:
        """The embedded store under AUTOAGENT_HOME; one process at a time (a lock file).
        `background`: chromadb loads and opens the store on a thread of its own (the lock is
        taken here, so a store in use is still refused at once)."""
        lock_fd = lock_store(path)
        try:
            if background:
                fresh = not (path / CHROMA_FILE).exists() and not spool.waiting(path)
                client: Any = in_background(open_in_order, path, embedder)
                memory = cls(
                    client, agent_name, embedder, str(path), fresh=fresh, spool_folder=path
                )
            else:
                memory = cls(local_client(path), agent_name, embedder, str(path), spool_folder=path)
        except BaseException:
            os.close(lock_fd)
            raise
        memory._lock_fd = lock_fd
        return memory

    @classmethod
    def open_copy(cls, path: Path, agent_name: str, embedder: Embedder) -> Memory:
        """The embedded store, for reading only: opened from a copy, so that nothing chromadb
        does on opening (it may rewrite an index it finds damaged) reaches the store itself;
        the memories a run left in the spool are in the copy too."""
        lock_fd = lock_store(path)  # no run is writing it while it is copied
        scratch = Path(tempfile.mkdtemp(prefix="autoagent-memory-"))
        try:
            if (path / CHROMA_FILE).exists():
                ignore = shutil.ignore_patterns(LOCK_FILE)
                shutil.copytree(path, scratch, dirs_exist_ok=True, ignore=ignore)
            try:
                memory = cls(local_client(scratch), agent_name, embedder, str(path))
                # What a short run left beside the store is read too, in the copy only.
                memory._write_to(memory._collection, spool.take(path))
                memory.count()
            except MemoryStoreError as exc:
                cause = exc.__cause__ or exc
                raise MemoryStoreError(
                    f"The memory store at {path} cannot be read, it is damaged ({cause}); "
                    "it was left as it is."
                ) from exc
        except BaseException:
            os.close(lock_fd)
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        memory._lock_fd = lock_fd
        memory._scratch = scratch
        return memory

    @classmethod
    def open_server(cls, url: str, agent_name: str, embedder: Embedder) -> Memory:
        """A Chroma server shared by several agents and machines (`chroma run`)."""
        return cls(server_client(url), agent_name, embedder, url)

    def add(self, text: str, memory_id: str | None = None, **metadata: str | int | float) -> str:
        """Store a memory; the write finishes in the background (see `flush`).

        Writing again under the same `memory_id` replaces it: a step written twice (say,
        once before a crash and once after) is one memory."""
        self._raise_failed_writes()
        text = text[:MAX_MEMORY_CHARS]
        memory_id = memory_id or uuid.uuid4().hex
        meta = {"agent": self.agent_name, "time": time.time(), **metadata}
        if self._spool_folder is not None:
            self._queued = {i: self._queued[i] for i, _ in self._pending if i in self._queued}
            self._queued[memory_id] = (memory_id, text, meta)
        self._pending.append((memory_id, self._writer.put((memory_id, text, meta))))
        return memory_id

    def _write(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Write memories in one store write (the last text of an id wins)."""
        collection = self._collection  # waits for the store to open
        with self._write_gate:
            if not self._spooled:  # else they are in the spool, for the next process
                self._write_to(collection, batch)

    def _write_to(self, collection: Any, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        latest = {memory_id: (text, meta) for memory_id, text, meta in batch}
        if not latest:
            return
        start = time.perf_counter()
        try:
            collection.upsert(
                ids=list(latest),
                documents=[text for text, _ in latest.values()],
                embeddings=self.embedder.embed_documents(
                    [text[:EMBED_CHARS] for text, _ in latest.values()]
                ),
                metadatas=[meta for _, meta in latest.values()],
            )
        except Exception as exc:
            raise MemoryStoreError(
                f"Cannot write to the memory store at {self.where}: {exc}"
            ) from exc
        finally:
            self.write_seconds += time.perf_counter() - start
        self._known_nonempty = True

    def missing(self, memory_ids: Sequence[str]) -> list[str]:
        """Those of `memory_ids` the store does not hold (after the pending writes)."""
        self.flush()
        if not memory_ids:
            return []
        try:
            found = set(self._collection.get(ids=list(memory_ids), include=[])["ids"])
        except Exception as exc:
            raise MemoryStoreError(f"Cannot read the memory store at {self.where}: {exc}") from exc
        return [i for i in memory_ids if i not in found]

    def forget(self, memory_ids: Sequence[str]) -> None:
        """Delete these memories (after the pending writes); ids not held are ignored."""
        self.flush()
        if not memory_ids:
            return
        try:
            self._collection.delete(ids=list(memory_ids))
        except Exception as exc:
            raise MemoryStoreError(
                f"Cannot delete from the memory store at {self.where}: {exc}"
            ) from exc

    def flush(self, through: str | None = None) -> None:
        """Wait for every write to finish, or only those up to the memory `through` (the
        writes happen in order); raise the first that failed."""
        ids = [memory_id for memory_id, _ in self._pending]
        # A write no longer pending has finished: nothing to wait for up to it.
        cut = len(ids) if through is None else ids.index(through) + 1 if through in ids else 0
        if cut:
            self._writer.hurry()
        for _, future in self._pending[:cut]:
            future.exception()
        self._raise_failed_writes()

    def written(self, memory_id: str) -> bool:
        """Whether this process wrote `memory_id` to the store (raise if a write failed)."""
        self._raise_failed_writes()
        return memory_id in self._written

    def _raise_failed_writes(self) -> None:
        """Take the finished writes off the pending ones; raise the first that failed."""
        done = [(i, f) for i, f in self._pending if f.done()]
        self._pending = [(i, f) for i, f in self._pending if not f.done()]
        failed = None
        for memory_id, future in done:
            if (error := future.exception()) is None:
                self._written.add(memory_id)
            failed = failed or error
        if failed is not None:
            raise failed

    def recall(self, query: str, k: int) -> list[Recollection]:
        """The `k` memories nearest in meaning to `query`, nearest first."""
        self._raise_failed_writes()
        if k <= 0 or not query.strip():
            return []
        try:
            # Counting costs a round trip; it is only needed until the store has a memory,
            # to skip embedding the query when there is nothing to find.
            if not self._known_nonempty:
                if self._fresh or self._collection.count() == 0:
                    return []
                self._known_nonempty = True
            found = self._collection.query(
                query_embeddings=[self._embed_query(query)],
                n_results=k,  # Chroma returns fewer when it holds fewer
                include=["documents", "metadatas", "distances"],
            )
        except Exception as exc:
            raise MemoryStoreError(f"Cannot read the memory store at {self.where}: {exc}") from exc
        return [
            Recollection(i, doc or "", dict(meta or {}), dist)
            for i, doc, meta, dist in zip(
                found["ids"][0],
                found["documents"][0],
                found["metadatas"][0],
                found["distances"][0],
                strict=True,
            )
        ]

    def prepare_queries(self, queries: Sequence[str]) -> None:
        """Embed queries that will be asked later (the tasks to come) on a thread of their
        own, not queued behind writes, so that recalling for them costs no embedding."""
        for query in queries:
            with self._queries_lock:
                if query in self._queries or query in self._preparing:
                    continue
                self._preparing[query] = self._preparer.submit(self._embed_new_query, query)

    def _embed_query(self, query: str) -> list[float]:
        with self._queries_lock:
            vector = self._queries.get(query)
            preparing = self._preparing.pop(query, None)
        if vector is not None:
            self._cache_query(query, vector)
            return vector
        if preparing is not None and (preparing.running() or preparing.done()):
            return preparing.result()
        if preparing is not None:
            preparing.cancel()  # not started yet: quicker to do it here
        return self._embed_new_query(query)

    def _embed_new_query(self, query: str) -> list[float]:
        vector = self.embedder.embed_query(query[:EMBED_CHARS])
        self._cache_query(query, vector)
        return vector

    def _cache_query(self, query: str, vector: list[float]) -> None:
        with self._queries_lock:
            self._queries.pop(query, None)
            self._queries[query] = vector  # the most recently used last
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)

    def list(self, limit: int = 20) -> list[Recollection]:
        """The most recent memories, newest first."""
        self.flush()
        try:
            found = self._collection.get(include=["documents", "metadatas"])
        except Exception as exc:
            raise MemoryStoreError(f"Cannot read the memory store at {self.where}: {exc}") from exc
        items = [
            Recollection(i, doc or "", dict(meta or {}))
            for i, doc, meta in zip(
                found["ids"], found["documents"], found["metadatas"], strict=True
            )
        ]
        items.sort(key=lambda r: r.metadata.get("time", 0), reverse=True)
        return items[:limit]

    def count(self) -> int:
        self.flush()
        try:
            return int(self._collection.count())
        except Exception as exc:
            raise MemoryStoreError(f"Cannot read the memory store at {self.where}: {exc}") from exc

    def clear(self) -> int:
        """Forget every memory of this agent; returns how many there were."""
        count = self.count()
        try:
            self._client.delete_collection(self._collection.name)
        except Exception as exc:
            raise MemoryStoreError(f"Cannot clear the memory store at {self.where}: {exc}") from exc
        client = self._client
        self._store = Future()
        self._store.set_result((client, self._open_collection(client)))
        self._known_nonempty = False
        return count

    def close(self) -> None:
        """Finish pending writes and let other processes use the store. A local store still
        loading is not waited for: the memories not yet written go to its spool, synced."""
        if self._spool_folder is not None and not self._store.done():
            self._leave_in_spool(self._spool_folder)
            return
        try:
            self.flush()
        finally:
            self._writer.close()
            self._preparer.shutdown(wait=False, cancel_futures=True)
            self._release_lock()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)

    def _leave_in_spool(self, folder: Path) -> None:
        try:
            with self._write_gate:
                self._spooled = True
                waiting = [i for i, future in self._pending if not future.done()]
                items = [self._queued[i] for i in dict.fromkeys(waiting) if i in self._queued]
                spool.keep(folder, items)
        except OSError as exc:
            raise MemoryStoreError(
                f"Cannot keep the unwritten memories in {folder}: {exc.strerror}."
            ) from exc
        finally:
            self._writer.close(wait=False)
            self._preparer.shutdown(wait=False, cancel_futures=True)
            # Held until the abandoned load has ended (or the process does): another process
            # must not open the store while this one may still be creating its files.
            self._store.add_done_callback(lambda _: self._release_lock())

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
