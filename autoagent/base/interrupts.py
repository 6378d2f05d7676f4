"""Ctrl-C held back while a child process is forked, or a spinner starts or stops.

A KeyboardInterrupt raised in an at-fork hook is swallowed ("Exception ignored in ...") and
logging's leaves its lock held, so that the run hangs at its end. Python runs its signal
handlers in the main thread whichever thread the signal reached, so a signal mask cannot hold
it back: the CLI's handler asks defer() first, and the press is raised once the fork is done.
A press halfway through rich's start or stop of a live display leaves its render hooks
unpaired, and the next stop fails, so those are held too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_holding = 0
_pending = False


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Within: a Ctrl-C is kept for the end of the block, where KeyboardInterrupt is raised."""
    global _holding, _pending
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if not _holding and _pending:
            _pending = False
            raise KeyboardInterrupt


def defer() -> bool:
    """For a Ctrl-C handler: True when the press is kept for the end of a held block."""
    global _pending
    if _holding:
        _pending = True
    return bool(_holding)
