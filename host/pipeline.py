"""Frames in, restored frames out: pixel steps, tiling and reassembly around a backend, and the
filters after it.

The same code path runs for every backend, so emulation, Verilator and the board differ only
in who computes each tile.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

import spec
from accel.tiling import Tile, TilingError, plan, radius
from spec import Model
from spec.degrid import degrid
from spec.temporal import TemporalFilter

from .backend import Backend
from .errors import HostError

__all__ = ["FramePlan", "frame_plan", "restore_frames", "filter_level", "postprocessed",
           "prefetched", "Prefetched", "BackgroundWriter"]

T = TypeVar("T")
_END = object()  # after the last item in a queue


@dataclass
class FramePlan:
    """How one frame size is cut: padding to the unshuffle factor, tiles, output size."""

    height: int
    width: int
    pad: tuple[int, int]  # rows, columns added at the bottom/right (edge replicated)
    tiles: list[Tile] = field(repr=False)
    out_size: tuple[int, int]  # restored image (height, width) after cropping the padding


def frame_plan(model: Model, backend: Backend, height: int, width: int) -> FramePlan:
    """Plan a ``height`` x ``width`` frame; one clear error if the model cannot take it."""
    r, s = model.steps.unshuffle, model.steps.shuffle
    if height < r or width < r:
        raise HostError(f"frame {width}x{height} is too small: the model packs {r}x{r} pixel "
                        f"blocks (pixel unshuffle), so frames need at least {r} pixels each way")
    # A partial block at the bottom/right is completed by repeating the edge, then cropped off.
    pad = (-height % r, -width % r)
    th, tw = (height + pad[0]) // r, (width + pad[1]) // r
    halo = radius(model)
    max_height = backend.max_height
    if backend.band_pixels is not None and th * tw > backend.band_pixels:
        # Bands of whole rows bound the memory; a band keeps at least as many rows of its own
        # as the two halos it recomputes.
        rows = max(backend.band_pixels // tw, 4 * halo + 1)
        max_height = rows if max_height is None else min(max_height, rows)
    try:
        tiles = plan(th, tw, max_height, backend.max_width, halo)
    except TilingError as e:
        raise HostError(str(e)) from None
    out = (-(-height * s // r), -(-width * s // r))
    return FramePlan(height, width, pad, tiles, out)


def _tensor0(model: Model, frame: np.ndarray, fp: FramePlan) -> np.ndarray:
    if any(fp.pad):
        frame = np.pad(frame, ((0, fp.pad[0]), (0, fp.pad[1]), (0, 0)), mode="edge")
    return spec.model_input(model, frame)


def restore_frames(model: Model, backend: Backend,
                   frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Restored image for each (H, W, image_channels) uint8 frame, in order.

    Tiles of all frames go to ``backend.run`` as one stream, so a board backend can overlap
    the last tile of frame n with the first of frame n+1.
    """
    pending: deque = deque()  # (plan, output tensor, tiles left) of frames in flight
    plans: dict[tuple[int, int], FramePlan] = {}

    def tiles_in() -> Iterator[np.ndarray]:
        for frame in frames:
            h, w = frame.shape[:2]
            fp = plans.get((h, w)) or plans.setdefault((h, w), frame_plan(model, backend, h, w))
            x0 = _tensor0(model, frame, fp)
            y0 = np.empty(x0.shape[:2] + (model.layers[-1].c_out,), np.uint8)
            pending.append([fp, y0, len(fp.tiles)])
            for t in fp.tiles:
                yield x0[t.ys, t.xs]

    for y in backend.run(tiles_in()):
        fp, y0, left = pending[0]
        t = fp.tiles[len(fp.tiles) - left]
        y0[t.out_ys, t.out_xs] = y[t.core()]
        pending[0][2] -= 1
        if pending[0][2] == 0:
            pending.popleft()
            img = spec.model_output(model, y0)
            yield img[: fp.out_size[0], : fp.out_size[1]]


def filter_level(model: Model) -> int:
    """The noise level that guides the filters after the accelerator: the model's (its
    noise-level channel's value); 0, which leaves frames unchanged, for a model without one."""
    return model.steps.noise_level if model.steps.noise_channel else 0


def postprocessed(model: Model, frames: Iterable[np.ndarray], *, grid: bool = True,
                  temporal: bool = False) -> Iterator[np.ndarray]:
    """``frames`` (restored, in order) through the filters the host runs after the
    accelerator, each guided by :func:`filter_level`: with ``grid``, :func:`spec.degrid.degrid`
    on each frame where the model's output is pixel-shuffled by 2 (the period it removes);
    then, with ``temporal`` (video), :class:`spec.temporal.TemporalFilter` across them."""
    level = filter_level(model)
    grid = grid and level > 0 and model.steps.shuffle == 2
    blend = TemporalFilter(level if temporal else 0)
    for frame in frames:
        yield blend(degrid(frame, level) if grid else frame)


# ------------------------------------------------------------------ overlapping the stages
# Decoding, the kernel and x264 each release the GIL for most of their time, so a frame can
# be decoded and another encoded while the kernel runs on a third. The kernel stays in the
# main thread (signals are delivered there); the queues are short so memory stays a few frames.

def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; True if it went in."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            pass
    return False


def prefetched(items: Iterable[T], depth: int = 2) -> "Prefetched[T]":
    """``items`` in order, produced by a thread of its own up to ``depth`` ahead: see
    :class:`Prefetched`."""
    return Prefetched(items, depth)


class Prefetched(Iterator[T]):
    """Iterates ``items`` in order, produced by a thread of its own up to ``depth`` ahead;
    the thread starts at once, so the first items are ready while the caller still sets up.

    An error of ``items`` re-raises here; :meth:`close` (also on an error, or Ctrl-C in the
    consumer, under ``contextlib.closing``) stops that thread and waits for it, so no thread
    outlives the call, even one never iterated.
    """

    def __init__(self, items: Iterable[T], depth: int = 2):
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        # The thread holds the queue and the event, not this object, so dropping the last
        # reference to an unclosed one still stops it (__del__ sets the event).
        self._thread = threading.Thread(target=_feed, args=(items, self._q, self._stop),
                                        name="gamir-prefetch", daemon=True)
        self._thread.start()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            x, err = self._q.get()
        except BaseException:  # Ctrl-C while waiting
            self.close()
            raise
        if x is _END:
            self.close()
            if err is not None:
                raise err
            raise StopIteration
        return x

    def close(self) -> None:
        self._done = True
        self._stop.set()
        self._thread.join()

    def __del__(self) -> None:
        # Only the signal: joining here could wait on a thread the interpreter stopped at exit.
        self._stop.set()


def _feed(items: Iterable[T], q: queue.Queue, stop: threading.Event) -> None:
    """:class:`Prefetched`'s thread: ``items`` into ``q`` until the end, an error or ``stop``."""
    it = iter(items)
    try:
        for x in it:
            if not _put(q, (x, None), stop):
                return
        _put(q, (_END, None), stop)
    except BaseException as e:  # handed to the consumer, raised there
        _put(q, (_END, e), stop)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


class BackgroundWriter:
    """Calls ``write(item)`` for each :meth:`put` item in order, in a thread of its own.

    :meth:`finish` waits for every item and re-raises the first error of ``write``;
    :meth:`close` (also on leaving a ``with``) stops without writing the rest. Either way the
    thread has ended when they return, so the caller can commit or abort the output after.
    """

    def __init__(self, write: Callable[[T], None], depth: int = 2):
        self._write, self._q = write, queue.Queue(depth)
        self._stop, self._error = threading.Event(), None
        self._thread = threading.Thread(target=self._drain, name="gamir-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._q.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._write(item)
            except BaseException as e:  # re-raised by put/finish in the caller's thread
                self._error = e
                return

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item`` (waits while ``depth`` items are queued); re-raise ``write``'s error."""
        while True:
            self._check()
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                pass

    def finish(self) -> None:
        """Write everything put so far; re-raise ``write``'s error."""
        self._check()
        if self._thread.is_alive():
            _put(self._q, _END, self._stop)
        self._thread.join()
        self._check()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
