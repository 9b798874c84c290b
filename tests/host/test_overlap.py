"""host.pipeline's stage threads: order kept, errors re-raised where the caller is, and no
thread left running after an error, an early stop or Ctrl-C."""

import threading
import time

import pytest

from host.pipeline import BackgroundWriter, prefetched


def _stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("gamir-")
            and not t.name.startswith("gamir-native")]


def _slow(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"bad item {i}")
        time.sleep(0.001)
        yield i


def test_prefetched_keeps_order_and_ends_its_thread():
    assert list(prefetched(_slow(50), depth=3)) == list(range(50))
    assert _stage_threads() == []


def test_prefetched_reraises_the_producers_error():
    got = []
    with pytest.raises(ValueError, match="bad item 7"):
        for x in prefetched(_slow(20, fail_at=7)):
            got.append(x)
    assert got == list(range(7))
    assert _stage_threads() == []


def test_prefetched_closed_early_stops_the_producer():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetched(endless(), depth=2)
    assert [next(it) for _ in range(5)] == list(range(5))
    it.close()  # what host.run does when the kernel fails or Ctrl-C arrives
    assert closed.is_set() and _stage_threads() == []


def test_prefetched_starts_before_the_first_item_is_asked():
    started = threading.Event()

    def items():
        started.set()
        yield from range(3)

    it = prefetched(items())
    assert started.wait(5)  # host.run decodes while the backend sets up
    assert list(it) == [0, 1, 2] and _stage_threads() == []


def test_prefetched_closed_before_any_item_stops_the_producer():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield 0
        finally:
            closed.set()

    it = prefetched(endless(), depth=1)
    it.close()  # the backend failed to open: nothing was iterated
    assert closed.is_set() and _stage_threads() == []
    assert list(it) == []


def test_writer_writes_in_order():
    out = []
    with BackgroundWriter(out.append, depth=2) as w:
        for i in range(100):
            w.put(i)
        w.finish()
    assert out == list(range(100)) and _stage_threads() == []


def test_writer_reraises_the_write_error_and_ends():
    def write(i):
        if i == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWriter(write, depth=1) as w:
            for i in range(100):
                w.put(i)
            w.finish()
    assert _stage_threads() == []


def test_writer_closed_on_interrupt_writes_no_more():
    out = []
    gate = threading.Event()

    def write(i):
        gate.wait()
        out.append(i)

    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(write, depth=2) as w:
            for i in range(3):
                w.put(i)
            threading.Timer(0.2, gate.set).start()  # the write in progress ends after this
            raise KeyboardInterrupt
    assert _stage_threads() == []  # close() waited for the write in progress, then stopped
    assert out == [0]
