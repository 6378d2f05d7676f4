"""Web search behind a small seam: a SearchBackend Protocol and the default ddgs backend."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from math import ceil
from typing import Any, Protocol

from ..base.errors import CommandError


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


class SearchBackend(Protocol):
    def search(
        self, query: str, *, max_results: int, region: str, timeout: float
    ) -> list[SearchResult]: ...


class DDGSBackend:
    """Web search through the `ddgs` metasearch package (no API key)."""

    def __init__(self, proxy: str | None = None) -> None:
        self.proxy = proxy

    def search(
        self, query: str, *, max_results: int, region: str, timeout: float
    ) -> list[SearchResult]:
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["rows"] = self._search(query, max_results, region, timeout)
            except Exception as exc:  # handed back to the caller's thread below
                outcome["error"] = exc

        # ddgs has its own timeout, but it runs several engines; never wait much past ours.
        worker = threading.Thread(target=run, name="web-search", daemon=True)
        worker.start()
        worker.join(timeout + 2)
        if worker.is_alive():
            raise CommandError(
                f"Web search failed: no answer within {timeout:g} s "
                "(is there an internet connection?)"
            )
        error = outcome.get("error")
        if isinstance(error, CommandError):
            raise error
        if error is not None:
            if str(error).strip() == "No results found.":
                return []
            raise CommandError(
                f"Web search failed: {error} (is there an internet connection?)"
            ) from error
        return [
            SearchResult(
                title=str(row.get("title") or ""),
                url=str(row.get("href") or row.get("url") or ""),
                snippet=str(row.get("body") or row.get("snippet") or ""),
            )
            for row in outcome["rows"]
        ]

    def _search(
        self, query: str, max_results: int, region: str, timeout: float
    ) -> list[dict[str, Any]]:
        try:
            from ddgs import DDGS
        except ImportError:
            raise CommandError("Web search needs the ddgs package: pip install ddgs") from None
        client = DDGS(proxy=self.proxy, timeout=max(1, ceil(timeout)))
        return list(client.text(query, region=region, max_results=max_results))
