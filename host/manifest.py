"""The bitstream's manifest: what the accelerator was generated for.

``python -m hw.generate`` writes ``manifest.json`` beside the Verilog; a board build copies it
beside ``gam.bit``. The host looks for ``<bitstream stem>.json`` first, then ``manifest.json``
in the bitstream's folder. The manifest names the model (digest and shape hash), the maximum
frame width of the line buffers, the folding, the register map and the predicted cycles per
frame; the host needs it to check the model, to tile, and to program the registers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spec import Model

from .errors import HostError

__all__ = ["Manifest", "find_manifest", "load_manifest"]


@dataclass
class Manifest:
    """The parsed manifest; ``data`` keeps every field for the board driver."""

    path: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def shape_hash(self) -> str:
        return self.data["shape_hash"]

    @property
    def model_digest(self) -> str | None:
        return self.data.get("model_digest")

    @property
    def max_width(self) -> int:
        """Widest row the line buffers hold, in accelerator pixels (tensor 0)."""
        return int(self.data["max_width"])

    @property
    def max_height(self) -> int | None:
        v = self.data.get("max_height")
        return int(v) if v is not None else None

    def cycles_per_frame(self, height: int, width: int) -> int | None:
        """Predicted accelerator cycles for one ``height`` x ``width`` tile, where known."""
        perf = self.data.get("cycles_per_frame")
        if isinstance(perf, (int, float)):
            return int(perf)
        if isinstance(perf, dict) and {"per_pixel", "fixed"} <= perf.keys():
            return int(perf["per_pixel"] * height * width + perf.get("per_row", 0) * height
                       + perf["fixed"])
        return None

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
    missing = [k for k in ("shape_hash", "max_width") if k not in data]
    if not isinstance(data, dict) or missing:
        raise HostError(f"manifest {str(path)!r} is not a gamir bitstream manifest (missing "
                        f"{', '.join(missing) or 'everything'}): regenerate it with "
                        f"`python -m hw.generate`")
    return Manifest(path, data)
