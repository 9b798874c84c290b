"""``python -m training.search``: the network shapes that fit a board at a frame rate, trained
as short proxies, with their quality/cost table and its Pareto front.

Example (the Zynq-7020 of the PYNQ-Z2 at 640x480, 30 frames/s)::

    python -m training.search --board pynq-z2 --frame 640x480 --fps 30 --task denoise \\
        --data data/photos --out runs/search --steps 2000 --max-candidates 8
    python -m training.search --board ulx3s-85f --frame 640x480 --fps 30 --clock-mhz 75 --dry-run

1. **Enumerate** every combination of the space options (``--widths``, ``--blocks``,
   ``--unshuffles``, ``--heads``, ``--tails``, ``--formats``, ``--w-bits``, ``--acts``): each a
   :class:`~training.streamable.StreamNet` of the task's preset with those settings. A head or
   tail kind (:data:`END_KINDS`) is a set of StreamNet settings, so a new kind is one line
   here; a kind whose settings this StreamNet lacks is left out. Bottlenecks not narrower than
   the body are skipped.
2. **Cost** each on the accelerator: the untrained network exported to its integer model (GAM
   stage 4, eval mode: the shape is all the cost depends on), folded by
   :func:`accel.perf.choose_fold` (:func:`~accel.perf.fold_for_rate`) for the rate on the
   accelerator frame (the image frame / unshuffle) at the board's clock, with line buffers as
   wide as that frame (the host tiles wider ones). It fits when
   :func:`accel.perf.estimate_cost`'s LUT estimate for the board's family is under
   :data:`LUT_SHARE` (``--lut-share``) of the board's LUTs, its block RAMs are within the
   board's, and its output stages' multipliers within the build's DSP budget (conv products
   beyond the budget become LUTs, as ``hw.build`` makes them:
   :func:`accel.perf.hard_multipliers`). Board figures come from :mod:`accel.boards`.
3. **Train** the fitting shapes in ``--order``, at most ``--max-candidates`` per session, each
   as its own ``python -m training.train`` run ``OUT/runs/NAME/`` from ``OUT/runs/NAME.toml``
   (same task, seed and budget for all), then score it on the validation photos (whole photos,
   the task's noise level; :func:`training.eval.score`) into ``OUT/runs/NAME/result.json``.
4. **Report**: ``OUT/search-BOARD-WxH-Ffps.csv`` and ``.md`` (every fitting shape with its
   costs, PSNR/SSIM where trained, the Pareto front of PSNR against LUTs), rewritten after every
   candidate; the trained rows and the front are printed at the end.

Running the command again continues: shapes with a ``result.json`` are skipped, an interrupted
run continues from its ``last.pt`` (``training.train --resume``), a trained one without a
result is scored. The runs depend only on the shape and the training settings, which
``OUT/search.json`` records (a second search into the same ``OUT`` must use the same ones), so
searches for other boards or rates reuse them. ``--dry-run`` prints the fitting shapes and
their costs and trains nothing.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import argparse
import csv
import dataclasses
import io
import itertools
import json
import os
import sys
import time
from pathlib import Path

from accel import perf
from accel.boards import BOARDS, Board, BoardError, get_board

from .config import NET_KEYS, net_settings, resolve, to_toml
from .errors import SettingsError, TrainingError
from .tasks import TASKS

__all__ = ["END_KINDS", "LUT_SHARE", "Shape", "Space", "Target", "Costing", "ordered", "pareto",
           "main"]

#: A shape fits when its LUT estimate is under this share of the board's LUTs: the rest is for
#: the estimate's error, the DMA and interconnect a PYNQ design adds, and routing.
LUT_SHARE = 0.85
#: Costing first tries the most folded design the rate allows and rejects a shape whose LUTs or
#: stage multipliers exceed the limit by more than this factor without the exact fold search
#: (faster folds only add lanes; the estimate is not quite monotonic in the interval, see
#: :func:`accel.perf.choose_fold`, so shapes just over the limit get the exact search).
SCREEN_MARGIN = 1.1

#: Head and tail kinds: the StreamNet settings of each (``kernel`` -> ``head_kernel`` or
#: ``tail_kernel``, ...). Unnamed settings keep StreamNet's defaults (3x3, no bottleneck).
END_KINDS = {
    "3x3": {"kernel": 3},
    "1x1": {"kernel": 1},
    "mid16": {"kernel": 3, "mid": 16},
    "dw": {"kernel": 3, "dw": True},
}


def available_kinds() -> list[str]:
    """The kinds of :data:`END_KINDS` whose settings this StreamNet has."""
    return [kind for kind, keys in END_KINDS.items()
            if all(f"{side}_{k}" in NET_KEYS for side in ("head", "tail") for k in keys)]


@dataclasses.dataclass(frozen=True)
class Shape:
    """One point of the search space: the StreamNet settings a search varies."""

    width: int
    blocks: int
    unshuffle: int
    head: str
    tail: str
    stream_bits: int
    frac_bits: int
    w_bits: int
    act: str

    @property
    def name(self) -> str:
        """A folder name that says the shape: ``c32-b8-u2-h3x3-t3x3-s10.6-w8-none``."""
        return (f"c{self.width}-b{self.blocks}-u{self.unshuffle}-h{self.head}-t{self.tail}"
                f"-s{self.stream_bits}.{self.frac_bits}-w{self.w_bits}-{self.act}")

    def overrides(self) -> dict:
        """The StreamNet settings (``training.train``'s ``[net]`` table) of this shape."""
        net = {"width": self.width, "blocks": self.blocks, "unshuffle": self.unshuffle,
               "stream_bits": self.stream_bits, "frac_bits": self.frac_bits,
               "w_bits": self.w_bits, "act": self.act}
        for side, kind in (("head", self.head), ("tail", self.tail)):
            net.update({f"{side}_{k}": v for k, v in END_KINDS[kind].items()})
        return net

    def capacity(self) -> float:
        """Binary multiply-accumulates per image pixel: the body's size (the ``capacity`` order)."""
        return 9 * self.width**2 * self.blocks / self.unshuffle**2


@dataclasses.dataclass(frozen=True)
class Space:
    """The values a search combines (every combination is a :class:`Shape`)."""

    widths: tuple = (16, 24, 32, 48, 64)
    blocks: tuple = (4, 6, 8, 10)
    unshuffles: tuple = (1, 2)
    heads: tuple = ("3x3", "1x1", "mid16", "dw")
    tails: tuple = ("3x3", "1x1", "mid16", "dw")
    formats: tuple = ((8, 4), (10, 6))
    w_bits: tuple = (6, 8)
    acts: tuple = ("none", "rprelu")

    def shapes(self) -> list[Shape]:
        """Every combination, less bottlenecks at least as wide as the body."""
        out = []
        for w, b, u, h, t, (sb, fb), wb, act in itertools.product(
                self.widths, self.blocks, self.unshuffles, self.heads, self.tails, self.formats,
                self.w_bits, self.acts):
            if any(END_KINDS[k].get("mid", 0) >= w for k in (h, t)):
                continue
            out.append(Shape(w, b, u, h, t, sb, fb, wb, act))
        return out


@dataclasses.dataclass(frozen=True)
class Target:
    """A board, an image frame (``width`` x ``height``), a frame rate and the clock."""

    board: Board
    width: int
    height: int
    fps: float
    clock_hz: float

    def __post_init__(self):
        if self.board.family not in perf.ESTIMATE_KEYS:
            usable = ", ".join(b.name for b in BOARDS.values() if b.family in perf.ESTIMATE_KEYS)
            raise BoardError(f"board {self.board.name!r} ({self.board.family}): the cost model has "
                             f"no LUT and block RAM estimate for it; search one of {usable}")

    def accel_frame(self, unshuffle: int) -> tuple[int, int]:
        """(height, width) of the accelerator's frame: the image frame after unshuffle."""
        return -(-self.height // unshuffle), -(-self.width // unshuffle)

    @property
    def label(self) -> str:
        return f"{self.board.name}-{self.width}x{self.height}-{self.fps:g}fps"

    @property
    def lut_unit(self) -> str:
        """What the board's LUT count counts (accel.boards: LUT4 on Lattice, LUT6 on Xilinx)."""
        return "LUT6" if self.board.family == "xc7" else "LUT4"


def _export(task: str, settings: dict):
    """The integer model an untrained network of ``settings`` exports to, and its parameters."""
    from .binary import set_stage
    from .streamable import export
    from .tasks import build_net

    net = build_net(task, quant=True, **settings)
    set_stage(net, 4)
    net.eval()
    model = export(net, task, task, noise_level=TASKS[task]["val_sigma"])
    return model, sum(p.numel() for p in net.parameters())


class Costing:
    """The hardware cost of shapes on one :class:`Target` (a row per shape).

    Folds and frame cycles depend only on each layer's kernel, output channels and taps, so
    shapes that differ in bits or activation share them (the cycle model is the slow part).
    """

    def __init__(self, task: str, target: Target, lut_share: float = LUT_SHARE):
        self.task, self.target, self.lut_share = task, target, lut_share
        self.preset = net_settings(task, {})
        self._folds: dict = {}

    def flags(self, settings: dict) -> str:
        """``training.train`` flags that turn the task's preset into ``settings``."""
        out = []
        for k, v in settings.items():
            if v == self.preset.get(k) or k == "shuffle":
                continue
            flag = "--" + k.replace("_", "-")
            out.append(flag if v is True else f"{flag} {v}")
        return " ".join(out)

    def _fold(self, model, h: int, w: int):
        """``(fold, frame cycles)`` meeting the rate, or None when even one pixel per clock misses."""
        key = (h, w, tuple((layer.kernel, layer.c_out, layer.taps) for layer in model.layers))
        if key not in self._folds:
            t = self.target
            try:
                self._folds[key] = perf.fold_for_rate(model, pixels_per_second=t.fps * h * w,
                                                      clock_hz=t.clock_hz, height=h, width=w)
            except ValueError:
                self._folds[key] = None
        return self._folds[key]

    def _use(self, model, fold, w: int) -> dict:
        board = self.target.board
        lut_key, bram_key = perf.ESTIMATE_KEYS[board.family]
        est = perf.estimate_cost(model, fold, max_width=w, dsp=board.dsp_budget)
        stage_dsp, dsp = perf.hard_multipliers(model, fold, board.dsp_budget)
        return {"luts": est[lut_key], "bram": est[bram_key], "stage_dsp": stage_dsp, "dsp": dsp}

    def over(self, use: dict, margin: float = 1.0) -> str:
        """Which limit ``use`` exceeds (``LUT``, ``BRAM``, ``DSP``), or ``""``."""
        board = self.target.board
        if use["bram"] > board.resources["BRAM"]:
            return "BRAM"
        if use["luts"] >= margin * self.lut_share * board.resources["LUT"]:
            return "LUT"
        if use["stage_dsp"] > margin * board.dsp_budget:
            return "DSP"
        return ""

    def __call__(self, shape: Shape) -> dict:
        """The shape's row: ``fits`` (True, or what it exceeds: ``LUT``, ``BRAM``, ``DSP``,
        ``rate``) and, when it fits, the costs at the fold that meets the rate."""
        settings = net_settings(self.task, shape.overrides())
        model, params = _export(self.task, settings)
        t, res = self.target, self.target.board.resources
        h, w = t.accel_frame(shape.unshuffle)
        row = {"name": shape.name, "shape": shape, "flags": self.flags(settings), "params": params}
        # The most folded design the rate allows (a frame takes at least h*w*ii cycles).
        ii_max = min(max(layer.c_out * layer.taps for layer in model.layers),
                     int(t.clock_hz / t.fps // (h * w)))
        if ii_max < 1:
            return dict(row, fits="rate")
        why = self.over(self._use(model, perf.fold_within(model, ii_max), w), SCREEN_MARGIN)
        if why:
            return dict(row, fits=why)
        found = self._fold(model, h, w)
        if found is None:
            return dict(row, fits="rate")
        fold, cycles = found
        use = self._use(model, fold, w)
        ii = max(perf.layer_ii(layer, f) for layer, f in zip(model.layers, fold))
        return dict(row, fits=self.over(use) or True, luts=use["luts"],
                    lut_pct=100 * use["luts"] / res["LUT"], bram=use["bram"],
                    bram_pct=100 * use["bram"] / res["BRAM"], dsp=use["dsp"],
                    dsp_pct=100 * use["dsp"] / res["DSP"], ii=ii, fps=t.clock_hz / cycles)

    def rows(self, shapes: list[Shape], progress=None) -> list[dict]:
        """The rows of ``shapes`` (in their order); ``progress(done, total)`` now and then.

        Shapes of one geometry (width, blocks, unshuffle, head, tail) share their fold, and
        wider streams and weights or the activation only add LUTs, block RAM and nothing else:
        when the narrowest variant of a geometry does not fit, no variant does, and the others
        are not exported (their rows say why, without costs)."""
        groups: dict = {}
        for shape in shapes:
            groups.setdefault(dataclasses.replace(shape, stream_bits=0, frac_bits=0, w_bits=0,
                                                  act=""), []).append(shape)
        out, done = {}, 0
        for group in groups.values():
            first = min(group, key=lambda s: (s.stream_bits, s.w_bits, s.act != "none"))
            out[first] = self(first)
            for shape in group:
                if shape not in out:
                    out[shape] = (self(shape) if out[first]["fits"] is True else
                                  {"name": shape.name, "shape": shape, "fits": out[first]["fits"]})
            done += len(group)
            if progress:
                progress(done, len(shapes))
        return [out[s] for s in shapes]


def ordered(rows: list[dict], how: str) -> list[dict]:
    """The fitting rows in training order: ``cost`` (fewest LUTs first) or ``capacity`` (most
    binary multiply-accumulates per image pixel first, then fewest LUTs)."""
    if how == "cost":
        return sorted(rows, key=lambda r: (r["luts"], r["name"]))
    return sorted(rows, key=lambda r: (-r["shape"].capacity(), r["luts"], r["name"]))


def pareto(rows: list[dict]) -> list[dict]:
    """The rows with a PSNR that no row of fewer (or as many) LUTs reaches, fewest LUTs first."""
    front, best = [], float("-inf")
    trained = (r for r in rows if r.get("psnr") is not None)
    for r in sorted(trained, key=lambda r: (r["luts"], -r["psnr"])):
        if r["psnr"] > best:
            front.append(r)
            best = r["psnr"]
    return front


# ------------------------------------------------------------------ the report
COLUMNS = ("name", "flags", "luts", "lut_pct", "bram", "bram_pct", "dsp", "dsp_pct", "ii", "fps",
           "params", "psnr", "ssim", "pareto")


def _csv(rows: list[dict], front: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    names = {r["name"] for r in front}
    for r in rows:
        r = dict(r, pareto=int(r["name"] in names))
        writer.writerow(["" if r.get(c) is None else round(r[c], 4) if isinstance(r[c], float)
                         else r[c] for c in COLUMNS])
    return buf.getvalue()


def _markdown(rows: list[dict], unit: str) -> str:
    lines = [f"| shape | flags | {unit} (est.) | BRAM | DSP | ii | fps | params | PSNR (dB) | SSIM |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        quality = (f"{r['psnr']:.2f} | {r['ssim']:.4f}" if r.get("psnr") is not None else "- | -")
        lines.append(f"| {r['name']} | {r['flags'] and '`' + r['flags'] + '`'} | "
                     f"{r['luts']:,} ({r['lut_pct']:.0f} %) | {r['bram']:g} ({r['bram_pct']:.0f} %) | "
                     f"{r['dsp']} ({r['dsp_pct']:.0f} %) | {r['ii']} | {r['fps']:.1f} | "
                     f"{r['params']:,} | {quality} |")
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` whole (a reader never sees half a file; shards may write at once)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------ the command
def _int_list(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be at least 1")
    return values


def _formats(text: str) -> tuple:
    out = []
    for item in text.split(","):
        bits, _, frac = item.partition(".")
        if not (bits.isdigit() and frac.isdigit()):
            raise argparse.ArgumentTypeError(f"{item!r} is not BITS.FRAC (e.g. 10.6)")
        if int(frac) >= int(bits):
            raise argparse.ArgumentTypeError(f"{item!r}: the fraction bits must be fewer than the bits")
        out.append((int(bits), int(frac)))
    return tuple(out)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and at most 1")
    return value


def _shard(text: str) -> tuple[int, int]:
    i, _, n = text.partition("/")
    if not (i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N (e.g. 0/4)")
    return int(i), int(n)


def _choices(allowed: list[str]):
    def parse(text: str) -> tuple:
        values = tuple(text.split(","))
        bad = [v for v in values if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{', '.join(bad)}: not one of {', '.join(allowed)}")
        return values
    parse.__name__ = "list"
    return parse


def parser() -> argparse.ArgumentParser:
    d, kinds = Space(), available_kinds()
    p = cli.ArgumentParser(prog="python -m training.search",
                           description="Network shapes that fit a board at a frame rate, trained as "
                                       "short proxies: a quality/cost table and its Pareto front.")
    p.add_argument("--board", required=True, help=f"target board: {', '.join(BOARDS)}")
    p.add_argument("--frame", type=cli.frame_size, required=True, metavar="WxH",
                   help="image frame the rate is for, e.g. 640x480")
    p.add_argument("--fps", type=cli.positive_float, required=True, help="frames per second to reach")
    p.add_argument("--clock-mhz", type=cli.positive_float, default=None,
                   help="accelerator clock (default: the board's)")
    p.add_argument("--lut-share", type=_share, default=LUT_SHARE,
                   help="a shape fits under this share of the board's LUTs (by accel.perf's estimate)")
    p.add_argument("--task", choices=sorted(TASKS), default="denoise", help="what to train for")
    p.add_argument("--data", type=Path,
                   help="folder with train/ and val/ photos (needed unless --dry-run)")
    p.add_argument("--out", type=Path, help="search folder: runs, tables (needed unless --dry-run)")
    p.add_argument("--dry-run", "--list", action="store_true",
                   help="print the fitting shapes and their costs; train nothing")
    p.add_argument("--max-candidates", type=cli.positive_int, default=None,
                   help="train at most this many proxies in this session (default: all)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                   help="train only candidates I, I+N, I+2N, ... of the order, so that N "
                        "processes (e.g. on one GPU) share a search folder (default: 0/1, all)")
    p.add_argument("--order", choices=("cost", "capacity"), default="cost",
                   help="training order: cost (fewest LUTs first) or capacity (most binary "
                        "multiply-accumulates per image pixel first)")
    train = p.add_argument_group(
        "proxy training (the same for every shape; recorded in OUT/search.json)")
    train.add_argument("--steps", type=cli.positive_int, default=2000, help="steps per proxy")
    train.add_argument("--batch", type=cli.positive_int, default=32, help="patches per step")
    train.add_argument("--seed", type=cli.natural_int, default=0, help="initialization and batch seed")
    train.add_argument("--sigma", type=cli.natural_int, nargs=2, metavar=("LO", "HI"),
                       help="denoising noise levels the proxies train on (default: the task's)")
    train.add_argument("--bn-batches", type=cli.natural_int, default=100,
                       help="batches of the BatchNorm re-estimation after training")
    run = p.add_argument_group("running (free to change between sessions)")
    run.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    run.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads")
    run.add_argument("--val-crop", type=cli.natural_int, default=0,
                     help="validate during training on centre crops of this size; 0: whole photos "
                          "(the final scores always use whole photos)")
    space = p.add_argument_group("the search space (comma-separated values; every combination)")
    space.add_argument("--widths", type=_int_list, default=d.widths, metavar="LIST",
                       help=f"binary body channels (default: {','.join(map(str, d.widths))})")
    space.add_argument("--blocks", type=_int_list, default=d.blocks, metavar="LIST",
                       help=f"binary layers (default: {','.join(map(str, d.blocks))})")
    space.add_argument("--unshuffles", type=_int_list, default=d.unshuffles, metavar="LIST",
                       help=f"host pixel unshuffle (default: {','.join(map(str, d.unshuffles))})")
    for side in ("heads", "tails"):
        default = tuple(k for k in getattr(d, side) if k in kinds)
        space.add_argument(f"--{side}", type=_choices(kinds), default=default, metavar="LIST",
                           help=f"{side[:-1]} kinds, of {', '.join(kinds)} "
                                f"(default: {','.join(default)})")
    space.add_argument("--formats", type=_formats, default=d.formats, metavar="LIST",
                       help="residual stream BITS.FRAC (default: "
                            + ",".join(f"{b}.{f}" for b, f in d.formats) + ")")
    space.add_argument("--w-bits", type=_int_list, default=d.w_bits, metavar="LIST",
                       help=f"head/tail weight bits (default: {','.join(map(str, d.w_bits))})")
    space.add_argument("--acts", type=_choices(["none", "rprelu"]), default=d.acts, metavar="LIST",
                       help=f"binary layers' activation (default: {','.join(d.acts)})")
    return p


def _cost_all(costing: Costing, shapes: list[Shape]) -> list[dict]:
    """Rows of every shape, with a progress line every few seconds (stderr)."""
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 5:
            print(f"costing shapes: {done}/{total}", file=sys.stderr, flush=True)
            last[0] = time.monotonic()

    import spec

    try:
        return costing.rows(shapes, progress)
    except (SettingsError, spec.ModelError) as e:  # a value of the space the network refuses
        raise TrainingError(f"the search space: {e}") from None


def _summary(rows: list[dict], target: Target, lut_share: float) -> str:
    fit = [r for r in rows if r["fits"] is True]
    over = {k: sum(r["fits"] == k for r in rows) for k in ("LUT", "BRAM", "DSP", "rate")}
    return (f"{target.board.name} ({target.board.device}) at {target.width}x{target.height}, "
            f"{target.fps:g} fps, {target.clock_hz / 1e6:g} MHz: {len(fit)} of {len(rows)} shapes fit "
            f"({target.lut_unit} < {lut_share:.0%} of {target.board.resources['LUT']:,}, block RAM <= "
            f"{target.board.resources['BRAM']}, stage multipliers <= {target.board.dsp_budget}); "
            f"over: " + ", ".join(f"{k} {n}" for k, n in over.items()))


def _training_settings(a: argparse.Namespace) -> dict:
    return {"task": a.task, "steps": a.steps, "batch": a.batch, "seed": a.seed,
            "sigma": a.sigma, "bn_batches": a.bn_batches, "data": str(a.data.resolve())}


def _check_out(a: argparse.Namespace) -> dict:
    """Check --data and --out before any work; record (or compare) the training settings."""
    for sub in ("train", "val"):
        if not (a.data / sub).is_dir():
            raise TrainingError(f"--data {a.data}: no {sub}/ folder (make the photo folders with "
                                f"python -m training.gather_data)")
    if a.out.exists() and not a.out.is_dir():
        raise TrainingError(f"--out {a.out} is a file, not a search folder")
    settings = _training_settings(a)
    # The runtime settings go through training's own checks (e.g. --device cuda without CUDA).
    resolve(dict(settings, device=a.device, threads=a.threads))
    record = a.out / "search.json"
    if record.exists():
        try:
            stored = json.loads(record.read_text())
        except (OSError, ValueError) as e:
            raise TrainingError(f"{record} cannot be read ({e}): remove it or search into "
                                f"another --out") from None
        diffs = [f"{k}: {stored.get(k)!r} -> {v!r}" for k, v in settings.items() if stored.get(k) != v]
        if diffs:
            raise TrainingError(f"{a.out} holds a search with other training settings "
                                f"({'; '.join(diffs)}): use those, or search into another --out")
    else:
        (a.out / "runs").mkdir(parents=True, exist_ok=True)
        _write(record, json.dumps(settings, indent=1) + "\n")
    return settings


def _train(row: dict, a: argparse.Namespace, settings: dict) -> int:
    """Train (or continue) one proxy through ``training.train``; its exit status."""
    from .train import main as train_main

    runs = a.out / "runs"
    run, config = runs / row["name"], runs / f"{row['name']}.toml"
    runtime = ["--device", a.device, "--threads", str(a.threads), "--val-crop", str(a.val_crop)]
    if (run / "final.pt").exists():
        return cli.EXIT_OK
    if (run / "last.pt").exists():
        argv = ["--resume", "--out", str(run), *runtime]
    else:
        cfg = dict(settings, method="gam", net=row["shape"].overrides())
        _write(config, to_toml(cfg, f"training.search proxy {row['name']}"))
        argv = ["--config", str(config), "--out", str(run), *runtime]
    try:
        return train_main(argv)
    except SystemExit as e:  # a usage error inside training.train (already printed)
        return e.code if isinstance(e.code, int) else cli.EXIT_FAILED


def _score(row: dict, a: argparse.Namespace, pairs) -> dict:
    """Score a trained proxy on the validation photos; written to its ``result.json``."""
    from .checkpoint import load_run
    from .eval import score, torch_restore

    run = a.out / "runs" / row["name"]
    net, state = load_run(run / "final.pt", task=a.task)
    got = score(torch_restore(net), pairs)
    result = {"name": row["name"], "psnr": got["psnr"], "ssim": got["ssim"],
              "steps": state["steps"], "train_minutes": round(state["elapsed"] / 60, 2),
              "images": got["images"]}
    _write(run / "result.json", json.dumps(result, indent=1) + "\n")
    return result


def _result(row: dict, out: Path) -> dict | None:
    path = out / "runs" / row["name"] / "result.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TrainingError(f"{path} cannot be read ({e}): remove it to score the run again") from None


def _report(rows: list[dict], a: argparse.Namespace, target: Target, head: str) -> tuple[Path, str]:
    """Write the CSV and markdown tables of the fitting ``rows``; the printed summary."""
    for r in rows:
        res = _result(r, a.out)
        r.update(psnr=res and res["psnr"], ssim=res and res["ssim"])
    front = pareto(rows)
    unit = target.lut_unit
    base = a.out / f"search-{target.label}"
    trained = [r for r in rows if r["psnr"] is not None]
    md = (f"# {head}\n\nTraining: {json.dumps(_training_settings(a))}\n\n"
          f"## Pareto front (PSNR against LUTs)\n\n{_markdown(front, unit)}\n\n"
          f"## Every fitting shape ({len(trained)} trained)\n\n{_markdown(rows, unit)}\n")
    _write(base.with_suffix(".csv"), _csv(rows, front))
    _write(base.with_suffix(".md"), md)
    text = (f"trained {len(trained)} of {len(rows)} fitting shapes\n{_markdown(trained, unit)}\n\n"
            f"Pareto front (PSNR against LUTs):\n{_markdown(front, unit)}")
    return base, text


def _main(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    if not a.dry_run and (a.data is None or a.out is None):
        p.error("--data and --out are needed to train (or give --dry-run)")
    board = get_board(a.board)
    clock = board.clock_hz if a.clock_mhz is None else a.clock_mhz * 1e6
    h, w = a.frame
    target = Target(board, w, h, a.fps, clock)
    space = Space(a.widths, a.blocks, a.unshuffles, a.heads, a.tails, a.formats, a.w_bits, a.acts)
    settings = None if a.dry_run else _check_out(a)
    shapes = space.shapes()
    if not shapes:
        raise TrainingError("the search space is empty (every bottleneck is as wide as the body)")
    costing = Costing(a.task, target, a.lut_share)
    rows = _cost_all(costing, shapes)
    head = _summary(rows, target, a.lut_share)
    print(head)
    fit = [r for r in rows if r["fits"] is True]
    fit = ordered(fit, "cost")
    if a.dry_run:
        print(_markdown(fit, target.lut_unit))
        return cli.EXIT_OK
    order = ordered(fit, a.order)
    index, count = a.shard
    share = order[index::count]  # this process's candidates (--shard)
    left = [r for r in share if _result(r, a.out) is None]
    todo = left[:a.max_candidates]
    print(f"{len(share) - len(left)} already trained; training {len(todo)} now"
          + (f" (shard {index}/{count}: {len(share)} of {len(fit)} shapes)" if count > 1 else ""))
    if todo:
        from .tasks import validation_pairs
        pairs = validation_pairs(a.task, a.data / "val")
    for i, row in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {row['name']} ({row['luts']:,} {target.lut_unit}, "
              f"{row['fps']:.1f} fps): {a.out / 'runs' / row['name']}", flush=True)
        status = _train(row, a, settings)
        if status != cli.EXIT_OK:
            return status  # training.train has said why (or how it was stopped)
        result = _score(row, a, pairs)
        print(f"[{i}/{len(todo)}] {row['name']}: {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}")
        _report(fit, a, target, head)
    base, text = _report(fit, a, target, head)
    print(text)
    print(f"tables: {base}.csv, {base}.md")
    return cli.EXIT_OK


def main(argv=None) -> int:
    p = parser()
    a = p.parse_args(argv)
    return cli.run(lambda: _main(p, a), errors=(BoardError, OSError))


if __name__ == "__main__":
    sys.exit(main())
