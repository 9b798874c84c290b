"""The narrow interface every backend implements, and the CPU emulation.

A backend turns accelerator input tensors (tensor 0: (H, W, input_channels) uint8, one tile at
a time) into output tensors ((H, W, c_out) uint8), in order. ``run`` takes an iterable so a
board backend can keep two frames in flight (send n+1 while n comes back); everything else
(pixel steps, tiling, video) happens above it, identically for every backend. Which backend
runs is :mod:`host.backends`' choice; the backends import this module, never the reverse.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

import spec
from spec import Model

from .manifest import Manifest

__all__ = ["Backend", "EmulateBackend"]


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
        self.path, self._stream = spec.stream_runner(model, impl)
        self.name = f"emulate with {self.path}"
        if self.path.startswith("native"):
            self.band_pixels = None

    def run(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        yield from self._stream(tensors)
