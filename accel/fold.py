"""The ``--fold`` language, resolved once at the edge of every command.

A command (``hw.generate``, ``hw.build``, ``sim.check``, the simulation benches) turns what
the user gave into an :class:`accel.regmap.Fold` here, once: every layer below (the generator,
the register map, the cycle and cost model, the manifest) takes that ``Fold`` and does not
normalize again. The ``Fold`` type and its validation for a model (:func:`accel.regmap.
normalize_fold`) stay below the cycle model, which builds folds itself (:func:`accel.perf.
fold_within`); this module, above it, owns the language:

``full``
    one pixel per clock (every layer fully unfolded), the largest design;
``auto``
    the slowest fold that still reaches ``fps`` at ``clock_hz`` on a ``frame`` (height, width)
    accelerator frame (:func:`accel.perf.choose_fold`);
``lut:N``
    the fastest fold estimated under N LUTs;
``ii:N``
    every layer folded as far as N cycles per pixel allows;
a JSON list, or ``@file.json`` holding one
    one ``{"pe", "simd", "out_pe"}`` or ``null`` per layer.

Python callers may also give ``None`` (full), a list of such entries, or a ``Fold``, which is
resolved already and comes back unchanged (so a command's edge resolves once, and a
``Fold`` handed down to :func:`hw.generate.generate` is not normalized again).
"""

from __future__ import annotations

import json
from pathlib import Path

from spec.model import Model

from . import config, perf
from .regmap import Fold, FoldError, normalize_fold

__all__ = ["DEFAULT_FOLD", "HELP", "resolve_fold"]

#: Every command's ``--fold`` default: the most folded design that meets the default rate.
DEFAULT_FOLD = "auto"
#: Every command's ``--fold`` help.
HELP = ("auto (the most folded design that meets the frame rate: far smaller, and a faster "
        "Verilator build, than full), full (one pixel per clock: the largest design), lut:N, "
        "ii:N, a JSON list or @file.json")


def resolve_fold(model: Model, fold, *, fps: float = config.DEFAULT_FPS,
                 clock_hz: float = config.DEFAULT_CLOCK_HZ, frame=config.DEFAULT_FRAME,
                 max_width: int = config.DEFAULT_MAX_WIDTH) -> Fold:
    """The :class:`~accel.regmap.Fold` of ``model`` that ``fold`` (see the module doc) names;
    :class:`~accel.regmap.FoldError` says what is wrong with it."""
    if isinstance(fold, Fold):
        return fold
    if isinstance(fold, str):
        text = fold.strip()
        h, w = frame
        if text == "full":
            fold = None
        elif text == "auto":
            fold = perf.choose_fold(model, pixels_per_second=fps * h * w, clock_hz=clock_hz,
                                    height=h, width=w, max_width=max_width)
        elif text.startswith("lut:"):
            if not text[4:].isdigit():
                raise FoldError(f"--fold {fold!r}: lut:N needs a whole number of LUTs")
            fold = perf.choose_fold(model, lut_budget=int(text[4:]), height=h, width=w,
                                    max_width=max_width)
        elif text.startswith("ii:"):
            if not text[3:].isdigit() or int(text[3:]) < 1:
                raise FoldError(f"--fold {fold!r}: ii:N needs a whole number of cycles per "
                                f"pixel, at least 1")
            fold = perf.fold_within(model, int(text[3:]))
        else:
            if text.startswith("@"):
                try:
                    text = Path(text[1:]).read_text()
                except (OSError, UnicodeDecodeError) as e:
                    raise FoldError(f"--fold {fold!r}: cannot read the file "
                                    f"({getattr(e, 'strerror', None) or e})") from None
            try:
                fold = json.loads(text)
            except json.JSONDecodeError as e:
                raise FoldError(f"--fold {fold!r} is not full, auto, lut:N, ii:N, @file or "
                                f"JSON ({e})") from None
    return normalize_fold(model, fold)
