"""The manifest: what one generated accelerator is, in one typed, versioned record.

``hw.generate`` writes it (``manifest.json`` beside ``gam_top.v``), ``hw.build`` adds its
``build`` section, the host (:mod:`host.manifest` finds it beside a bitstream) and the
simulation read it; all of them through :class:`Manifest`, never by key. The JSON keeps
everything a reader outside Python needs (register map, parameter regions, performance).

Schema versions: 1 adds ``schema_version``; a manifest without it (version 0, written before)
has the same fields and is read the same way.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from spec import fileformat
from spec.model import Model

from . import config, perf, regmap

__all__ = ["SCHEMA_VERSION", "FLOWS", "ManifestError", "ModelInfo", "Manifest"]

SCHEMA_VERSION = 1
#: The flows that make a Zynq bitstream, as ``build.flow`` names them: ``vivado`` (the block
#: design with Xilinx's AXI DMA; also a build section without ``flow``, written before the
#: open flow) and ``open`` (Yosys + nextpnr, :mod:`hw.zynq_top` with its own DMA). The host
#: picks its board driver by it.
FLOWS = ("vivado", "open")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names what is wrong."""


@dataclass(frozen=True)
class ModelInfo:
    """The model a design was generated for (any model of the same shape runs on it)."""

    name: str
    task: str
    digest: str
    shape_hash: str
    shape: dict
    input_channels: int
    output_channels: int

    @classmethod
    def of(cls, model: Model) -> "ModelInfo":
        return cls(name=model.name, task=model.task, digest=fileformat.digest(model),
                   shape_hash=model.shape_hash(), shape=model.shape_dict(),
                   input_channels=model.input_channels,
                   output_channels=model.layers[-1].c_out)


@dataclass(frozen=True)
class Manifest:
    """One generated accelerator (see the module docstring).

    ``fold`` is the normalized :class:`accel.regmap.Fold`; ``performance`` is
    :func:`accel.perf.report` at generation; ``build`` is ``hw.build``'s section (board,
    device, bitstream, clock_mhz) and ``pynq`` the block design's IP names, both ``None``
    until a build adds them.
    """

    model: ModelInfo
    max_width: int
    fold: regmap.Fold
    performance: dict
    param_regions: list
    shape_id: int
    streams: dict
    register_map: dict = field(default_factory=regmap.register_map)
    max_height: int = regmap.MAX_HEIGHT
    axil_addr_bits: int = regmap.AXIL_ADDR_BITS
    top: str = "gam_top"
    dsp_budget: int | None = None
    dsp_terms: list | None = None
    build: dict | None = None
    pynq: dict | None = None

    @classmethod
    def describe(cls, model: Model, fold, *, max_width: int, frame=config.DEFAULT_FRAME,
                 clock_hz: float = config.DEFAULT_CLOCK_HZ, dsp_budget: int | None = None,
                 dsp_terms: list | None = None) -> "Manifest":
        """The manifest of ``model`` generated with ``fold`` (resolved:
        :func:`accel.regmap.given_fold`)."""
        folds = regmap.given_fold(model, fold)
        h, w = frame
        return cls(
            model=ModelInfo.of(model), max_width=max_width, fold=folds,
            performance=perf.report(model, folds, height=h, width=w, clock_hz=clock_hz,
                                    max_width=max_width),
            param_regions=[r.as_dict() for r in regmap.regions(model, folds)],
            shape_id=regmap.shape_id(model),
            streams={"s_axis_tdata_bits": regmap.stream_bits(model.input_channels),
                     "m_axis_tdata_bits": regmap.stream_bits(model.layers[-1].c_out)},
            dsp_budget=dsp_budget, dsp_terms=dsp_terms)

    @property
    def clock_hz(self) -> float | None:
        """The accelerator's clock: the build's if it was built, else the generator's guess."""
        if self.build and self.build.get("clock_mhz"):
            return float(self.build["clock_mhz"]) * 1e6
        return self.performance.get("clock_hz")

    @property
    def flow(self) -> str:
        """Which flow made the bitstream (:data:`FLOWS`)."""
        return (self.build or {}).get("flow", FLOWS[0])

    def with_build(self, build: dict, pynq: dict | None = None) -> "Manifest":
        """This manifest with ``hw.build``'s section (and the PYNQ IP names) added."""
        return dataclasses.replace(self, build=build, pynq=pynq)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        d = {"schema_version": SCHEMA_VERSION, "top": self.top,
             "model": dataclasses.asdict(self.model), "max_width": self.max_width,
             "max_height": self.max_height, "fold": self.fold.as_json(),
             "streams": self.streams, "axil_addr_bits": self.axil_addr_bits,
             "register_map": self.register_map, "shape_id": self.shape_id,
             "param_regions": self.param_regions, "performance": self.performance,
             "dsp_budget": self.dsp_budget, "dsp_terms": self.dsp_terms}
        if self.build is not None:
            d["build"] = self.build
        if self.pynq is not None:
            d["pynq"] = self.pynq
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> "Manifest":
        """Parse a manifest; :class:`ManifestError` names the first thing missing or wrong."""
        if not isinstance(d, dict):
            raise ManifestError("a manifest is a JSON object")
        version = d.get("schema_version", 0)
        if not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
            raise ManifestError(f"schema_version {version!r} is not supported (this gamir "
                                f"reads 0..{SCHEMA_VERSION})")
        model = d.get("model")
        if not isinstance(model, dict) or not {"shape_hash", "digest"} <= model.keys() \
                or "max_width" not in d or "fold" not in d:
            raise ManifestError("it needs model.shape_hash, model.digest, max_width and fold")
        build = d.get("build")
        if build is not None and (not isinstance(build, dict)
                                  or build.get("flow", FLOWS[0]) not in FLOWS):
            raise ManifestError(f"build.flow must be one of {', '.join(FLOWS)}")
        try:
            fold = regmap.Fold.from_json(d["fold"])
        except regmap.FoldError as e:
            raise ManifestError(str(e)) from None
        try:
            info = ModelInfo(**{f.name: model.get(f.name) for f in dataclasses.fields(ModelInfo)})
            return cls(
                model=info, max_width=int(d["max_width"]), fold=fold,
                performance=d.get("performance", {}), param_regions=d.get("param_regions", []),
                shape_id=d.get("shape_id", 0), streams=d.get("streams", {}),
                register_map=d.get("register_map", {}),
                max_height=int(d.get("max_height") or regmap.MAX_HEIGHT),
                axil_addr_bits=d.get("axil_addr_bits", regmap.AXIL_ADDR_BITS),
                top=d.get("top", "gam_top"), dsp_budget=d.get("dsp_budget"),
                dsp_terms=d.get("dsp_terms"), build=d.get("build"), pynq=d.get("pynq"))
        except (TypeError, ValueError, KeyError) as e:
            raise ManifestError(f"a field has the wrong type ({e})") from None

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"not valid JSON ({e})") from None
        return cls.from_dict(d)
