"""What one binary layer of the shipped denoiser costs per XNOR lane, on the ECP5 and the Zynq.

``python -m bench.density [--channels 40,64] [--boards ulx3s-85f,pynq-z2] [--max-width 320]
[--tools T] [-o FILE]``

Synthesizes :class:`hw.pipeline.Pipeline` of a three-layer model cut from
``models/denoise.gamir``: its 1x1 head, one binary 3x3 residual layer of ``channels`` channels
(sign bits, window, PE array, output stage with the residual of its input, gather, slices)
and its 1x1 tail, folded as the shipped denoiser is on that board (``--fold auto --fps 10``:
ii 40 on the Zynq; ``--fold ii:30`` on the ECP5; the head and tail get the same interval).
The synthesis scripts are :mod:`hw.build`'s (``synth_ecp5`` / ``synth_xilinx`` with
``-noflatten`` hierarchy and classic-ABC LUT mapping), so every block of the layer stays a
module and Yosys' per-module statistics give the split; the head and tail are left out of
every figure. Prints, per board and width, LUT (LUT4 or LUT6, as :mod:`hw.build` counts
them: ECP5 CCU2C and LUT RAM as 2 LUT4, Xilinx LUT RAM by its LUTs), FF, carry and MUX cells
and LUT RAM per XNOR lane and per layer, the binary GOPS per kLUT at the board's clock (an
XNOR and an add per lane and cycle: ``2 * lanes * clock``), and the layer split by block.
Writes the same as JSON to ``-o`` (default ``bench/results/local/density.json``, not tracked).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import spec
from bench import local_result, write_result
from accel import perf, regmap
from hw import build
from accel.boards import get_board
from spec.random_model import random_layer_params

__all__ = ["layer_model", "synth_modules", "layer_split", "measure", "BLOCKS", "main"]

#: Per board: the shipped model whose layers the benchmark cuts, the cycles per pixel of the
#: shipped build and its clock in MHz (docs/builds.md: the Zynq's ``--fold auto --fps 10`` at
#: the PYNQ's 100 MHz, the ECP5's ``--fold ii:30 --clock-mhz 75``).
SHIPPED = {"pynq-z2": ("models/denoise.gamir", 40, 100.0),
           "ulx3s-85f": ("models/denoise_ecp5.gamir", 30, 75.0)}

#: The layer's blocks, by the names :class:`hw.pipeline.Pipeline` gives their submodules
#: (the ``lK_`` prefix dropped; the residual's fork and delay FIFO are the previous tensor's).
BLOCKS = {
    "window": ("window", "sign"),
    "weights": ("mvu.weights",),
    "pe_array": ("mvu",),  # sequencer, slice mux, XNOR, popcounts, accumulators, registers
    "stage": ("stage",),
    "streams": ("acc_slice", "split", "gather", "in_slice", "win_slice"),
    "residual_fifo": ("fork", "delay"),
}

#: Cell types per family: carry, MUX (wide-function muxes) and LUT RAM cells.
_KINDS = {
    "ecp5": {"carry": ("CCU2C",), "mux": ("PFUMX", "L6MUX21"), "lutram": ("TRELLIS_DPR16X4",)},
    "xc7": {"carry": ("CARRY4",), "mux": ("MUXF7", "MUXF8"),
            "lutram": ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM32X1S",
                       "RAM64X1S", "RAM128X1S", "SRL16E", "SRLC32E")},
}


def layer_model(base: spec.Model, channels: int, seed: int = 0, *, depthwise: bool = False,
                end_kernel: int = 1) -> spec.Model:
    """``base``'s 1x1 head, its first binary layer and its last layer (a 1x1 tail), resized to
    ``channels`` and given random parameters in the same formats; the binary layer adds its
    input as the shipped body's residual does. ``depthwise``: ``base``'s first and last 3x3
    depthwise layers too, after the head and before the tail (the shipped denoiser's ends);
    ``end_kernel`` 3: the head and tail as dense 3x3 convolutions."""
    rng = np.random.default_rng(seed)
    head = base.layers[0]
    body = next(layer for layer in base.layers if layer.kind == "binary")
    tail = base.layers[-1]
    if head.kernel != 1 or tail.kernel != 1 or body.stage.residual is None:
        raise ValueError(f"{base.name}: expected a 1x1 head, a residual binary layer and a "
                         f"1x1 tail")
    dw = [layer for layer in base.layers if layer.depthwise and layer.kernel == 3]
    if depthwise and not dw:
        raise ValueError(f"{base.name}: expected 3x3 depthwise layers")
    ends = [dataclasses.replace(layer, c_in=channels, c_out=channels, groups=channels)
            for layer in (dw[0], dw[-1])] if depthwise else []
    first, last = ends[:1], ends[1:]
    head = dataclasses.replace(head, kernel=end_kernel)
    tail = dataclasses.replace(tail, kernel=end_kernel)
    layers = [dataclasses.replace(head, c_out=channels), *first,
              dataclasses.replace(body, c_in=channels, c_out=channels,
                                  stage=dataclasses.replace(body.stage, residual=1 + len(first))),
              *last, dataclasses.replace(tail, c_in=channels)]
    lo, hi = 0, spec.arith.PIXEL_MAX
    for i, layer in enumerate(layers):
        layers[i] = layer = random_layer_params(rng, layer, lo, hi)
        lo, hi = layer.out_type().value_range()
    ends = "depthwise-" if depthwise else "dense-" if end_kernel == 3 else ""
    name = f"{base.name}-{ends}binary{channels}"
    return dataclasses.replace(base, layers=layers, name=name).validate()


def synth_modules(family: str, verilog: str, top: str, env: dict) -> dict[str, dict]:
    """Yosys' cells per module of ``verilog`` after :mod:`hw.build`'s synthesis script for
    ``family`` (hierarchy kept), each module's own cells (submodule instances are cells named
    after the module, as the module is named here: ``layer.l2_mvu``)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "top.v").write_text(verilog)
        (work / "top.ys").write_text(build.synth_script(family, top, ["top.v"], "top.stat.json"))
        proc = subprocess.run([env["YOSYS"], "-q", "-l", "top.log", "top.ys"], cwd=work, env=env,
                              capture_output=True, text=True)
        if proc.returncode:
            tail = "\n".join((work / "top.log").read_text(errors="replace").splitlines()[-10:])
            raise build.BuildError(f"yosys failed (exit {proc.returncode}):\n{tail}")
        stats = json.loads((work / "top.stat.json").read_text())
    # Module names without Yosys' leading backslash, as the cell types of their instances.
    return {name.lstrip("\\"): mod["num_cells_by_type"]
            for name, mod in stats["modules"].items()}


def _totals(modules: dict[str, dict]) -> dict[str, dict]:
    """Each module's cells with its submodules' (recursively), by cell type."""
    done = {}

    def total(name):
        if name not in done:
            out = {}
            for cell, n in modules[name].items():
                sub = total(cell) if cell in modules else {cell: 1}
                for k, v in sub.items():
                    out[k] = out.get(k, 0) + n * v
            done[name] = out
        return done[name]

    for name in modules:
        total(name)
    return done


def layer_split(family: str, modules: dict[str, dict], layer: int) -> dict[str, dict]:
    """The cells of layer ``layer``'s blocks (:data:`BLOCKS`), each block's own: a parent's
    figure leaves out the submodules that are blocks of their own."""
    totals = _totals(modules)
    # Module names are the Pipeline's submodule paths: ``TOP.l2_mvu``, ``TOP.l2_mvu.weights``.
    prefix = f"l{layer}_"
    owners = {}
    for name in modules:
        path = name.partition(".")[2]
        for block, starts in BLOCKS.items():
            for start in starts:
                if block == "residual_fifo":
                    hit = path in (f"fork{layer - 1}", f"delay{layer - 1}_{layer}")
                else:
                    hit = path == prefix + start
                if hit:
                    owners[name] = block
    split = {}
    for name, block in owners.items():
        cells = dict(totals[name])
        for sub in modules[name]:  # a sub-block counts for itself
            if sub in owners:
                for k, v in totals[sub].items():
                    cells[k] -= modules[name][sub] * v
        entry = split.setdefault(block, {"cells": {}, "modules": {}})
        for k, v in cells.items():
            entry["cells"][k] = entry["cells"].get(k, 0) + v
        used = build.resources_from_cells(family, cells)
        entry["modules"][name.partition(".")[2]] = {"LUT": used["LUT"],
                                                                   "FF": used["FF"]}
    return {block: {**_resources(family, e["cells"]), "modules": e["modules"]}
            for block, e in split.items()}


def _resources(family: str, cells: dict) -> dict:
    used = build.resources_from_cells(family, cells)
    out = {"LUT": used["LUT"], "FF": used["FF"], "BRAM": used["BRAM"], "DSP": used["DSP"]}
    for kind, types in _KINDS[family].items():
        out[kind] = sum(cells.get(t, 0) for t in types)
    out["cells"] = {k: v for k, v in sorted(cells.items()) if v}
    return out


def with_pe(layer, ii: int, pe: int) -> regmap.LayerFold:
    """The fold of ``layer`` with ``pe`` PEs and the fewest ``simd`` (and ``out_pe``)
    within ``ii`` cycles per pixel: the same cycles as the shipped fold, another PE array shape."""
    simd = min((d for d in range(1, layer.taps + 1) if layer.taps % d == 0
                and (layer.c_out // pe) * (layer.taps // d) <= ii), default=None)
    if layer.c_out % pe or simd is None:
        raise ValueError(f"--pe {pe}: {layer.c_out} channels at {ii} cycles per pixel have no "
                         f"such fold")
    out_pe = min(d for d in range(1, pe + 1) if pe % d == 0 and layer.c_out // d <= ii)
    return regmap.LayerFold(pe, simd, out_pe)


def measure(board_name: str, channels: int, *, max_width: int, env: dict,
            pe: int | None = None) -> dict:
    """One board and width: the layer's resources, per block and per XNOR lane; ``pe`` other
    than the shipped fold's (:func:`with_pe`)."""
    from amaranth.back import verilog

    from hw.pipeline import Pipeline

    board = get_board(board_name)
    path, ii, clock_mhz = SHIPPED[board_name]
    model = layer_model(spec.load(path), channels)
    fold = perf.fold_within(model, ii)
    if pe is not None:
        fold[1] = with_pe(model.layers[1], ii, pe)
    f = fold[1]
    layer = model.layers[1]
    lanes = f.pe * f.simd
    dut = Pipeline(model, max_width=max_width, fold=fold, dsp=board.dsp_budget,
                   lut_inputs=board.lut_inputs)
    modules = synth_modules(board.family, verilog.convert(dut, name="layer", emit_src=False),
                            "layer", env)
    split = layer_split(board.family, modules, 2)
    total = {k: sum(b[k] for b in split.values()) for k in ("LUT", "FF", "BRAM", "DSP", "carry",
                                                             "mux", "lutram")}
    gops = 2 * lanes * clock_mhz / 1e3
    return {"board": board_name, "family": board.family, "channels": channels,
            "fold": {"pe": f.pe, "simd": f.simd, "out_pe": f.out_pe},
            "cycles_per_pixel": perf.layer_ii(layer, f), "lanes": lanes, "max_width": max_width,
            "clock_mhz": clock_mhz, "layer": total,
            "per_lane": {k: round(v / lanes, 3) for k, v in total.items()},
            "gops": gops, "gops_per_klut": round(gops / (total["LUT"] / 1000), 2),
            "blocks": split}


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.density", description=__doc__.splitlines()[0])
    ap.add_argument("--channels", default="40,64",
                    help="comma-separated widths of the binary layer (the shipped one: 40)")
    ap.add_argument("--boards", default="ulx3s-85f,pynq-z2",
                    help=f"comma-separated boards, of {', '.join(SHIPPED)}")
    ap.add_argument("--max-width", type=cli.positive_int, default=320,
                    help="line-buffer width (the shipped builds': 320)")
    ap.add_argument("--tools", choices=build.TOOL_CHOICES, default="auto",
                    help="native or YoWASP Yosys, as python -m hw.build takes it")
    ap.add_argument("--pe", type=cli.positive_int, default=None,
                    help="binary layer's PE count (default: the shipped fold's); simd as small as"
                         " the same cycles per pixel allow")
    ap.add_argument("-o", "--out", type=Path, default=local_result("density.json"),
                    help="results JSON to write (default: bench/results/local/density.json)")
    a = ap.parse_args(argv)
    try:
        widths = [int(c) for c in a.channels.split(",")]
    except ValueError:
        ap.error(f"--channels {a.channels!r}: give whole numbers, e.g. 40,64")
    boards = a.boards.split(",")
    for b in boards:
        if b not in SHIPPED:
            ap.error(f"--boards: {b!r} is not one of {', '.join(SHIPPED)}")
    rows = []
    for b in boards:
        env = build.tool_env(get_board(b).family, a.tools)
        version = build.tool_versions(get_board(b).family, env)["YOSYS"]
        for c in widths:
            r = measure(b, c, max_width=a.max_width, env=env, pe=a.pe)
            r["yosys"] = version
            rows.append(r)
            print(format_row(r), flush=True)
    write_result(rows, a.out, indent=1)
    print()
    print(table(rows))
    return 0


def format_row(r: dict) -> str:
    """One line per measurement, then one per block."""
    lut = "LUT4" if r["family"] == "ecp5" else "LUT6"
    t, p = r["layer"], r["per_lane"]
    lines = [f"{r['board']} {r['channels']} ch, pe={r['fold']['pe']} simd={r['fold']['simd']}, "
             f"{r['cycles_per_pixel']} cycles/pixel, {r['lanes']} lanes: {t['LUT']:g} {lut} "
             f"({p['LUT']:.2f}/lane), {t['FF']:g} FF ({p['FF']:.2f}/lane), carry {t['carry']}, "
             f"mux {t['mux']}, LUT RAM {t['lutram']}, BRAM {t['BRAM']:g}; "
             f"{r['gops_per_klut']:.1f} GOPS/kLUT at {r['clock_mhz']:g} MHz"]
    for block, b in sorted(r["blocks"].items(), key=lambda kv: list(BLOCKS).index(kv[0])):
        lines.append(f"  {block:14} {b['LUT']:>7g} {lut} {b['FF']:>6g} FF  carry {b['carry']:>4} "
                     f"mux {b['mux']:>4} LUT RAM {b['lutram']:>4} BRAM {b['BRAM']:g}")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    """The docs/hw.md table: one row per board and width."""
    out = ["| board | channels | fold | cycles/pixel | lanes | LUT | per lane | FF | per lane "
           "| carry | MUX | LUT RAM | GOPS/kLUT | " + " | ".join(BLOCKS) + " |",
           "|" + " --- |" * (13 + len(BLOCKS))]
    for r in rows:
        t, p, b = r["layer"], r["per_lane"], r["blocks"]
        blocks = " | ".join(f"{b[k]['LUT']:g} / {b[k]['FF']:g}" if k in b else "-" for k in BLOCKS)
        fold = f"pe={r['fold']['pe']} simd={r['fold']['simd']}"
        out.append(f"| {r['board']} | {r['channels']} | {fold} "
                   f"| {r['cycles_per_pixel']} | {r['lanes']} | {t['LUT']:g} | {p['LUT']:.2f} "
                   f"| {t['FF']:g} | {p['FF']:.2f} | {t['carry']} | {t['mux']} | {t['lutram']} "
                   f"| {r['gops_per_klut']:.1f} | {blocks} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError, build.BuildError)))
