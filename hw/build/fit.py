"""Whether a design fits its board: utilization, what overflows, and the hint that would fit."""

from __future__ import annotations

import json

from accel.boards import RESOURCES, Board

from .tools import BuildError

__all__ = ["FitFailure", "utilization", "overflow", "fit_error"]


class FitFailure(Exception):
    """Synthesis finished but the design needs more than the device has (``used`` per resource)."""

    def __init__(self, used: dict):
        self.used = used


def utilization(used: dict, available: dict) -> dict:
    return {res: {"used": used[res], "available": available[res],
                  "percent": round(100.0 * used[res] / available[res], 1)}
            for res in RESOURCES}


def overflow(board: Board, used: dict) -> list[str]:
    """Human lines for each resource used beyond the board's, or [] when it fits."""
    return [
        f"{res}: needs {used[res]:g}, {board.device} has {board.resources[res]} "
        f"({used[res] - board.resources[res]:g} over, {100.0 * used[res] / board.resources[res]:.0f} %)"
        for res in RESOURCES if used[res] > board.resources[res]
    ]


def fit_error(board: Board, model, manifest, used: dict) -> BuildError:
    """What does not fit, by how much, and a ``--fold`` / ``--max-width`` that would.

    The folding hint scales :func:`accel.perf.estimate_cost`'s LUT estimate of the current fold
    by the ratio synthesis measured, so the estimate's bias cancels, and asks
    :func:`accel.perf.choose_fold` for the fastest fold under 90 % of the device's LUTs. BRAM holds
    the line buffers, which grow with the frame width, not with the folding.
    """
    from accel import perf, regmap

    lines = overflow(board, used)
    fold, max_width = manifest.fold, manifest.max_width
    hints = []
    if used["LUT"] > board.resources["LUT"] or used["FF"] > board.resources["FF"]:
        ratio = max(used["LUT"] / board.resources["LUT"], used["FF"] / board.resources["FF"])
        estimate = perf.estimate_cost(model, fold, max_width=max_width)["luts"]
        budget = int(0.9 * estimate / ratio)
        try:
            new = perf.choose_fold(model, lut_budget=budget, max_width=max_width)
        except ValueError:
            hints.append("no folding fits: even the most folded design is too large")
        else:
            text = json.dumps([f.as_dict() for f in new], separators=(",", ":"))
            hints.append(f"try --fold '{text}' ({perf.pixels_per_clock(model, new):.3g} pixels/clock,"
                         f" now {perf.pixels_per_clock(model, fold):.3g}), or --fold lut:{budget}")
    if used["BRAM"] > board.resources["BRAM"]:
        width = int(0.9 * max_width * board.resources["BRAM"] / used["BRAM"])
        hints.append(f"try --max-width {width}: line buffers grow with the frame width (now "
                     f"{max_width}; the host tiles wider frames)")
        if board.family != "ice40":  # the iCE40 has no LUT RAM
            rows = max(r.entries for r in regmap.regions(model, fold)[::2])  # the weight regions
            hints.append(f"or --lutram-depth {rows}: the weight memories in LUT RAM (block RAM "
                         f"holds a folded layer's wide, shallow rows a 32-bit lane per block)")
    return BuildError(f"model does not fit {board.name} ({board.device}):\n  "
                      + "\n  ".join(lines + hints))
