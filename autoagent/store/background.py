"""Work started on a thread of its own, waited for where its result is needed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def in_background(work: Callable[..., T], *args: Any) -> Future[T]:
    """Run `work(*args)` on a thread of its own; its result, or its error, comes through the
    future."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work(*args))
        except BaseException as exc:
            future.set_exception(exc)

    name = getattr(work, "__name__", "work")
    threading.Thread(target=run, name=f"background-{name}", daemon=True).start()
    return future
