"""Items written in batches, in order, on a thread of their own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """Hands the items it is given to `write`, in order and in batches, on a thread of its own.

    A batch goes when it holds `size` items, when its oldest has waited `delay` seconds, or
    when `hurry` (or `close`) asks. Each item has a future, done when its batch is written
    (with the batch's error if `write` failed).

    Why: a write to the memory store costs the same tens of milliseconds (its syncs) for one
    memory or ten, and Chroma holds the interpreter's lock all that time, which stalls the
    loop's own thread. Batching pays that once for several memories.

    `clock` tells the time the delay is counted in (a test passes its own)."""

    def __init__(
        self,
        write: Callable[[list[T]], None],
        *,
        size: int,
        delay: float,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._clock = clock
        self._size = size
        self._delay = delay
        self._items: list[tuple[T, Future[None], float]] = []
        self._wake = threading.Condition()
        self._hurry = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> Future[None]:
        future: Future[None] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._items.append((item, future, self._clock()))
            self._wake.notify()
        return future

    def hurry(self) -> None:
        """Write what is waiting now."""
        with self._wake:
            self._hurry = bool(self._items)  # not the items that come later
            self._wake.notify()

    def close(self, *, wait: bool = True) -> None:
        """Write what is waiting, then end the thread (`wait=False`: without waiting for it)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due():
                    if self._closed and not self._items:
                        return
                    self._wake.wait(self._time_left())
                batch, self._items, self._hurry = self._items, [], False
            try:
                self._write([item for item, _, _ in batch])
            except BaseException as exc:
                for _, future, _ in batch:
                    future.set_exception(exc)
            else:
                for _, future, _ in batch:
                    future.set_result(None)

    def _due(self) -> bool:
        if not self._items:
            return False
        if self._hurry or self._closed or len(self._items) >= self._size:
            return True
        return self._clock() - self._items[0][2] >= self._delay

    def _time_left(self) -> float | None:
        if not self._items:
            return None
        return max(self._delay - (self._clock() - self._items[0][2]), 0.0)
