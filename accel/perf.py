"""Analytic performance and cost model of the accelerator, and automatic folding (numpy only).

Throughput: a layer with fold (``pe``, ``simd``, ``out_pe``) accepts a window every
``II = max(nf*sf, c_out/out_pe)`` cycles; the slowest layer sets the pixels per clock.

Cycles per frame: a max-plus recurrence over the pixels of one frame that mirrors the pipeline
stage by stage (every stage: ``start[k] = max(input ready[k], start[k-1] + its interval)``):

* window generator (3x3): the vertical stage steps once per input pixel plus a ``W``-step flush
  row, emitting the column of row ``y-1`` (``nf`` steps per pixel, one per channel group, in a
  folded 3x3 depthwise layer's :class:`hw.group_window.GroupWindowGen`); the horizontal stage steps
  once per column plus one
  flush step, emitting the window one column back (:mod:`hw.window`); one register each;
* PE array: ``nf*sf`` issue steps per window, groups leave :data:`~accel.latency.MVU_LATENCY`
  cycles after their last slice;
* output stage: one ``out_pe`` group per cycle, a register; register slices (after the PE
  array, the gather that ends each layer, and after the window generator of an unfolded PE
  array) add one cycle each.

It assumes unbounded buffers between stages (the real ones are one register), which is exact
when every layer keeps up and close otherwise; tests check it against simulation within 2 %.

Costs are estimates for choosing a fold (LUT4-equivalents, multipliers, RAM bits), not
synthesis results; the build reports give those.
"""

from __future__ import annotations

import math

import numpy as np

from spec.model import Model

from . import config, regmap
from .latency import MVU_LATENCY, SLICE_LATENCY, STAGE_LATENCY

__all__ = ["layer_ii", "grouped_window", "pixels_per_clock", "frame_cycles", "estimate_cost", "choose_fold",
           "fold_for_rate", "fold_within", "report", "delay_depth", "memories", "block_rams", "dsp_allocation",
           "hard_multipliers", "FIFO_SLACK", "ESTIMATE_KEYS"]

#: Beats a layer may hold beyond its line buffer (window, PE array, output stage, gather and
#: two or three slices hold about 15); residual FIFOs add this per layer spanned so the fork feeding
#: them never waits on its own delayed partner. Twice the count, for margin: 32 beats cost
#: little next to a row.
FIFO_SLACK = 32

#: Measured LUTs per unit of the structural count below (datapath lanes, slice muxes, output
#: stages), from hw.build's syntheses of the denoiser (classic-ABC mapping): at 9 cycles per
#: pixel, 4.5x in ECP5 LUT4s (CCU2C and LUT RAM counted as 2; head and tail 5.3x, binary
#: layers 3.7x); at 27 and 39 cycles per pixel 2.0x in Xilinx LUT6s (at 9, where LUTs rather
#: than DSPs take most head/tail products, 2.7x).
LUT4_PER_UNIT = 4.5
LUT6_PER_UNIT = 2.0
#: Structural units of the affine stage's activation per lane (``act``: sign test, 3-bit
#: barrel shift, increment, offset add): ``python -m bench.stage_cost`` measured +242 ECP5
#: LUT4 per lane on the denoiser's body format (27-bit product, 10-bit stream), / 4.5.
ACT_UNITS = 54

#: The widest slice a binary PE's popcount reads per cycle when :func:`fold_within` may choose
#: (its carry-save tree and XNORs take one pipeline stage): a 40-channel layer at 40 or 30
#: cycles per pixel gets ``pe=4`` (``simd`` 90, 120) rather than ``pe=40``.
BINARY_SIMD_MAX = 128

#: Block RAM shapes (depth, width) per primitive: ECP5 EBR (18 Kbit) and Xilinx 7-series
#: RAMB36 (36 Kbit, simple dual port up to 72 bits wide).
BRAM_SHAPES = {
    "ecp5_ebr": [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)],
    "xc7_bram36": [(32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36),
                   (512, 72)],
}
#: The estimate keys of :func:`estimate_cost` that count a device family's LUTs and block RAMs
#: (``accel.boards.Board.family``; iCE40 has no block RAM shape here).
ESTIMATE_KEYS = {"ecp5": ("luts", "ecp5_ebr"), "xc7": ("xc7_luts", "xc7_bram36")}


def delay_depth(span: int, max_width: int) -> int:
    """Depth of the FIFO delaying a tensor by ``span`` layers (residual and global residual)."""
    return span * (max_width + FIFO_SLACK) + FIFO_SLACK


def memories(model: Model, *, max_width: int) -> list[dict]:
    """The pixel-path memories of the generated design: line buffers and delay FIFOs (the
    same for every fold)."""
    types = model.tensor_types()
    out = []
    for i, layer in enumerate(model.layers, 1):
        t = types[i - 1]
        bits = layer.conv.in_bits(t)
        if layer.kernel == 3:
            out.append({"what": f"layer {i} line buffer", "width": 2 * t.channels * bits,
                        "depth": max_width})
        for j in layer.stage.joins():
            rt = types[j]
            what = "global residual delay" if j == 0 else f"layer {i} residual delay"
            out.append({"what": what, "width": rt.channels * rt.bits,
                        "depth": delay_depth(i - j, max_width)})
    return out


def block_rams(width: int, depth: int, kind: str) -> int:
    """Fewest block RAMs of ``kind`` (a key of :data:`BRAM_SHAPES`) holding width x depth."""
    return min(-(-width // w) * -(-depth // d) for d, w in BRAM_SHAPES[kind])


def layer_ii(layer, fold: regmap.LayerFold) -> int:
    """Cycles per pixel of one layer."""
    nf, sf = layer.c_out // fold.pe, layer.taps // fold.simd
    return max(nf * sf, layer.c_out // fold.out_pe)


def pixels_per_clock(model: Model, fold=None) -> float:
    folds = regmap.given_fold(model, fold)
    return 1.0 / max(layer_ii(layer, f) for layer, f in zip(model.layers, folds))


def _serve(ready: np.ndarray, interval: int) -> np.ndarray:
    """Start times of a server taking item k at ``max(ready[k], start[k-1] + interval)``."""
    k = np.arange(len(ready), dtype=np.int64) * interval
    return k + np.maximum.accumulate(ready - k)


def grouped_window(layer, fold: regmap.LayerFold) -> bool:
    """Whether the layer's window generator is :class:`hw.group_window.GroupWindowGen` (a
    folded 3x3 depthwise layer), whose vertical stage takes ``nf`` steps per pixel."""
    return (layer.conv.per_channel and layer.kernel == 3
            and (layer.c_out // fold.pe) * (layer.taps // fold.simd) > 1)


def _window(ready: np.ndarray, h: int, w: int, groups: int = 1) -> np.ndarray:
    """Cycle at which each 3x3 window is valid on the window generator's output; ``groups``:
    vertical steps per pixel (``nf`` for :class:`hw.group_window.GroupWindowGen`)."""
    # Vertical: pixels 0..h*w-1 are the input, then the flush row of w; each takes `groups` steps.
    v_ready = np.concatenate([ready, np.full(w, -(1 << 40), dtype=np.int64)])
    v_step = _serve(v_ready, groups)
    col_ready = v_step[w:] + groups  # column k (raster) leaves with pixel k + w's last step
    # Horizontal: steps 0..h*w-1 take columns, step h*w is the flush; step k emits window k-1.
    h_ready = np.concatenate([col_ready, [-(1 << 40)]])
    h_step = _serve(h_ready, 1)
    return h_step[1:] + 1


def frame_cycles(model: Model, fold=None, *, height: int, width: int) -> int:
    """Predicted CYCLES register value: first input beat to last output beat, inclusive, with
    input offered every cycle and output always ready."""
    folds = regmap.given_fold(model, fold)
    ready = np.arange(height * width, dtype=np.int64)  # input beats offered back to back
    first_in = None
    for layer, f in zip(model.layers, folds):
        if layer.kernel == 3:
            if first_in is None:
                first_in = _serve(ready, 1)[0]
            nf = layer.c_out // f.pe
            win = _window(ready, height, width, nf if grouped_window(layer, f) else 1)
        else:
            win = ready
            if first_in is None:
                first_in = 0
        nf, sf = layer.c_out // f.pe, layer.taps // f.simd
        k = f.pe // f.out_pe
        # First issue step of each window (a register slice in front of unfolded PE arrays).
        start = _serve(win + (SLICE_LATENCY if nf * sf == 1 else 0), nf * sf)
        # Group n of pixel p leaves the PE array after its last slice, then splits into k.
        groups = (start[:, None] + (np.arange(nf)[None, :] + 1) * sf - 1 + MVU_LATENCY
                  + SLICE_LATENCY)
        sub = np.repeat(groups.reshape(-1), k)
        stage = _serve(sub, 1) + STAGE_LATENCY
        groups_per_pixel = nf * k
        last = stage.reshape(-1, groups_per_pixel)[:, -1]
        ready = last + SLICE_LATENCY  # the gather, the layer's output slice
    return int(ready[-1] - first_in + 1)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def estimate_cost(model: Model, fold=None, *, max_width: int = config.DEFAULT_MAX_WIDTH) -> dict:
    """Rough resource estimate: ECP5 LUT4s (``luts``) and Xilinx LUT6s (``xc7_luts``), each a
    structural count times its measured :data:`LUT4_PER_UNIT` / :data:`LUT6_PER_UNIT`, hard
    multipliers of the output stages
    (``mults``), small multipliers of the fixed convs (``conv_mults``, ``w_bits`` x input bits,
    counted in ``luts``), pixel-path RAM bits and the block RAMs they take on an ECP5
    (``ecp5_ebr``) and a Zynq-7000 (``xc7_bram36``), flip-flops. Weight memories are shallow
    (``nf*sf`` rows) and go to LUT RAM or flip-flops, counted in ``luts`` / ``ffs``."""
    folds = regmap.given_fold(model, fold)
    types = model.tensor_types()
    luts = mults = conv_mults = ram_bits = ffs = 0
    per_layer = []
    for i, (layer, f) in enumerate(zip(model.layers, folds), 1):
        t_in = types[i - 1]
        conv = layer.conv
        in_bits = conv.in_bits(t_in)
        lo, hi = regmap.acc_bounds(layer, t_in)
        acc_bits = max(abs(lo), abs(hi)).bit_length() + 1
        nf, sf = layer.c_out // f.pe, layer.taps // f.simd
        lanes = f.pe * f.simd
        if conv.reads_signs:
            l_mvu = int(1.2 * lanes)  # XNOR folded into the popcount tree's first LUT level
        elif t_in.kind == "bit":
            l_mvu = lanes * (layer.w_bits + 2)  # +/-w then the adder tree
        else:
            l_mvu = lanes * (layer.w_bits * in_bits // 2 + in_bits + layer.w_bits)
        l_mvu += f.pe * acc_bits * 2  # accumulators
        if grouped_window(layer, f):  # each lane element picks one of 4 column slots' rows
            l_sel = int(lanes * in_bits * math.log2(4 * (3 if f.simd < 9 else 1)))
        elif conv.per_channel:  # every lane muxes its own channel: nf*sf ways (hw.depthwise_conv)
            l_sel = int(lanes * in_bits * math.log2(nf * sf))
        else:  # one slice mux, broadcast to the lanes
            l_sel = int(f.simd * in_bits * math.log2(sf))
        if layer.stage.multiplies:
            l_out = f.out_pe * 80  # bias add, rounding, residual, saturation
            if getattr(layer.stage, "act", None) is not None:
                l_out += f.out_pe * ACT_UNITS
            m_out = f.out_pe * max(1, math.ceil(acc_bits / 18))
        else:
            l_out = f.out_pe * acc_bits * 2  # a comparison
            m_out = 0
        wbits = layer.c_out * layer.taps * conv.weight_bits(layer)
        w_ram = wbits if nf * sf > 1 else 0
        w_ff = wbits if nf * sf == 1 else 0
        luts += l_mvu + l_sel + l_out + w_ram // 32
        mults += m_out
        c_mults = lanes if conv.multiplies and t_in.kind != "bit" else 0
        conv_mults += c_mults
        ffs += w_ff + f.pe * acc_bits * 2
        per_layer.append({"layer": i, "ii": layer_ii(layer, f),
                          "luts": round(LUT4_PER_UNIT * (l_mvu + l_sel + l_out)),
                          "mults": m_out, "conv_mults": c_mults, "weight_bits": wbits})
    mems = memories(model, max_width=max_width)
    ram_bits = sum(mem["width"] * mem["depth"] for mem in mems)
    brams = {kind: sum(block_rams(mem["width"], mem["depth"], kind) for mem in mems)
             for kind in BRAM_SHAPES}
    # luts include the conv multipliers built from LUTs; conv_mults counts them so a build can
    # move up to its DSP budget into hard multipliers instead.
    return {"luts": round(LUT4_PER_UNIT * luts), "xc7_luts": round(LUT6_PER_UNIT * luts),
            "mults": mults, "conv_mults": conv_mults, "ram_bits": ram_bits,
            **brams, "ffs": ffs, "layers": per_layer}


def fold_within(model: Model, ii: int) -> list[regmap.LayerFold]:
    """Every layer folded as far as ``ii`` cycles per pixel allows (``--fold ii:N``)."""
    return [_cheapest_layer_fold(layer, ii) for layer in model.layers]


def dsp_allocation(model: Model, folds, dsp) -> list:
    """Per layer, how many conv products may use hard multipliers (``None`` = all).

    ``dsp`` is the device budget. The output stages' ``out_pe`` multipliers (accumulator x
    ``A``, up to 18 bits: one DSP each) are counted first; the rest goes to the fixed convs in
    layer order, the head first. Their remaining products become Booth multipliers in LUTs.
    The generator (``hw.pipeline``) builds what this allocates; ``training.search`` counts a
    design's hard multipliers with it.
    """
    if dsp is None:
        return [None] * len(model.layers)
    if not isinstance(dsp, int) or dsp < 0:
        raise ValueError(f"dsp={dsp!r} must be None or a non-negative integer")
    left = dsp - _stage_multipliers(model, folds)
    out = []
    for layer, f in zip(model.layers, folds):
        n = 0
        if layer.conv.multiplies:
            n = max(0, min(left, f.pe * f.simd))
            left -= n
        out.append(n)
    return out


def _stage_multipliers(model: Model, folds) -> int:
    """Hard multipliers of the output stages: one per ``out_pe`` lane of a multiplying stage."""
    return sum(f.out_pe for layer, f in zip(model.layers, folds) if layer.stage.multiplies)


def hard_multipliers(model: Model, folds, dsp: int) -> tuple[int, int]:
    """``(output stages', all)`` hard multipliers a design built with budget ``dsp`` uses
    (:func:`dsp_allocation`). It fits the budget when the first is within it: conv products
    beyond the budget become LUTs (counted in :func:`estimate_cost`'s LUTs anyway)."""
    stages = _stage_multipliers(model, folds)
    return stages, stages + sum(dsp_allocation(model, folds, dsp))


def _cheapest_layer_fold(layer, ii_max: int) -> regmap.LayerFold:
    """The fold with the fewest lanes (pe*simd) within ``ii_max`` cycles per pixel, and the
    smallest out_pe. Ties: a fixed layer's go to more ``pe`` (a shallower weight memory, no
    partial-output gather); a binary layer's to fewer, as long as ``simd`` stays within
    :data:`BINARY_SIMD_MAX`: every PE has an accumulator, an output register and a place in the
    register slice behind the array, while a wider popcount costs about the same per lane
    (``python -m bench.density``)."""
    best = None
    for pe in _divisors(layer.c_out):
        for simd in _divisors(layer.taps):
            nf, sf = layer.c_out // pe, layer.taps // simd
            if nf * sf > ii_max:
                continue
            if layer.conv.reads_signs:
                key = (pe * simd, simd > BINARY_SIMD_MAX, pe)
            else:
                key = (pe * simd, -pe)
            if best is None or key < best[0]:
                best = (key, pe, simd)
    _, pe, simd = best
    out_pe = min(d for d in _divisors(pe) if layer.c_out // d <= ii_max)
    return regmap.LayerFold(pe, simd, out_pe)


def fold_for_rate(model: Model, *, pixels_per_second: float, clock_hz: float, height: int,
                  width: int) -> tuple[list[regmap.LayerFold], int]:
    """:func:`choose_fold` for a rate: the slowest fold whose predicted frame time (``height x
    width``, fill included) still meets it, and that frame's cycles. ``ValueError`` when even
    full unfolding misses."""
    if not clock_hz:
        raise ValueError("pixels_per_second needs clock_hz")
    budget = clock_hz * height * width / pixels_per_second
    max_ii = max(layer.c_out * layer.taps for layer in model.layers)
    # A frame takes at least height*width*II cycles: start at the largest II that could fit
    # and walk down until the full prediction (fill included) fits. Neighbouring intervals
    # often give the same fold: one that missed is not predicted again.
    missed = None
    for ii in range(min(max_ii, int(budget // (height * width))), 0, -1):
        fold = fold_within(model, ii)
        if fold == missed:
            continue
        cycles = frame_cycles(model, fold, height=height, width=width)
        if cycles <= budget:
            return fold, cycles
        missed = fold
    raise ValueError(f"{pixels_per_second:.3g} pixels/s at {clock_hz:.3g} Hz is out of reach "
                     f"even fully unfolded (1 pixel per clock)")


def choose_fold(model: Model, *, pixels_per_second: float | None = None,
                clock_hz: float | None = None, lut_budget: int | None = None,
                height: int = config.DEFAULT_FRAME[0], width: int = config.DEFAULT_FRAME[1],
                max_width: int | None = None
                ) -> list[regmap.LayerFold]:
    """Fold every layer as much as a target allows.

    With ``pixels_per_second`` and ``clock_hz``: the slowest fold whose predicted frame time
    (``height x width``, fill included) still meets the rate. With ``lut_budget``: the fastest
    fold whose estimated LUTs fit. Raises ``ValueError`` when even full unfolding misses.
    """
    if (pixels_per_second is None) == (lut_budget is None):
        raise ValueError("give either pixels_per_second (with clock_hz) or lut_budget")
    if pixels_per_second is not None:
        return fold_for_rate(model, pixels_per_second=pixels_per_second, clock_hz=clock_hz,
                             height=height, width=width)[0]
    mw = max_width or width

    def cost(ii):
        fold = fold_within(model, ii)
        return estimate_cost(model, fold, max_width=mw)["luts"]

    # LUTs do not fall monotonically with the interval (the cheapest fold of an interval can
    # need wider output stages than a shorter one's), so try every interval some layer can
    # have, fastest first.
    intervals = sorted({(layer.c_out // pe) * (layer.taps // simd) for layer in model.layers
                        for pe in _divisors(layer.c_out) for simd in _divisors(layer.taps)})
    for ii in intervals:
        if cost(ii) <= lut_budget:
            return fold_within(model, ii)
    raise ValueError(f"lut_budget={lut_budget} is too small even for the most folded design")


def report(model: Model, fold=None, *, height: int, width: int,
           clock_hz: float = config.DEFAULT_CLOCK_HZ,
           max_width: int = config.DEFAULT_MAX_WIDTH) -> dict:
    """JSON-ready summary for the manifest and CLIs."""
    folds = regmap.given_fold(model, fold)
    cycles = frame_cycles(model, folds, height=height, width=width)
    return {
        "frame": [height, width],
        "cycles_per_frame": cycles,
        "pixels_per_clock": pixels_per_clock(model, folds),
        "layer_ii": [layer_ii(layer, f) for layer, f in zip(model.layers, folds)],
        "fps_at_clock": clock_hz / cycles,
        "clock_hz": clock_hz,
        "cost_estimate": estimate_cost(model, folds, max_width=max_width),
    }
