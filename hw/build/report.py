"""The build report: throughput at the report's frame sizes and the lines the CLI prints."""

from __future__ import annotations

from pathlib import Path

from .tools import BuildError

__all__ = ["FRAMES", "frame_tiles", "throughput", "step_times", "format_report"]

#: Frame sizes every report gives frames per second for (image pixels, before pixel steps).
FRAMES = ((640, 480), (1280, 720))


def frame_tiles(model, max_width: int) -> list[list[tuple[int, int, int, int]]]:
    """The host's tiles (:func:`accel.tiling.plan_1d`) of each of :data:`FRAMES`' widths."""
    from accel.tiling import TilingError, plan_1d, radius

    r = model.steps.unshuffle
    try:
        return [plan_1d(-(-w // r), max_width, radius(model)) for w, _ in FRAMES]
    except TilingError as exc:
        raise BuildError(str(exc)) from None


def throughput(model, manifest, clock_mhz: float) -> dict:
    """Pixels per clock and frames per second at :data:`FRAMES` (:mod:`accel.perf`).

    The accelerator sees the image after the host's pixel steps: with unshuffle r a W x H
    frame is (W/r) x (H/r) accelerator pixels. A frame wider than the bitstream's max width
    runs as the host's overlapping tiles (:func:`accel.tiling.plan_1d`), each a frame of its
    own, fill included.
    """
    from accel import perf

    fold = manifest.fold
    r = model.steps.unshuffle
    out = {"pixels_per_clock": perf.pixels_per_clock(model, fold), "fps": {},
           "accelerator_frame": {}, "tiles": {}}
    for (w, h), tiles in zip(FRAMES, frame_tiles(model, manifest.max_width)):
        aw, ah = -(-w // r), -(-h // r)
        cycles = sum(perf.frame_cycles(model, fold, height=ah, width=stop - start)
                     for start, stop, _, _ in tiles)
        key = f"{w}x{h}"
        out["accelerator_frame"][key] = [aw, ah]
        out["tiles"][key] = len(tiles)
        out["fps"][key] = round(clock_mhz * 1e6 / cycles, 2)
    return out


def step_times(report: dict) -> str:
    """``generate 6.6/5.1, yosys 87/80, ...``: each step's wall and CPU seconds (wall only in
    reports from before CPU time was recorded)."""
    cpu = report.get("step_cpu_seconds", {})
    return ", ".join(f"{k} {v:g}" + (f"/{cpu[k]:g}" if k in cpu else "")
                     for k, v in report["step_seconds"].items())


def format_report(report: dict) -> str:
    """The report as the few lines the CLI prints."""
    lines = [f"{report['board']} ({report['device']}), model {report['model']['name']}, "
             f"fold {report['fold_arg']}, max width {report['max_width']}"]
    for res, u in report["utilization"].items():
        lines.append(f"  {res:4} {u['used']:>9g} / {u['available']:<7g} ({u['percent']:.1f} %)")
    for name, f in report["fmax"].items():
        lines.append(f"  Fmax {name}: {f['achieved_mhz']:.1f} MHz (asked {f['constraint_mhz']:.0f})")
    lines.append(f"  clock {report['clock_mhz']:.1f} MHz ({report['clock_source']}), "
                 f"{report['pixels_per_clock']:.3g} pixels/clock")
    lines.append("  tools: " + ", ".join(f"{Path(t['path']).name} {t['version']}"
                                         for t in report["tools"].values())
                 + "; seconds (wall/CPU): " + step_times(report))
    for key, fps in report["fps"].items():
        aw, ah = report["accelerator_frame"][key]
        lines.append(f"  {key}: {fps:.1f} fps (accelerator frame {aw}x{ah})")
    if report["bitstream"]:
        lines.append(f"  bitstream {report['bitstream']} + manifest.json")
    elif report.get("vivado_project"):
        lines.append(f"  Vivado project script {report['vivado_project']}")
    else:
        lines.append(f"  {report['bitstream_note']} (FASM: {report['fasm']})")
    return "\n".join(lines)
