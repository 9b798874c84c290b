"""The bitstream's manifest: what the accelerator was generated for.

``python -m hw.generate`` (and ``python -m hw.build``) write ``manifest.json`` beside the
Verilog; the PYNQ build puts ``gam.bit`` and ``gam.hwh`` beside it. The host looks for
``<bitstream stem>.json`` first, then ``manifest.json`` in the bitstream's folder. From it the
host takes the model's shape hash and digest (to check and to find the model), the maximum
frame width of the line buffers (to tile), the folding (to pack parameters and predict cycles)
and the clock (for timeouts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw import perf
from spec import Model

from .errors import HostError

__all__ = ["Manifest", "find_manifest", "load_manifest"]


@dataclass(eq=False)
class Manifest:
    """The parsed manifest; ``data`` keeps every field (layout: :func:`hw.generate.manifest`)."""

    path: Path
    data: dict[str, Any] = field(repr=False)
    _cycles: dict = field(default_factory=dict, repr=False)

    @property
    def shape_hash(self) -> str:
        return self.data["model"]["shape_hash"]

    @property
    def model_digest(self) -> str:
        return self.data["model"]["digest"]

    @property
    def fold(self) -> list | None:
        return self.data.get("fold")

    @property
    def max_width(self) -> int:
        """Widest row the line buffers hold, in accelerator pixels (tensor 0)."""
        return int(self.data["max_width"])

    @property
    def max_height(self) -> int | None:
        v = self.data.get("max_height")
        return int(v) if v is not None else None

    @property
    def clock_hz(self) -> float | None:
        """The accelerator's clock: the build's if it was built, else the generator's guess."""
        build = self.data.get("build", {})
        if build.get("clock_mhz"):
            return float(build["clock_mhz"]) * 1e6
        return self.data.get("performance", {}).get("clock_hz")

    def cycles_per_frame(self, model: Model, height: int, width: int) -> int:
        """Predicted ``CYCLES`` for one ``height`` x ``width`` tile (:func:`hw.perf.frame_cycles`)."""
        key = (model.shape_hash(), height, width)  # every tile of a video has one size
        if key not in self._cycles:
            self._cycles[key] = perf.frame_cycles(model, self.fold, height=height, width=width)
        return self._cycles[key]

    def check_model(self, model: Model, model_name: str) -> None:
        """Raise unless ``model`` can run on this bitstream (same shape; weights may differ)."""
        if model.shape_hash() != self.shape_hash:
            raise HostError(
                f"model {model_name} does not match the bitstream's manifest {str(self.path)!r}: "
                f"the bitstream was generated for a model of shape {self.shape_hash[:12]}..., "
                f"this model has shape {model.shape_hash()[:12]}... (layers, channels or "
                f"pixel steps differ). Use the bitstream's own model (leave out --model), or "
                f"regenerate the bitstream for this model with `python -m hw.generate`"
            )


def find_manifest(bitstream: Path) -> Path | None:
    """``<stem>.json`` or ``manifest.json`` beside ``bitstream``, whichever exists first."""
    for p in (bitstream.with_suffix(".json"), bitstream.with_name("manifest.json")):
        if p.is_file():
            return p
    return None


def load_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise HostError(f"cannot read manifest {str(path)!r}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise HostError(f"manifest {str(path)!r} is not valid JSON ({e})") from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or not {"shape_hash", "digest"} <= model.keys() \
            or "max_width" not in data or "fold" not in data:
        raise HostError(f"manifest {str(path)!r} is not a gamir bitstream manifest (it needs "
                        f"model.shape_hash, model.digest, max_width and fold): regenerate it "
                        f"with `python -m hw.generate`")
    return Manifest(path, data)
