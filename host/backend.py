"""The narrow interface every backend implements, the CPU emulation, and the choice among them.

A backend turns accelerator input tensors (tensor 0: (H, W, input_channels) uint8, one tile at
a time) into output tensors ((H, W, c_out) uint8), in order. ``run`` takes an iterable so a
board backend can keep two frames in flight (send n+1 while n comes back); everything else
(pixel steps, tiling, video) happens above it, identically for every backend.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

import spec
from spec import Model

from .errors import HostError
from .manifest import Manifest

__all__ = ["BACKENDS", "Backend", "EmulateBackend", "open_backend"]

BACKENDS = ("auto", "pynq", "verilator", "emulate")


class Backend:
    """Runs one model's layers on tiles of tensor 0.

    ``max_width``/``max_height`` are the largest tile (accelerator pixels) it accepts, ``None``
    for no limit. ``cycles_per_frame`` is the hardware's cycle count for a tile where known:
    measured (``measured_cycles``, filled by backends that read the ``CYCLES`` register),
    else predicted from the manifest.
    """

    name = "backend"
    #: Largest tile, in accelerator pixels, a backend without line-buffer limits takes at once
    #: (``None``: any). Frames beyond it go through in bands of whole rows (host.pipeline), so
    #: memory is bounded by the band, not the image.
    band_pixels: int | None = None

    def __init__(self, model: Model, manifest: Manifest | None = None):
        self.model, self.manifest = model, manifest
        self.max_width = manifest.max_width if manifest else None
        self.max_height = manifest.max_height if manifest else None
        self.measured_cycles: dict[tuple[int, int], int] = {}

    def cycles_per_frame(self, height: int, width: int) -> int | None:
        if (height, width) in self.measured_cycles:
            return self.measured_cycles[(height, width)]
        if self.manifest is None:
            return None
        return self.manifest.cycles_per_frame(self.model, height, width)

    def run(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Output tensor for each input tensor, in order."""
        raise NotImplementedError

    def process(self, x0: np.ndarray) -> np.ndarray:
        """Output tensor for one input tensor."""
        return next(iter(self.run([x0])))

    def close(self) -> None:
        """Release the device (buffers, simulator)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EmulateBackend(Backend):
    """The spec on the CPU: the native kernel where it runs, else the packed numpy spec.

    Bit for bit what the accelerator computes; with a manifest it still tiles to the
    bitstream's width so it exercises exactly the board's path. ``impl`` is one of
    :data:`spec.IMPLS`; ``name`` says which path runs (``GAMIR_NATIVE=0`` forces numpy).
    """

    # The numpy spec's working set is about 1.5 KB per accelerator pixel for the shipped
    # 32-channel denoiser: bands of 2**18 pixels (a 1280x720 frame after 2x2 unshuffle, 230k,
    # stays whole) keep it near 0.4 GB however large the image. The native kernel runs the
    # layers fused row by row, so its memory is bounded already and it needs no bands.
    band_pixels = 2**18

    def __init__(self, model: Model, manifest: Manifest | None = None, impl: str = "auto"):
        super().__init__(model, manifest)
        self.path, self._run = spec.tensor_runner(model, impl)
        self.name = f"emulate with {self.path}"
        if self.path.startswith("native"):
            self.band_pixels = None

    def run(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for x0 in tensors:
            yield self._run(x0)


def open_backend(kind: str, model: Model, manifest: Manifest | None,
                 bitstream: Path | None, timeout: float | None = None) -> Backend:
    """The backend ``kind`` (one of :data:`BACKENDS`) for ``model``; ``auto`` explains its pick.

    ``timeout`` (seconds per tile) applies to the board's DMA; ``None`` derives it from the
    predicted cycles per frame.
    """
    if kind not in BACKENDS:
        raise HostError(f"backend {kind!r} is not one of {', '.join(BACKENDS)}")
    if kind == "emulate":
        return EmulateBackend(model, manifest)
    if kind == "verilator":
        from .verilator_backend import VerilatorBackend

        return VerilatorBackend(model, manifest)
    from . import pynq_backend

    present, why = pynq_backend.board_present()
    if kind == "pynq" or present:
        if not present:
            raise HostError(f"--backend pynq: no PYNQ board here ({why}). Run on the board, or "
                            f"use --backend emulate for the bit-exact CPU emulation")
        if manifest is not None and manifest.flow == "open":
            from .pynq_open_backend import OpenFlowBackend

            return OpenFlowBackend(model, manifest, bitstream, timeout)
        return pynq_backend.PynqBackend(model, manifest, bitstream, timeout)
    backend = EmulateBackend(model, manifest)
    print(f"auto: no PYNQ board here ({why}); emulating the accelerator bit-exactly on the CPU "
          f"({backend.path})", file=sys.stderr)
    return backend
