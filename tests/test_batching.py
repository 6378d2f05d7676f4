import threading
import time

import pytest

from autoagent.store.batching import Batcher


class Recorder:
    """A write that records its batches; it can be held to let items pile up."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()  # a write has begun

    def write(self, batch: list[int]) -> None:
        self.writing.set()
        self.gate.wait()
        self.batches.append(batch)


class StoppedClock:
    """A clock that never moves, so no delay ever passes. It notes how many items the
    batcher's thread had when it last read the time to decide to wait: each `put` reads it
    too, under the same lock, from the test's thread."""

    def __init__(self) -> None:
        self._test_thread = threading.get_ident()
        self._put = 0
        self._seen = 0
        self._read = threading.Condition()

    def __call__(self) -> float:
        with self._read:
            if threading.get_ident() == self._test_thread:
                self._put += 1
            else:
                self._seen = self._put
                self._read.notify_all()
        return 1000.0

    def wait_until_seen(self, items: int) -> bool:
        """Whether the batcher's thread looked at `items` waiting items within 5 s."""
        with self._read:
            return self._read.wait_for(lambda: self._seen >= items, timeout=5)


def test_a_batch_goes_when_it_holds_the_size_and_takes_all_that_wait() -> None:
    recorder = Recorder()
    clock = StoppedClock()
    batcher = Batcher(recorder.write, size=3, delay=60, name="test", clock=clock)
    futures = [batcher.put(n) for n in range(2)]
    assert clock.wait_until_seen(2)  # the batcher looked at both and went on waiting
    assert not any(f.done() for f in futures)  # fewer than the size: they wait (or the delay)
    futures.append(batcher.put(2))
    for future in futures:
        future.result(timeout=5)
    assert recorder.batches == [[0, 1, 2]]
    late = batcher.put(3)
    batcher.close()  # writes what is waiting
    assert late.done() and recorder.batches == [[0, 1, 2], [3]]


def test_a_lone_item_goes_after_the_delay_or_when_hurried() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.write, size=10, delay=0.2, name="test")
    started = time.monotonic()
    batcher.put(1).result(timeout=5)
    assert time.monotonic() - started >= 0.2
    batcher = Batcher(recorder.write, size=10, delay=60, name="test")
    lone = batcher.put(2)
    batcher.hurry()
    lone.result(timeout=5)
    assert recorder.batches == [[1], [2]]
    batcher.close()


def test_items_that_wait_while_a_write_runs_go_together() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = Batcher(recorder.write, size=1, delay=60, name="test")
    first = batcher.put(0)
    assert recorder.writing.wait(5)  # the writer holds item 0
    rest = [batcher.put(n) for n in range(1, 5)]
    recorder.gate.set()
    for future in [first, *rest]:
        future.result(timeout=5)
    batcher.close()
    assert recorder.batches[0] == [0] and [1, 2, 3, 4] in recorder.batches


def test_a_failed_write_fails_the_items_of_its_batch_only() -> None:
    def write(batch: list[int]) -> None:
        if 2 in batch:
            raise OSError("disk full")

    batcher = Batcher(write, size=2, delay=60, name="test")
    written = [batcher.put(n) for n in range(2)]
    assert [f.exception(timeout=5) for f in written] == [None, None]
    failed = [batcher.put(n) for n in range(2, 4)]
    for future in failed:
        with pytest.raises(OSError, match="disk full"):
            future.result(timeout=5)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.put(5)
