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

Costs: per layer and block (window, PE array, weight memory, output stage, streams, residual
FIFO), structural counts (:func:`block_features`) times per-family LUT and FF costs fitted to
syntheses (:data:`COSTS`, ``python -m bench.cost_model``: within 10 % of the recorded shapes);
estimates for choosing a fold and a network, not synthesis results (the build reports give
those).
"""

from __future__ import annotations

import math

import numpy as np

from spec import arith
from spec.model import Model

from . import config, regmap
from .latency import MVU_LATENCY, SLICE_LATENCY, STAGE_LATENCY

__all__ = ["layer_ii", "grouped_window", "pixels_per_clock", "frame_cycles", "estimate_cost", "choose_fold",
           "fold_for_rate", "fold_within", "report", "delay_depth", "memories", "block_rams", "dsp_allocation",
           "hard_multipliers", "block_features", "block_costs", "FIFO_SLACK", "ESTIMATE_KEYS", "COSTS"]

#: Beats a layer may hold beyond its line buffer (window, PE array, output stage, gather and
#: two or three slices hold about 15); residual FIFOs add this per layer spanned so the fork feeding
#: them never waits on its own delayed partner. Twice the count, for margin: 32 beats cost
#: little next to a row.
FIFO_SLACK = 32

#: Per device family (``accel.boards.Board.family``), block and structural count of
#: :func:`block_features`: ``(LUT, FF)`` per unit, as ``hw.build`` counts them (ECP5 LUT4 with
#: CCU2C and LUT RAM as two; Xilinx LUT6 with LUT RAM by its LUTs). Least squares over the
#: blocks of native-Yosys 0.66 syntheses (``hw.build``'s scripts, hierarchy kept) of the
#: shapes in ``bench/results/cost_model_synth.json``: ``python -m bench.cost_model`` refits
#: them and prints the model against every recorded shape. Units no recorded shape has are
#: set by hand and kept by the fit: ``act_lanes`` (ECP5: ``python -m bench.stage_cost``, +242
#: LUT4 per lane), ``booth_bits`` (ECP5: ``python -m bench.product_cost``, 155 LUT4 for an
#: 8x6-bit Booth product and its share of the adder tree, 3.2 per bit pair), each on Xilinx
#: the ECP5 figure times the LUT6/LUT4 ratio of the output stages of ``binary16``;
#: ``compare_bits``
#: (a threshold's comparison, a LUT per bit; the shipped models have none), ``weight_ff_bits``
#: (weights of an unfolded layer in flip-flops, with a write multiplexer each).
COSTS = {
    "ecp5": {
        "window": {"window": (295, 57), "window_bits": (11, 14), "group_window": (0, 0),
            "group_window_bits": (2.56, 0.0125), "group_window_ram_bits": (2.4, 0.331)},
        "mvu": {"mvu": (0, 17.8), "slice_bits": (0, 2.11), "select_bits": (1.25, 0), "acc_bits":
            (0.533, 2.85), "xnor_lanes": (4.29, 1.97), "mac_bits": (1.86, 1.44), "booth_bits":
            (3.2, 0)},
        "weights": {"weights": (54.6, 0), "weight_bits": (0, 0), "weight_ram_bits": (1.05, 0.5),
            "weight_ff_bits": (1, 1)},
        "stage": {"stage": (19.4, 5.26), "param_ram_bits": (1.29, 0), "pixel_lanes": (281, 141),
            "stage_lanes": (90.5, 127), "residual_lanes": (279, 0), "act_lanes": (242, 0),
            "compare_bits": (1, 0)},
        "streams": {"streams": (26.6, 11), "skid_bits": (1.03, 2), "split_bits": (1.31, 0),
            "gather_bits": (0.042, 2)},
        "residual": {"fifo": (130, 45.2), "fifo_bits": (0.934, 2.99), "fifo_bank_bits": (1.27,
            0.0635)},
        "top": {"top": (3.99, 0)},
    },
    "xc7": {
        "window": {"window": (133, 57), "window_bits": (9.38, 14), "group_window": (0, 0),
            "group_window_bits": (0.596, 0.141), "group_window_ram_bits": (1.57, 0.203)},
        "mvu": {"mvu": (26.6, 38.2), "slice_bits": (0, 0.0377), "select_bits": (0.224, 0.142),
            "acc_bits": (0.78, 1.76), "xnor_lanes": (1.87, 1.48), "mac_bits": (0.747, 0),
            "booth_bits": (1.23, 0)},
        "weights": {"weights": (9.24, 0), "weight_bits": (0.144, 1), "weight_ram_bits": (0.631,
            0), "weight_ff_bits": (1, 1)},
        "stage": {"stage": (10.8, 6.5), "param_ram_bits": (1.23, 0.025), "pixel_lanes": (64.6,
            60.2), "stage_lanes": (0, 59), "residual_lanes": (172, 0), "act_lanes": (93.1, 0),
            "compare_bits": (1, 0)},
        "streams": {"streams": (22.8, 10.6), "skid_bits": (0.997, 2), "split_bits": (0.5,
            0.0118), "gather_bits": (0.0174, 2)},
        "residual": {"fifo": (39.4, 35.5), "fifo_bits": (0.0367, 0.989), "fifo_bank_bits":
            (0.826, 0.0325)},
        "top": {"top": (2.19, 0)},
    },
}

#: Rows of one LUT-RAM primitive (Xilinx RAM32M: 32 rows of 6 bits, deeper memories take
#: RAM64M, 64 rows of 3 bits, for the same LUTs per bit and row; ECP5 TRELLIS_DPR16X4: 16 rows
#: of 4 bits): a memory costs its width per this many rows.
LUTRAM_ROWS = {"ecp5": 16, "xc7": 32}
#: Rows of the deepest block RAM shape a residual FIFO of one channel set fills before a second
#: bank (and a read multiplexer) is needed.
FIFO_BANK_ROWS = 1024

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
#: The keys of :func:`estimate_cost` that count each family's LUTs and flip-flops.
_COST_KEYS = {"ecp5": ("luts", "ffs"), "xc7": ("xc7_luts", "xc7_ffs")}


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
    first_in = ready[0]
    for index, (layer, f) in enumerate(zip(model.layers, folds)):
        if index:
            ready = ready + SLICE_LATENCY  # the layer's input slice
        if layer.kernel == 3:
            nf = layer.c_out // f.pe
            win = _window(ready, height, width, nf if grouped_window(layer, f) else 1)
        else:
            win = ready
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


def _acc_bits(layer, t_in) -> int:
    """Width of the layer's accumulator (``hw.folded_mvu.acc_shape_for``)."""
    lo, hi = regmap.acc_bounds(layer, t_in)
    return max(1, hi.bit_length()) if lo >= 0 else arith.bits_for_range(lo, hi)


def _tensor_bits(t) -> int:
    """Bits of one channel value of a tensor on the streams (pixels: 8)."""
    return 8 if t.kind == "pixel" else t.bits


def block_features(model: Model, fold=None, *, family: str, max_width: int = config.DEFAULT_MAX_WIDTH,
                   dsp=0) -> list[dict[str, dict[str, int]]]:
    """Per layer, the structural counts of each block that :data:`COSTS` prices (``family``:
    ``"ecp5"`` or ``"xc7"``; ``dsp`` as for :func:`estimate_cost`):

    * ``window``: the window generator (3x3 only) and its channel bits; a folded depthwise
      layer's :class:`hw.group_window.GroupWindowGen` apart (LUT RAM instead of registers): its
      column slots (LUT RAM: three rows of ``pe`` channels, per :data:`LUTRAM_ROWS` groups),
      which carry the slice read out of them too;
    * ``mvu``: the PE array without its weights: its sequencer, the slice register and its
      ``ways``-way selection, the accumulator bits (``pe`` times three registers and an adder),
      and the lanes: XNOR-popcount bits, or products with their adder tree (``mac_bits``: lanes
      times product bits) and, for products without a hard multiplier, Booth logic
      (``booth_bits``: ``w_bits`` x input bits each);
    * ``weights``: the weight memory, LUT RAM of its width per :data:`LUTRAM_ROWS` rows and a
      read register, or flip-flops when it has one row;
    * ``stage``: the output stage per ``out_pe`` lane (with a residual, an activation, or a
      threshold's comparison) and its parameter memory;
    * ``streams``: the register slices (accumulators, the window of an unfolded array, and the
      input pixel of every layer but the first), the split's multiplexer and the gather's pixel;
    * ``residual``: the delay FIFO of each residual the stage joins, its output register and the
      read multiplexer of its block RAM banks (its fork's share with it).
    """
    folds = regmap.given_fold(model, fold)
    types = model.tensor_types()
    regions = regmap.regions(model, folds)
    dsp_terms = dsp_allocation(model, folds, dsp)
    rows = LUTRAM_ROWS[family]
    out = []
    for i, (layer, f) in enumerate(zip(model.layers, folds), 1):
        t_in, t_out = types[i - 1], types[i]
        in_bits = 1 if layer.conv.reads_signs else _tensor_bits(t_in)
        acc_bits = _acc_bits(layer, t_in)
        nf, sf = layer.c_out // f.pe, layer.taps // f.simd
        lanes, steps = f.pe * f.simd, nf * sf
        grouped = grouped_window(layer, f)
        window = {}
        if layer.kernel == 3:
            key = "group_window" if grouped else "window"
            window = {key: 1, f"{key}_bits": layer.c_in * in_bits}
            if grouped:  # four LUT-RAM column slots, an entry of three rows per channel group
                window["group_window_ram_bits"] = (4 * 3 * f.pe * in_bits
                                                   * -(-(layer.c_in // f.pe) // rows))
        if layer.depthwise:  # every lane its own channel: nf*sf ways unless the window picks
            slice_bits, ways = lanes * in_bits, 1 if grouped else steps
        else:  # one slice, broadcast to the PEs
            slice_bits, ways = f.simd * in_bits, sf
        mvu = {"mvu": 1, "slice_bits": slice_bits, "select_bits": slice_bits * (ways - 1),
               "acc_bits": f.pe * acc_bits}
        if layer.conv.reads_signs:
            mvu["xnor_lanes"] = lanes
        else:
            mvu["mac_bits"] = lanes * (layer.w_bits + in_bits)
            if t_in.kind != "bit":
                in_dsp = lanes if dsp_terms[i - 1] is None else dsp_terms[i - 1]
                mvu["booth_bits"] = (lanes - in_dsp) * layer.w_bits * in_bits
        w_region, s_region = regions[2 * i - 2], regions[2 * i - 1]
        if steps == 1:
            weights = {"weight_ff_bits": w_region.entry_bits}
        else:
            weights = {"weights": 1, "weight_bits": w_region.entry_bits,
                       "weight_ram_bits": w_region.entry_bits * -(-steps // rows)}
        joins = layer.stage.joins()
        stage = {"stage": 1, "param_ram_bits": s_region.entry_bits * -(-s_region.entries // rows)}
        if layer.stage.multiplies:  # the pixel stage: rounding, the global residual, a clamp
            stage["pixel_lanes" if t_out.kind == "pixel" else "stage_lanes"] = f.out_pe
            stage["residual_lanes"] = f.out_pe * len(joins) if t_out.kind != "pixel" else 0
            if getattr(layer.stage, "act", None) is not None:
                stage["act_lanes"] = f.out_pe
        else:
            stage["compare_bits"] = f.out_pe * acc_bits
        # The slices behind the PE array, in front of an unfolded one (its whole window), and
        # in front of every layer but the first (its input pixel, after the sign bits).
        skid = (f.pe * acc_bits + (layer.kernel ** 2 * layer.c_in * in_bits if steps == 1 else 0)
                + (layer.c_in * in_bits if i > 1 else 0))
        streams = {"streams": 1, "skid_bits": skid,
                   "split_bits": f.out_pe * acc_bits * (f.pe // f.out_pe - 1),
                   "gather_bits": layer.c_out * _tensor_bits(t_out)}
        residual = {}
        for j in joins:
            width = types[j].channels * _tensor_bits(types[j])
            banks = -(-delay_depth(i - j, max_width) // FIFO_BANK_ROWS)
            residual["fifo"] = residual.get("fifo", 0) + 1
            residual["fifo_bits"] = residual.get("fifo_bits", 0) + width
            residual["fifo_bank_bits"] = residual.get("fifo_bank_bits", 0) + width * (banks - 1)
        out.append({"window": window, "mvu": mvu, "weights": weights, "stage": stage,
                    "streams": streams, "residual": residual})
    return out


def block_costs(model: Model, fold=None, *, family: str, max_width: int = config.DEFAULT_MAX_WIDTH,
                dsp=0) -> list[dict[str, dict[str, float]]]:
    """Per layer and block, ``{"LUT": .., "FF": ..}`` on ``family``: :func:`block_features`
    priced by :data:`COSTS`."""
    costs = COSTS[family]
    out = []
    for blocks in block_features(model, fold, family=family, max_width=max_width, dsp=dsp):
        layer = {}
        for block, counts in blocks.items():
            unit = costs[block]
            layer[block] = {res: sum(n * unit[k][r] for k, n in counts.items())
                            for r, res in enumerate(("LUT", "FF"))}
        out.append(layer)
    return out


def estimate_cost(model: Model, fold=None, *, max_width: int = config.DEFAULT_MAX_WIDTH,
                  dsp=0) -> dict:
    """Resource estimate: ECP5 LUT4s and flip-flops (``luts``, ``ffs``), Xilinx LUT6s and
    flip-flops (``xc7_luts``, ``xc7_ffs``): :func:`block_costs` summed, plus the design's
    glue (``top``); hard multipliers of the output stages (``mults``), products of the fixed
    convs (``conv_mults``), pixel-path RAM bits and the block RAMs they take on an ECP5
    (``ecp5_ebr``) and a Zynq-7000 (``xc7_bram36``).

    ``dsp``: the build's DSP budget (:func:`dsp_allocation`; ``hw.build`` passes the board's):
    the conv products beyond it are Booth logic in LUTs; the default 0 counts every product in
    LUTs (the most a build without hard multipliers pays), ``None`` none (every product a hard
    multiplier, as :class:`hw.pipeline.Pipeline` builds without a budget)."""
    folds = regmap.given_fold(model, fold)
    types = model.tensor_types()
    per_family = {family: block_costs(model, folds, family=family, max_width=max_width, dsp=dsp)
                  for family in COSTS}
    totals = {family: {res: COSTS[family]["top"]["top"][r] for r, res in enumerate(("LUT", "FF"))}
              for family in COSTS}
    mults = conv_mults = 0
    per_layer = []
    for i, (layer, f) in enumerate(zip(model.layers, folds), 1):
        t_in = types[i - 1]
        m_out = f.out_pe * max(1, math.ceil(_acc_bits(layer, t_in) / 18)) if layer.stage.multiplies else 0
        mults += m_out
        c_mults = f.pe * f.simd if layer.conv.multiplies and t_in.kind != "bit" else 0
        conv_mults += c_mults
        entry = {"layer": i, "ii": layer_ii(layer, f)}
        for family, (lut_key, ff_key) in _COST_KEYS.items():
            blocks = per_family[family][i - 1].values()
            for key, res in ((lut_key, "LUT"), (ff_key, "FF")):
                entry[key] = round(sum(b[res] for b in blocks))
                totals[family][res] += entry[key]
        wbits = layer.c_out * layer.taps * layer.conv.weight_bits(layer)
        per_layer.append({**entry, "mults": m_out, "conv_mults": c_mults, "weight_bits": wbits})
    mems = memories(model, max_width=max_width)
    ram_bits = sum(mem["width"] * mem["depth"] for mem in mems)
    brams = {kind: sum(block_rams(mem["width"], mem["depth"], kind) for mem in mems)
             for kind in BRAM_SHAPES}
    keys = {key: round(totals[family][res]) for family, pair in _COST_KEYS.items()
            for key, res in zip(pair, ("LUT", "FF"))}
    return {**keys, "mults": mults, "conv_mults": conv_mults, "ram_bits": ram_bits, **brams,
            "layers": per_layer}


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
