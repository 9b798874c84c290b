"""The bitstream's manifest, found beside it: what the accelerator was generated for.

``python -m hw.generate`` (and ``python -m hw.build``) write ``manifest.json`` beside the
Verilog (:class:`accel.manifest.Manifest`); the PYNQ build puts ``gam.bit`` and ``gam.hwh``
beside it. The host looks for ``<bitstream stem>.json`` first, then ``manifest.json`` in the
bitstream's folder. From it the host takes the model's shape hash and digest (to check and to
find the model), the maximum frame width of the line buffers (to tile), the folding (to pack
parameters and predict cycles) and the clock (for timeouts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from accel import perf, regmap
from accel.manifest import Manifest as Design
from accel.manifest import ManifestError
from spec import Model

from .errors import HostError

__all__ = ["Manifest", "find_manifest", "load_manifest"]


@dataclass(eq=False)
class Manifest:
    """A manifest file: where it is (``path``) and what it says (``design``)."""

    path: Path
    design: Design
    _cycles: dict = field(default_factory=dict, repr=False)

    @property
    def shape_hash(self) -> str:
        return self.design.model.shape_hash

    @property
    def model_digest(self) -> str:
        return self.design.model.digest

    @property
    def fold(self):
        """The :class:`accel.regmap.Fold` (``None``: fully unfolded)."""
        return self.design.fold

    @property
    def max_width(self) -> int:
        """Widest row the line buffers hold, in accelerator pixels (tensor 0)."""
        return self.design.max_width

    @property
    def max_height(self) -> int:
        return self.design.max_height

    @property
    def clock_hz(self) -> float | None:
        return self.design.clock_hz

    @property
    def flow(self) -> str:
        """The flow that made the bitstream: ``vivado`` or ``open`` (:data:`accel.manifest.FLOWS`)."""
        return self.design.flow

    @property
    def pynq(self) -> dict:
        """The block design's IP names (``accelerator``, ``dma``), if the build gave them."""
        return self.design.pynq or {}

    def cycles_per_frame(self, model: Model, height: int, width: int) -> int:
        """Predicted ``CYCLES`` for one ``height`` x ``width`` tile (:func:`accel.perf.frame_cycles`)."""
        key = (model.shape_hash(), height, width)  # every tile of a video has one size
        if key not in self._cycles:
            self._cycles[key] = perf.frame_cycles(model, self.fold, height=height, width=width)
        return self._cycles[key]

    def check_model(self, model: Model, model_name: str) -> None:
        """Raise unless ``model`` can run on this bitstream (same shape; weights may differ)
        and the manifest's fold is one of its shape (the host's edge: checked once here)."""
        if model.shape_hash() != self.shape_hash:
            raise HostError(
                f"model {model_name} does not match the bitstream's manifest {str(self.path)!r}: "
                f"the bitstream was generated for a model of shape {self.shape_hash[:12]}..., "
                f"this model has shape {model.shape_hash()[:12]}... (layers, channels or "
                f"pixel steps differ). Use the bitstream's own model (leave out --model), or "
                f"regenerate the bitstream for this model with `python -m hw.generate`"
            )
        try:
            regmap.normalize_fold(model, self.fold)
        except regmap.FoldError as e:
            raise HostError(f"manifest {str(self.path)!r}: its fold does not fit the model "
                            f"({e}): regenerate it with `python -m hw.generate`") from None


def find_manifest(bitstream: Path) -> Path | None:
    """``<stem>.json`` or ``manifest.json`` beside ``bitstream``, whichever exists first."""
    for p in (bitstream.with_suffix(".json"), bitstream.with_name("manifest.json")):
        if p.is_file():
            return p
    return None


def load_manifest(path: Path) -> Manifest:
    try:
        text = path.read_text()
    except OSError as e:
        raise HostError(f"cannot read manifest {str(path)!r}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HostError(f"manifest {str(path)!r} is not valid JSON ({e})") from None
    try:
        return Manifest(path, Design.from_dict(data))
    except ManifestError as e:
        raise HostError(f"manifest {str(path)!r} is not a gamir bitstream manifest ({e}): "
                        f"regenerate it with `python -m hw.generate`") from None
