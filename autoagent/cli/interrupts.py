"""Ctrl-C during a run: the first press stops the run, wherever it lands."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Generator
from types import FrameType, TracebackType
from typing import Any

from ..agent.events import Event, RunEnded
from ..agent.loop import AgentLoop
from ..base.interrupts import defer


class CtrlC:
    """While active, each Ctrl-C marks the loop interrupted, then raises KeyboardInterrupt as
    usual. Python swallows one that lands in a finalizer or an at-fork hook (logging's, around
    each program started), with a traceback ("Exception ignored in ..."), and one that lands in
    a child between fork and exec comes back as the child's error: the mark stops the run all
    the same, at the loop's next check, and no traceback is printed."""

    def __init__(self, loop: AgentLoop) -> None:
        self.loop = loop
        self.presses = 0
        self._previous: Any = None
        self._unraisable = sys.unraisablehook

    def __enter__(self) -> CtrlC:
        self._previous = signal.getsignal(signal.SIGINT)
        if self._previous is signal.default_int_handler:  # not when Ctrl-C is ignored
            signal.signal(signal.SIGINT, self._press)
            self._unraisable = sys.unraisablehook
            sys.unraisablehook = self._swallowed
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if signal.getsignal(signal.SIGINT) == self._press:
            signal.signal(signal.SIGINT, self._previous)
            sys.unraisablehook = self._unraisable

    def _swallowed(self, unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            self._unraisable(unraisable)

    def _press(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        self.loop.interrupted = True
        if not defer():  # else raised once the child is forked (base/interrupts.py)
            raise KeyboardInterrupt

    def consume(
        self, events: Generator[Event, None, None], show: Callable[[Event], None]
    ) -> RunEnded | None:
        """Show each of the run's events; a first Ctrl-C that lands while one is shown goes
        into the loop, which stops the run as from inside. A later one leaves at once (it
        propagates); the run's last event."""
        ended = None
        interrupted = False
        while True:
            try:
                event = events.throw(KeyboardInterrupt()) if interrupted else next(events)
            except StopIteration:
                return ended
            interrupted = False
            if isinstance(event, RunEnded):
                ended = event
            try:
                show(event)
            except KeyboardInterrupt:
                if self.presses > 1 or ended is not None:
                    raise
                interrupted = True
