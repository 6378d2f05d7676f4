"""Where a step's time goes: cheap wall-clock phases, read by the benchmark and the debug log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter


class Timings:
    """Seconds per named phase. A phase entered inside another pauses the outer one, so each
    second is counted once (the model's time inside prompt building counts as "model")."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._open: list[tuple[str, float]] = []  # the phases entered, innermost last

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        now = perf_counter()
        if self._open:
            outer, since = self._open[-1]
            self._add(outer, now - since)
        self._open.append((name, now))
        try:
            yield
        finally:
            now = perf_counter()
            _, since = self._open.pop()
            self._add(name, now - since)
            if self._open:
                self._open[-1] = (self._open[-1][0], now)

    def take(self) -> dict[str, float]:
        """The seconds counted since the last call, and start again from zero."""
        seconds, self._seconds = self._seconds, {}
        return seconds

    def _add(self, name: str, seconds: float) -> None:
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds
