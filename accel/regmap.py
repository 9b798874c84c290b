"""The registers and memories of the accelerator, as its hardware, simulation and host see them.

Three things are defined here, once, for ``hw/``, ``sim/`` and ``host/``:

1. The AXI4-Lite register map (byte addresses of 32-bit registers, status bits).
2. Folding: which ``pe``/``simd``/``out_pe`` every layer uses (:class:`Fold`, normalized once
   by :func:`normalize_fold`), and the parameter memories that folding implies.
3. The packing of a model's parameter arrays into 32-bit words loaded through ``PARAM_ADDR`` /
   ``PARAM_DATA``, and the AXI4-Stream pixel packing.

Parameter address space
-----------------------
Every parameter memory of the accelerator is one *region*. A parameter word address is
``region << REGION_SHIFT | entry * stride + word``: the region number sits in the high bits so
the hardware decodes it with a small compare, and ``stride`` (a power of two >= the words per
entry) makes the entry index a bit slice. Word ``k`` of an entry holds entry bits
``32k .. 32k+31``. Writing ``PARAM_DATA`` stores one word at ``PARAM_ADDR`` and increments
``PARAM_ADDR``; a whole region is therefore one address write followed by its words.
:func:`param_writes` yields exactly those (address, words) chunks.

Regions per layer, in layer order:

``weights``
    ``nf*sf`` entries, entry ``n*sf + s`` holds the ``pe x simd`` weights of output channels
    ``n*pe .. n*pe+pe-1`` and flat taps ``s*simd .. s*simd+simd-1`` (flat tap index
    ``(ky*kernel + kx)*c_in + ci``; a depthwise layer's taps are ``ky*kernel + kx`` of the
    output channel's own input channel), element ``(p, j)`` at bit ``(p*simd + j)*w_bits``, two's
    complement for fixed layers, 1 = +1 for binary layers.
the output stage's (named after it: ``threshold``, ``affine``, ``pixel``)
    ``c_out/out_pe`` entries of ``out_pe`` lanes, each lane the stage's
    :meth:`~spec.stages.Stage.param_fields` in order, first field in the low bits: ``T``
    (clamped to the accumulator range +/- 1, which changes no comparison, and as wide as that
    range) then ``flip`` (1 bit); ``A`` (``scale_bits`` signed), ``B`` (32 bit signed) and, for
    the pixel stage, ``residual_map + 1`` (unsigned, 0 = no global residual).

Stream packing
--------------
One pixel per beat; ``tdata`` is the next power of two >= ``8*channels`` bits (at least 32);
channel ``c`` is byte ``c`` (little-endian), padding bytes are zero.

DMA (open-flow Zynq design)
---------------------------
The design without Xilinx IP (:mod:`hw.zynq_top`) has its own AXI3 master (:mod:`hw.axi_dma`)
on the PS7's S_AXI_HP0; its registers (:data:`DMA_REGISTERS`) share the AXI4-Lite window from
:data:`DMA_BASE` up (address bit 11 picks them; the accelerator's own registers sit below).
A frame in DDR is exactly :func:`pack_pixels`' array: pixel ``k`` (raster order) at byte
``k * stream_bytes(channels)``, its bytes as on the stream. ``stream_bytes`` is a power of two,
so a 64-bit bus beat holds two whole pixels or a pixel spans whole beats: no pixel straddles a
beat boundary and the DMA needs no byte shifter; the buffers are the same ones the Vivado
design's AXI DMA moves (same host code). Buffer addresses are multiples of
:data:`DMA_ALIGN`; lengths are whole pixels (:func:`dma_bytes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spec.model import Layer, Model, TensorType

__all__ = [
    "ID_VALUE",
    "REGISTERS",
    "REG",
    "CONTROL_SOFT_RESET",
    "CONTROL_CLEAR_ERRORS",
    "STATUS_BUSY",
    "STATUS_ERR_TLAST_EARLY",
    "STATUS_ERR_TLAST_LATE",
    "STATUS_ERR_PARAM_ADDR",
    "STATUS_ERR_FRAME_SIZE",
    "REGION_SHIFT",
    "MAX_HEIGHT",
    "AXIL_ADDR_BITS",
    "FoldError",
    "LayerFold",
    "Fold",
    "Region",
    "normalize_fold",
    "given_fold",
    "acc_bounds",
    "regions",
    "region_entries",
    "param_writes",
    "shape_id",
    "stream_bits",
    "stream_bytes",
    "pack_pixels",
    "unpack_pixels",
    "beats_to_ints",
    "DMA_BASE",
    "GP0_BASE",
    "DMA_REGISTERS",
    "DMA_REG",
    "DMA_ALIGN",
    "DMA_BEAT_BYTES",
    "DMA_START_READ",
    "DMA_START_WRITE",
    "DMA_ABORT",
    "DMA_CLEAR_ERRORS",
    "DMA_READ_BUSY",
    "DMA_WRITE_BUSY",
    "DMA_ERR_READ",
    "DMA_ERR_WRITE",
    "DMA_ERR_START",
    "DMA_ERR_SHORT",
    "DMA_ERR_LONG",
    "DMA_ERRORS",
    "dma_bytes",
    "register_map",
]

#: Value of the ID register: ASCII "GAM" and format version 1.
ID_VALUE = 0x47414D01

#: name -> (byte address, access, meaning). Registers are 32 bit.
REGISTERS = {
    "ID": (0x00, "r", "constant ID_VALUE"),
    "SHAPE": (0x04, "r", "first 32 bits of the model's shape_hash (which models this bitstream runs)"),
    "CONTROL": (0x08, "w", "bit 0 soft reset of the pixel pipeline, bit 1 clear error bits (pulses)"),
    "STATUS": (0x0C, "r", "bit 0 busy (a frame is in flight), bits 1..4 sticky errors"),
    "WIDTH": (0x10, "rw", "frame width in accelerator pixels, 1..MAX_WIDTH (set while idle)"),
    "HEIGHT": (0x14, "rw", "frame height in accelerator pixels, 1..65535 (set while idle)"),
    "FRAMES": (0x18, "r", "frames completed on the output since reset"),
    "CYCLES": (0x1C, "r", "clock cycles of the last frame, first input beat to last output beat "
                          "(exact while at most 16 frames are in flight)"),
    "PARAM_ADDR": (0x20, "rw", "parameter word address (region << REGION_SHIFT | offset)"),
    "PARAM_DATA": (0x24, "w", "write one parameter word at PARAM_ADDR, then PARAM_ADDR += 1 "
                              "(while idle)"),
    "MAX_WIDTH": (0x28, "r", "largest frame width the line buffers hold"),
    "CHANNELS": (0x2C, "r", "input channels in bits 0..15, output channels in bits 16..31"),
}
#: name -> byte address.
REG = {name: spec[0] for name, spec in REGISTERS.items()}

CONTROL_SOFT_RESET = 1 << 0
CONTROL_CLEAR_ERRORS = 1 << 1
STATUS_BUSY = 1 << 0
#: TLAST arrived before the frame's last pixel (WIDTH*HEIGHT from the registers).
STATUS_ERR_TLAST_EARLY = 1 << 1
#: The frame's last pixel arrived without TLAST.
STATUS_ERR_TLAST_LATE = 1 << 2
#: A PARAM_DATA write hit an address outside every region (the word was dropped).
STATUS_ERR_PARAM_ADDR = 1 << 3
#: A WIDTH/HEIGHT write outside 1..MAX_WIDTH / 1..MAX_HEIGHT (the register kept its value).
STATUS_ERR_FRAME_SIZE = 1 << 4

REGION_SHIFT = 20
MAX_HEIGHT = 65535
#: AXI4-Lite address width (a 4 KiB register window).
AXIL_ADDR_BITS = 12


class FoldError(ValueError):
    """A folding choice breaks a rule; the message names the layer and the rule."""


@dataclass(frozen=True)
class LayerFold:
    """Folding of one layer (FINN's names).

    ``pe`` output channels and ``simd`` of the ``taps = kernel*kernel*c_in/groups`` inputs are
    processed per cycle: ``nf = c_out/pe`` and ``sf = taps/simd`` folds, so the PE array takes
    ``nf*sf`` cycles per pixel. The output stage (threshold, affine or pixel) handles ``out_pe``
    channels per cycle, ``c_out/out_pe`` cycles per pixel (it holds the multipliers).
    """

    pe: int
    simd: int
    out_pe: int

    def as_dict(self) -> dict:
        return {"pe": self.pe, "simd": self.simd, "out_pe": self.out_pe}


class Fold(tuple):
    """The folding of every layer: a tuple of :class:`LayerFold`, validated for one model's
    shape by :func:`normalize_fold` (a command's edge, :func:`accel.fold.resolve_fold`); what
    the manifest stores and every layer below the edge takes (:func:`given_fold`)."""

    @classmethod
    def full(cls, model: Model) -> "Fold":
        """Every layer fully unfolded: one pixel per clock."""
        return cls(LayerFold(layer.c_out, layer.taps, layer.c_out) for layer in model.layers)

    def as_json(self) -> list[dict]:
        return [f.as_dict() for f in self]

    @classmethod
    def from_json(cls, data) -> "Fold | None":
        """Read :meth:`as_json`'s list (``None`` stays ``None``: fully unfolded). The result
        is checked against a model only by :func:`normalize_fold`."""
        if data is None:
            return None
        if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
            raise FoldError(f"fold {data!r} must be a list of {{pe, simd, out_pe}} objects")
        try:
            return cls(LayerFold(int(f["pe"]), int(f["simd"]), int(f.get("out_pe", f["pe"])))
                       for f in data)
        except (KeyError, TypeError, ValueError) as e:
            raise FoldError(f"fold entry is missing or has a bad {e}") from None


def normalize_fold(model: Model, fold=None) -> Fold:
    """Validate ``fold`` for ``model`` and return its :class:`Fold` (one per layer).

    ``fold`` is ``None`` or ``"full"`` (fully unfolded: one pixel per clock), a :class:`Fold`,
    or a list with one entry per layer, each a :class:`LayerFold`, a dict with ``pe``, ``simd``
    and optional ``out_pe`` (default ``pe``), or ``None`` (that layer fully unfolded).
    """
    layers = model.layers
    if fold is None or fold == "full":
        return Fold.full(model)
    if isinstance(fold, (str, bytes)) or not hasattr(fold, "__len__"):
        raise FoldError(f"fold={fold!r} must be None, 'full' or a list with one entry per layer")
    if len(fold) != len(layers):
        raise FoldError(f"fold has {len(fold)} entries, the model has {len(layers)} layers")
    out = []
    for i, (layer, f) in enumerate(zip(layers, fold), 1):
        if f is None:
            f = LayerFold(layer.c_out, layer.taps, layer.c_out)
        elif isinstance(f, dict):
            unknown = set(f) - {"pe", "simd", "out_pe"}
            if unknown:
                raise FoldError(f"layer {i}: unknown fold keys {sorted(unknown)}")
            pe = f.get("pe", layer.c_out)
            f = LayerFold(pe, f.get("simd", layer.taps), f.get("out_pe", pe))
        elif not isinstance(f, LayerFold):
            raise FoldError(f"layer {i}: fold entry {f!r} must be a dict, LayerFold or None")
        for key, total, what in (("pe", layer.c_out, "c_out"), ("simd", layer.taps, "taps"),
                                 ("out_pe", layer.c_out, "c_out")):
            v = getattr(f, key)
            if not isinstance(v, int) or v < 1 or total % v:
                raise FoldError(f"layer {i}: {what}={total} must be a multiple of {key}={v!r}")
        if f.pe % f.out_pe:
            raise FoldError(f"layer {i}: pe={f.pe} must be a multiple of out_pe={f.out_pe}")
        out.append(f)
    return Fold(out)


def given_fold(model: Model, fold) -> Fold:
    """What every layer below a command's edge calls on the fold it is handed: a :class:`Fold`
    is resolved already (:func:`accel.fold.resolve_fold`) and comes back as it is, so a command
    normalizes once; anything else (``None``, a list) means the caller is the edge, and is
    normalized here (:func:`normalize_fold`)."""
    return fold if isinstance(fold, Fold) else normalize_fold(model, fold)


def acc_bounds(layer: Layer, in_type: TensorType) -> tuple[int, int]:
    """Accumulator bounds for *every* model of this layer's shape (any weights in ``w_bits``).

    :meth:`spec.model.Layer.acc_range` bounds one model's weights; a bitstream must hold any
    reloaded model, so its kind bounds the extreme weights (:meth:`spec.kinds.Kind.acc_bounds`).
    """
    return layer.conv.acc_bounds(layer, *in_type.value_range())


@dataclass(frozen=True)
class Region:
    """One parameter memory: ``entries`` rows of ``entry_bits`` bits, ``stride`` words apart."""

    index: int
    layer: int  # 1-based
    name: str  # "weights", "threshold", "affine" or "pixel"
    entries: int
    entry_bits: int
    fields: tuple  # ((field name, bits, signed), ...) per lane (weights: one element)
    lanes: int
    fold: LayerFold

    @property
    def words(self) -> int:
        """32-bit words per entry."""
        return -(-self.entry_bits // 32)

    @property
    def stride(self) -> int:
        return 1 << max(0, (self.words - 1).bit_length())

    @property
    def base(self) -> int:
        return self.index << REGION_SHIFT

    def as_dict(self) -> dict:
        return {"index": self.index, "layer": self.layer, "name": self.name,
                "base": self.base, "entries": self.entries, "entry_bits": self.entry_bits,
                "words": self.words, "stride": self.stride,
                "fields": [list(f) for f in self.fields], "lanes": self.lanes}


def regions(model: Model, fold=None) -> list[Region]:
    """The parameter memories of ``model`` built with ``fold``, in address order."""
    folds = given_fold(model, fold)
    types = model.tensor_types()
    out = []
    for i, (layer, f) in enumerate(zip(model.layers, folds), 1):
        nf, sf = layer.c_out // f.pe, layer.taps // f.simd
        fields = (layer.conv.weight_field(layer),)
        out.append(Region(len(out), i, "weights", nf * sf, f.pe * f.simd * fields[0][1], fields,
                          f.pe * f.simd, f))
        lo, hi = acc_bounds(layer, types[i - 1])
        fields = layer.stage.param_fields(lo, hi, model.input_channels)
        lane_bits = sum(b for _, b, _ in fields)
        out.append(Region(len(out), i, layer.stage.name, layer.c_out // f.out_pe,
                          f.out_pe * lane_bits, fields, f.out_pe, f))
    if len(out) >= 1 << (32 - REGION_SHIFT):
        raise FoldError(f"{len(out)} parameter regions do not fit the address space")
    for r in out:
        if r.entries * r.stride > 1 << REGION_SHIFT:
            raise FoldError(f"layer {r.layer}: {r.name} region needs {r.entries * r.stride} "
                            f"words, more than 2**{REGION_SHIFT}")
    return out


def _region_values(model: Model, region: Region) -> list[np.ndarray]:
    """Per field, an (entries, lanes) int64 array of the values stored in ``region``."""
    layer = model.layers[region.layer - 1]
    if region.name == "weights":
        w = np.asarray(layer.weights, dtype=np.int64).reshape(layer.c_out, layer.taps)
        pe, simd = region.fold.pe, region.fold.simd
        nf, sf = layer.c_out // pe, layer.taps // simd
        # Entry n*sf + s holds w[n*pe + p, s*simd + j] at lane p*simd + j.
        blocks = w.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3)
        return [blocks.reshape(nf * sf, pe * simd)]
    lo, hi = acc_bounds(layer, model.tensor_types()[region.layer - 1])
    values = layer.stage.param_values(lo, hi)
    c = np.arange(layer.c_out).reshape(region.entries, region.lanes)
    return [values[name][c] for name, _, _ in region.fields]


def region_entries(model: Model, region: Region) -> list[int]:
    """The entries of ``region`` for ``model`` as unsigned integers (memory init values)."""
    vals = _region_values(model, region)
    lane_bits = sum(b for _, b, _ in region.fields)
    out = []
    for e in range(region.entries):
        word = 0
        for lane in range(region.lanes):
            off = lane * lane_bits
            for (name, bits, _), v in zip(region.fields, vals):
                word |= (int(v[e, lane]) & ((1 << bits) - 1)) << off
                off += bits
        out.append(word)
    return out


def param_writes(model: Model, fold=None) -> list[tuple[int, np.ndarray]]:
    """``(PARAM_ADDR value, uint32 words)`` chunks that load all of ``model``'s parameters.

    Write PARAM_ADDR, then each word to PARAM_DATA (the address auto-increments). Padding
    words inside an entry's stride are written as 0 so each region is one contiguous run.
    """
    model = model.validate()
    out = []
    for region in regions(model, fold):
        words = np.zeros((region.entries, region.stride), dtype=np.uint32)
        for e, value in enumerate(region_entries(model, region)):
            for k in range(region.words):
                words[e, k] = (value >> (32 * k)) & 0xFFFFFFFF
        out.append((region.base, words.reshape(-1)))
    return out


def shape_id(model: Model) -> int:
    """The SHAPE register value: the first 32 bits of ``model.shape_hash()``."""
    return int(model.shape_hash()[:8], 16)


def stream_bits(channels: int) -> int:
    """AXI4-Stream ``tdata`` width for ``channels`` 8-bit channels."""
    return max(32, 1 << math.ceil(math.log2(8 * channels)))


def stream_bytes(channels: int) -> int:
    return stream_bits(channels) // 8


def pack_pixels(x: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (H*W, stream_bytes(C)) uint8: one row per beat, tdata bytes LSB first."""
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ValueError(f"pixels must be a uint8 (height, width, channels) array, got {x.dtype} {x.shape}")
    h, w, c = x.shape
    beats = np.zeros((h * w, stream_bytes(c)), dtype=np.uint8)
    beats[:, :c] = x.reshape(h * w, c)
    return beats


def unpack_pixels(beats, height: int, width: int, channels: int) -> np.ndarray:
    """Inverse of :func:`pack_pixels`; ``beats`` is (N, bytes) uint8 or a sequence of ints."""
    if not isinstance(beats, np.ndarray) or beats.ndim != 2:
        n = stream_bytes(channels)
        beats = np.array([list(int(b).to_bytes(n, "little")) for b in beats], dtype=np.uint8)
    if beats.shape[0] != height * width:
        raise ValueError(f"got {beats.shape[0]} beats, a {width}x{height} frame has {height * width}")
    return beats[:, :channels].reshape(height, width, channels).astype(np.uint8)


def beats_to_ints(beats: np.ndarray) -> list[int]:
    """(N, bytes) uint8 beats -> tdata integers (for simulators)."""
    return [int.from_bytes(row.tobytes(), "little") for row in beats]


#: First byte address of the DMA's registers (bit 11 of the 4 KiB AXI4-Lite window).
DMA_BASE = 0x800
#: The open-flow design's DMA registers (:mod:`hw.axi_dma`), as :data:`REGISTERS`.
DMA_REGISTERS = {
    "DMA_SRC": (DMA_BASE + 0x00, "rw", "physical address of the input frame "
                                       "(multiple of DMA_ALIGN)"),
    "DMA_SRC_BYTES": (DMA_BASE + 0x04, "rw", "bytes to read: pixels * stream_bytes(input "
                                             "channels)"),
    "DMA_DST": (DMA_BASE + 0x08, "rw", "physical address of the output frame "
                                       "(multiple of DMA_ALIGN)"),
    "DMA_DST_BYTES": (DMA_BASE + 0x0C, "rw", "bytes to write: pixels * stream_bytes(output "
                                             "channels)"),
    "DMA_CONTROL": (DMA_BASE + 0x10, "w", "bit 0 start read, bit 1 start write, bit 2 abort "
                                          "both, bit 3 clear error bits (pulses)"),
    "DMA_STATUS": (DMA_BASE + 0x14, "r", "bit 0 read busy, bit 1 write busy, bits 2..6 sticky "
                                         "errors"),
}
#: DMA register name -> byte address.
DMA_REG = {name: spec[0] for name, spec in DMA_REGISTERS.items()}
#: Physical address where the open-flow design's registers appear: the PS7's M_AXI_GP0 window
#: (the 4 KiB register window repeats over GP0's range; the host maps the first).
GP0_BASE = 0x4000_0000
#: Bytes per beat of the DMA's AXI3 bus (S_AXI_HP0 in 64-bit mode).
DMA_BEAT_BYTES = 8
#: Buffer addresses must be multiples of this (one bus beat).
DMA_ALIGN = DMA_BEAT_BYTES

DMA_START_READ = 1 << 0
DMA_START_WRITE = 1 << 1
#: Stop both channels: outstanding bursts finish (writes with no byte enabled), then idle.
DMA_ABORT = 1 << 2
DMA_CLEAR_ERRORS = 1 << 3
DMA_READ_BUSY = 1 << 0
DMA_WRITE_BUSY = 1 << 1
#: A read burst answered SLVERR/DECERR.
DMA_ERR_READ = 1 << 2
#: A write burst answered SLVERR/DECERR.
DMA_ERR_WRITE = 1 << 3
#: A start was refused: that channel busy, an address not a multiple of DMA_ALIGN, or a length
#: that is zero or not whole pixels.
DMA_ERR_START = 1 << 4
#: The output frame ended (TLAST) before DMA_DST_BYTES were written.
DMA_ERR_SHORT = 1 << 5
#: DMA_DST_BYTES were written before the output frame's TLAST: its rest was dropped.
DMA_ERR_LONG = 1 << 6
DMA_ERRORS = DMA_ERR_READ | DMA_ERR_WRITE | DMA_ERR_START | DMA_ERR_SHORT | DMA_ERR_LONG


def dma_bytes(pixels: int, channels: int) -> int:
    """DDR bytes of a frame of ``pixels`` pixels of ``channels`` channels (the DMA lengths)."""
    return pixels * stream_bytes(channels)


def register_map() -> dict:
    """The register map as JSON-ready data (for the manifest)."""
    return {
        "registers": {n: {"address": a, "access": acc, "doc": d}
                      for n, (a, acc, d) in REGISTERS.items()},
        "dma_registers": {n: {"address": a, "access": acc, "doc": d}
                          for n, (a, acc, d) in DMA_REGISTERS.items()},
        "id": ID_VALUE,
        "control": {"soft_reset": CONTROL_SOFT_RESET, "clear_errors": CONTROL_CLEAR_ERRORS},
        "status": {"busy": STATUS_BUSY, "err_tlast_early": STATUS_ERR_TLAST_EARLY,
                   "err_tlast_late": STATUS_ERR_TLAST_LATE, "err_param_addr": STATUS_ERR_PARAM_ADDR,
                   "err_frame_size": STATUS_ERR_FRAME_SIZE},
        "region_shift": REGION_SHIFT,
        "max_height": MAX_HEIGHT,
    }

