"""``accel.perf``'s cost model against synthesis: predicted and synthesized LUT and FF per shape.

``python -m bench.cost_model [--synth] [--boards B,..] [--shapes S,..] [--tools T]
[--measured FILE] [-o FILE]``

A shape is a :class:`hw.pipeline.Pipeline` of a model cut from the board's shipped model
(:data:`bench.density.SHIPPED`) at a fold of ``--fold ii:N``: ``binaryC`` (its 1x1 head, one
binary 3x3 residual layer of ``C`` channels, its 1x1 tail: :func:`bench.density.layer_model`)
at the shipped interval, ``depthwiseC`` (the same with the shipped 3x3 depthwise layers after
the head and before the tail), ``denseC`` (a dense 3x3 head and tail) and ``model`` (the
shipped model itself); an ``-iiN`` suffix folds it to ``N`` cycles per pixel instead. Each is
built as ``hw.build`` builds it for the board (its DSP budget and LUT inputs, ``--max-width
320``); a ``-dspD`` suffix sets the DSP budget to ``D`` (``-dsp0``: every convolution product
in LUTs).

``--synth`` synthesizes the shapes with :mod:`hw.build`'s script (hierarchy kept; the
synthesis of :mod:`bench.density`) and records each one's LUT, FF, block RAM and DSP, in all
and per submodule of the pipeline (two levels), into ``--measured`` (default
``bench/results/cost_model_synth.json``, which is tracked: the tests check the model against
it without Yosys); each shape replaces its own entry as soon as it is done. Without
``--synth`` nothing is synthesized. Then, for every recorded shape, the prediction of
:func:`accel.perf.estimate_cost` against synthesis, and the per-block fit of
:data:`accel.perf.COSTS` (:func:`fit`, least squares over the recorded blocks) that the
constants came from, printed and written to ``-o`` (default
``bench/results/local/cost_model.json``).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import json
import re
import sys
import textwrap
import time
from pathlib import Path

import spec
from accel import perf
from bench import density, local_result, write_result
from hw import build
from accel.boards import get_board

__all__ = ["SHAPES", "shape_model", "synthesize", "compare", "fit", "main"]

MEASURED = Path(__file__).resolve().parent / "results" / "cost_model_synth.json"
MAX_WIDTH = 320
#: The shapes synthesized per board by default (``--shapes``).
SHAPES = ("binary16", "binary32", "binary48", "binary64", "binary40-ii10", "depthwise32",
          "model")
_SHAPE = re.compile(r"^(?:(?P<kind>binary|depthwise|dense)(?P<channels>\d+)|(?P<model>model))"
                    r"(?:-ii(?P<ii>\d+))?(?:-dsp(?P<dsp>\d+))?$")
_ROOT = Path(__file__).resolve().parents[1]


def shape_model(board_name: str, shape: str) -> tuple[spec.Model, list, int]:
    """The model, fold and DSP budget that ``shape`` names on ``board_name`` (see the module
    doc)."""
    m = _SHAPE.match(shape)
    if m is None:
        raise ValueError(f"shape {shape!r}: give binaryC, depthwiseC, denseC or model, each "
                         f"with an optional -iiN and -dspD")
    path, ii, _ = density.SHIPPED[board_name]
    base = spec.load(_ROOT / path)
    if m["model"]:
        model = base
    else:
        model = density.layer_model(base, int(m["channels"]), depthwise=m["kind"] == "depthwise",
                                    end_kernel=3 if m["kind"] == "dense" else 1)
    ii = int(m["ii"] or ii)
    dsp = get_board(board_name).dsp_budget if m["dsp"] is None else int(m["dsp"])
    return model, perf.fold_within(model, ii), dsp


def _module_resources(family: str, modules: dict[str, dict], top: str) -> tuple[dict, dict]:
    """The whole design's resources and those of each submodule path one or two levels down
    (``l3_mvu``, ``l3_mvu.weights``), each with everything below it."""
    totals = density._totals(modules)

    def res(cells):
        r = density._resources(family, cells)
        return {k: r[k] for k in ("LUT", "FF", "BRAM", "DSP", "carry", "mux", "lutram")}

    subs = {}
    for name in modules:
        path = name.partition(".")[2]
        if path and path.count(".") <= 1:
            subs[path] = res(totals[name])
    return res(totals[top]), dict(sorted(subs.items()))


def synthesize(board_name: str, shape: str, env: dict) -> dict:
    """Synthesize one shape (``hw.build``'s script, hierarchy kept): its recorded entry."""
    from amaranth.back import verilog

    from hw.pipeline import Pipeline

    board = get_board(board_name)
    model, fold, dsp = shape_model(board_name, shape)
    t0 = time.monotonic()
    dut = Pipeline(model, max_width=MAX_WIDTH, fold=fold, dsp=dsp,
                   lut_inputs=board.lut_inputs)
    modules = density.synth_modules(board.family, verilog.convert(dut, name="pipe",
                                                                  emit_src=False), "pipe", env)
    total, subs = _module_resources(board.family, modules, "pipe")
    return {"board": board_name, "family": board.family, "shape": shape,
            "max_width": MAX_WIDTH, "fold": [f.as_dict() for f in fold], "dsp": dsp,
            "yosys": build.tool_versions(board.family, env)["YOSYS"],
            "seconds": round(time.monotonic() - t0, 1), "total": total, "modules": subs}


def load_measured(path: Path) -> list[dict]:
    """The recorded syntheses of ``path`` (none when it does not exist yet)."""
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a JSON file of syntheses ({e})") from None


def _record(path: Path, entry: dict) -> None:
    """Replace ``entry``'s shape on its board in ``path`` (kept in board, shape order)."""
    rows = [r for r in load_measured(path)
            if (r["board"], r["shape"]) != (entry["board"], entry["shape"])] + [entry]
    rows.sort(key=lambda r: (r["board"], r["shape"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(path)


#: The submodules of layer ``k`` in each block of :func:`accel.perf.block_features`
#: (``mvu`` less its weights; the residual's FIFOs by their readers, below).
_BLOCK_MODULES = {"window": ("window", "sign"), "mvu": ("mvu",), "weights": ("mvu.weights",),
                  "stage": ("stage",), "streams": ("in_slice", "acc_slice", "split", "gather", "win_slice")}
_RESOURCES = ("LUT", "FF")


def measured_blocks(entry: dict, model: spec.Model) -> tuple[list[dict], dict]:
    """A recorded synthesis by layer and block (``{block: {"LUT": .., "FF": ..}}`` per layer),
    and the top level's own glue: the resources of no layer's submodule."""
    mods = entry["modules"]

    def get(path):
        return mods.get(path, {"LUT": 0, "FF": 0})

    readers = {}
    for k, layer in enumerate(model.layers, 1):
        for j in layer.stage.joins():
            readers.setdefault(j, []).append(k)
    layers = []
    for k, layer in enumerate(model.layers, 1):
        blocks = {}
        for block, names in _BLOCK_MODULES.items():
            blocks[block] = {r: sum(get(f"l{k}_{n}")[r] for n in names) for r in _RESOURCES}
        for r in _RESOURCES:
            blocks["mvu"][r] -= get(f"l{k}_mvu.weights")[r]
        blocks["residual"] = {r: sum(get(f"delay{j}_{k}")[r] + get(f"fork{j}")[r] / len(readers[j])
                                     for j in layer.stage.joins()) for r in _RESOURCES}
        layers.append(blocks)
    top = {r: entry["total"][r] - sum(v[r] for path, v in mods.items() if "." not in path)
           for r in _RESOURCES}
    return layers, top


def _rows(measured: list[dict], family: str):
    """Per block: the feature counts and the measured resources of every recorded layer of
    ``family``."""
    out = {}
    for entry in measured:
        if entry["family"] != family:
            continue
        model, fold, dsp = _checked_shape(entry)
        feats = perf.block_features(model, fold, family=family, max_width=entry["max_width"],
                                    dsp=dsp)
        layers, top = measured_blocks(entry, model)
        for f_layer, m_layer in zip(feats, layers):
            for block, counts in f_layer.items():
                out.setdefault(block, []).append((counts, m_layer[block]))
        out.setdefault("top", []).append(({"top": 1}, top))
    return out


def _checked_shape(entry: dict):
    """The model, fold and DSP budget of a recorded shape, which must be the fold it was
    synthesized at."""
    model, fold, dsp = shape_model(entry["board"], entry["shape"])
    if [f.as_dict() for f in fold] != entry["fold"]:
        raise ValueError(f"{entry['board']} {entry['shape']}: the fold is no longer the one "
                         f"synthesized (synthesize it again with --synth)")
    return model, fold, dsp


def fit(measured: list[dict]) -> dict:
    """:data:`accel.perf.COSTS` fitted to ``measured``: per family, block and resource,
    non-negative least squares of the blocks' resources on their feature counts, each layer
    weighted by one over the square root of its size (small blocks count, big ones more).
    Features no recorded shape has keep their :data:`~accel.perf.COSTS` values."""
    import numpy as np
    from scipy.optimize import nnls

    out = {}
    for family, blocks in perf.COSTS.items():
        rows = _rows(measured, family)
        fam = out[family] = {}
        for block, units in blocks.items():
            fam[block] = dict(units)
            data = rows.get(block, [])
            names = [k for k in units if any(c.get(k) for c, _ in data)]
            if not names:
                continue
            a = np.array([[c.get(k, 0) for k in names] for c, _ in data], dtype=float)
            for r, res in enumerate(_RESOURCES):
                y = np.array([m[res] for _, m in data], dtype=float)
                w = 1 / np.sqrt(np.maximum(y, 0) + 20)
                coef, _ = nnls(a * w[:, None], y * w)
                for k, c in zip(names, coef):
                    unit = list(fam[block][k])
                    unit[r] = float(f"{c:.3g}") if c >= 1e-3 else 0
                    fam[block][k] = tuple(unit)
    return out


def compare(measured: list[dict]) -> list[dict]:
    """Each recorded shape's synthesized LUT, FF, block RAM and DSP against
    :func:`accel.perf.estimate_cost` (the board's DSP budget, the recorded line width)."""
    out = []
    for entry in measured:
        model, fold, dsp_budget = _checked_shape(entry)
        est = perf.estimate_cost(model, fold, max_width=entry["max_width"], dsp=dsp_budget)
        lut_key, ff_key = perf._COST_KEYS[entry["family"]]
        bram_key = perf.ESTIMATE_KEYS[entry["family"]][1]
        dsp = perf.hard_multipliers(model, fold, dsp_budget)[1]
        predicted = {"LUT": est[lut_key], "FF": est[ff_key], "BRAM": est[bram_key], "DSP": dsp}
        synth = {k: entry["total"][k] for k in predicted}
        out.append({"board": entry["board"], "family": entry["family"], "shape": entry["shape"],
                    "fold": entry["fold"], "synthesized": synth, "predicted": predicted,
                    "error_pct": {k: round(100 * (predicted[k] - synth[k]) / synth[k], 1)
                                  for k in predicted if synth[k]}})
    return out


def format_costs(costs: dict) -> str:
    """``costs`` as the Python literal of :data:`accel.perf.COSTS`."""
    lines = ["{"]
    for family, blocks in costs.items():
        lines.append(f'    "{family}": {{')
        for block, units in blocks.items():
            items = ", ".join(f'"{k}": ({u[0]:g}, {u[1]:g})' for k, u in units.items())
            lines.append(textwrap.fill(f'"{block}": {{{items}}},', 96, initial_indent=" " * 8,
                                       subsequent_indent=" " * 12, break_on_hyphens=False))
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    """The docs/hw.md table: predicted against synthesized, one row per shape."""
    out = ["| board | shape | LUT synthesized | predicted | error | FF synthesized | predicted "
           "| error | BRAM synth. / predicted | DSP synth. / predicted |",
           "|" + " --- |" * 10]
    for r in rows:
        s, p, e = r["synthesized"], r["predicted"], r["error_pct"]
        out.append(f"| {r['board']} | {r['shape']} | {s['LUT']:,} | {p['LUT']:,} | {e['LUT']:+.1f} % "
                   f"| {s['FF']:,} | {p['FF']:,} | {e['FF']:+.1f} % | {s['BRAM']:g} / {p['BRAM']:g} "
                   f"| {s['DSP']} / {p['DSP']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.cost_model", description=__doc__.splitlines()[0])
    ap.add_argument("--synth", action="store_true",
                    help="synthesize the shapes first (minutes each; the model: ten or more)")
    ap.add_argument("--boards", default=",".join(density.SHIPPED),
                    help=f"comma-separated boards, of {', '.join(density.SHIPPED)}")
    ap.add_argument("--shapes", default=",".join(SHAPES),
                    help="comma-separated shapes to synthesize: binaryC, depthwiseC, denseC, "
                         "model, each with an optional -iiN and -dspD")
    ap.add_argument("--tools", choices=build.TOOL_CHOICES, default="auto",
                    help="native or YoWASP Yosys, as python -m hw.build takes it")
    ap.add_argument("--measured", type=Path, default=MEASURED,
                    help="the recorded syntheses (default: bench/results/cost_model_synth.json)")
    ap.add_argument("-o", "--out", type=Path, default=local_result("cost_model.json"),
                    help="results JSON to write (default: bench/results/local/cost_model.json)")
    a = ap.parse_args(argv)
    boards = a.boards.split(",")
    for b in boards:
        if b not in density.SHIPPED:
            ap.error(f"--boards: {b!r} is not one of {', '.join(density.SHIPPED)}")
    shapes = a.shapes.split(",")
    for s in shapes:
        if not _SHAPE.match(s):
            ap.error(f"--shapes: {s!r} is not binaryC, depthwiseC, denseC or model, each with "
                     f"an optional -iiN and -dspD")
    measured = load_measured(a.measured)  # a broken file fails before any synthesis
    if a.synth:
        for b in boards:
            env = build.tool_env(get_board(b).family, a.tools)
            for s in shapes:
                entry = synthesize(b, s, env)
                _record(a.measured, entry)
                t = entry["total"]
                print(f"{b} {s}: {t['LUT']:g} LUT, {t['FF']:g} FF, {t['BRAM']:g} BRAM, "
                      f"{t['DSP']:g} DSP ({entry['seconds']:g} s)", flush=True)
        measured = load_measured(a.measured)
    if not measured:
        raise ValueError(f"{a.measured}: no syntheses recorded (run with --synth)")
    rows = compare(measured)
    costs = fit(measured)
    print(table(rows))
    print()
    print("COSTS fitted to these syntheses (accel.perf.COSTS):")
    print(format_costs(costs))
    write_result({"shapes": rows, "fitted_costs": costs}, a.out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError, build.BuildError)))
