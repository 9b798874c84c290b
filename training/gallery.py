"""``python -m training.gallery``: side-by-side crops for the docs, one PNG per task.

Each row is one validation photo, each column one restorer: the degraded input, the exported
GAM binary model run through the integer spec (what the accelerator outputs), the
full-precision twin (a run checkpoint, optional), the task's classical baseline (tuned on the
shown photos, as ``training.eval`` tunes it) and the clean photo. Every network and baseline
restores the whole photo; the crop is the window of most detail in the clean photo (largest
gradient energy), where restorers differ most, and each tile carries its PSNR on that crop::

    python -m training.gallery --task denoise --data data/photos/val \\
        --model models/denoise.gamir --checkpoint runs/denoise_fp/final.pt \\
        --out docs/img/gallery/denoise.png
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import sys
from pathlib import Path

import numpy as np
import torch

import spec

from .checkpoint import load_run
from .errors import TrainingError
from .eval import BASELINES, TASK_BASELINE, classical, spec_restore, torch_restore
from .metrics import psnr
from .tasks import TASKS, validation_pairs

__all__ = ["main", "detail_window", "tiles", "compose"]

LABEL_HEIGHT = 14  # pixels of the header row that names each column


def detail_window(clean: np.ndarray, size: int, step: int = 8) -> tuple[int, int]:
    """Top-left (y, x) of the ``size`` square with the largest gradient energy, on a ``step`` grid."""
    g = clean.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(g)
    energy[:, 1:] += np.diff(g, axis=1) ** 2
    energy[1:, :] += np.diff(g, axis=0) ** 2
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = np.arange(0, g.shape[0] - size + 1, step)
    xs = np.arange(0, g.shape[1] - size + 1, step)
    if not len(ys) or not len(xs):
        raise TrainingError(f"a {g.shape[1]}x{g.shape[0]} photo is smaller than the {size}-pixel crop")
    y, x = ys[:, None], xs[None, :]
    sums = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
    i, j = np.unravel_index(np.argmax(sums), sums.shape)
    return int(ys[i]), int(xs[j])


def tiles(pairs, columns, crop: int) -> list[list[tuple[np.ndarray, float | None]]]:
    """Per photo: each column's crop (``crop`` x ``crop`` uint8) and its PSNR, then the clean crop.

    ``columns`` is [(label, [the whole restored photo, one per pair])]; the clean photo's tile
    comes last, with no PSNR."""
    rows = []
    for i, (_, _, clean, _) in enumerate(pairs):
        y, x = detail_window(clean, crop)
        window = (slice(y, y + crop), slice(x, x + crop))
        row = [(np.ascontiguousarray(outs[i][window]), psnr(outs[i][window], clean[window]))
               for _, outs in columns]
        rows.append(row + [(np.ascontiguousarray(clean[window]), None)])
    return rows


def compose(labels: list[str], rows, gap: int = 2) -> np.ndarray:
    """One RGB image: a header row of labels, then the tiles with their PSNR written in a corner."""
    from PIL import Image, ImageDraw, ImageFont

    crop = rows[0][0][0].shape[0]
    width = len(labels) * (crop + gap) - gap
    height = LABEL_HEIGHT + len(rows) * (crop + gap)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=11)
    for c, label in enumerate(labels):
        draw.text((c * (crop + gap) + 2, 1), label, fill="black", font=font)
    for r, row in enumerate(rows):
        top = LABEL_HEIGHT + r * (crop + gap)
        for c, (tile, value) in enumerate(row):
            left = c * (crop + gap)
            canvas.paste(Image.fromarray(tile), (left, top))
            if value is not None:
                text = f"{value:.2f} dB"
                box = draw.textbbox((left + 2, top + crop - 13), text, font=font)
                draw.rectangle(box, fill="black")
                draw.text((left + 2, top + crop - 13), text, fill="white", font=font)
    return np.asarray(canvas)


def _at_clean_size(degraded: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The degraded photo at the clean photo's size: pixel repetition where the task shrinks it (SR)."""
    scale = clean.shape[0] // degraded.shape[0]
    return np.repeat(np.repeat(degraded, scale, axis=0), scale, axis=1)


def _networks(a) -> list[tuple[str, object]]:
    """[(label, restore)] of the exported model and, if given, the checkpoint's network."""
    try:
        model = spec.load(a.model)
    except (FileNotFoundError, spec.ModelError) as e:
        raise TrainingError(str(e)) from None
    if model.task != a.task:
        raise TrainingError(f"model {a.model} is a {model.task} model, not {a.task}")
    networks = [("GAM binary", spec_restore(model))]
    if a.checkpoint:
        net, state = load_run(a.checkpoint, task=a.task)
        name = {"fp": "full precision", "gam": "GAM torch", "ste": "plain STE"}[state["method"]]
        networks.append((name, torch_restore(net)))
    return networks


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m training.gallery",
                           description="Side-by-side crops (input, GAM binary, full precision, "
                                       "classical, clean) of validation photos, as one PNG.")
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--data", type=Path, required=True, help="folder of clean validation photos")
    p.add_argument("--model", type=Path, required=True, help="the exported GAM model (.gamir)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="the full-precision twin's run checkpoint (final.pt); optional")
    p.add_argument("--baseline", choices=BASELINES, default=None,
                   help="the classical column (default: the task's, training.eval.TASK_BASELINE)")
    p.add_argument("--sigma", type=cli.natural_int, default=None,
                   help="denoising noise level (default: the task's, 25)")
    p.add_argument("--images", type=str, default=None,
                   help="comma-separated photo names (file stems) to show (default: the first two)")
    p.add_argument("--crop", type=cli.positive_int, default=128, help="tile size in pixels")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    a = p.parse_args(argv)

    def body() -> int:
        torch.set_num_threads(1)
        if a.out.suffix.lower() != ".png":
            raise TrainingError(f"--out {a.out}: the gallery is written as a .png file")
        networks = _networks(a)
        try:
            pairs = validation_pairs(a.task, a.data, sigma=a.sigma)
        except FileNotFoundError as e:
            raise TrainingError(str(e)) from None
        names = [n for n, *_ in pairs]
        wanted = a.images.split(",") if a.images else names[:2]
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise TrainingError(f"no photo named {', '.join(missing)} in {a.data} "
                                f"(there are: {', '.join(names)})")
        pairs = [pr for pr in pairs if pr[0] in wanted]
        for _, _, clean, _ in pairs:
            detail_window(clean, a.crop)  # every photo takes the crop, before the slow part

        def run(restore):
            return [restore(d, level) for _, d, _, level in pairs]

        def mean_psnr(outs):
            return np.mean([psnr(y, c) for y, (_, _, c, _) in zip(outs, pairs)])

        columns = [("input", [_at_clean_size(d, c) for _, d, c, _ in pairs])]
        columns += [(label, run(restore)) for label, restore in networks]
        method = a.baseline or TASK_BASELINE[a.task]
        sigma = TASKS[a.task]["val_sigma"] if a.sigma is None else a.sigma
        tried = {setting: run(fn) for setting, fn in classical(a.task, method, sigma)}
        setting = max(tried, key=lambda k: mean_psnr(tried[k]))  # tuned on the shown photos
        columns.append((method, tried[setting]))
        labels = [label for label, _ in columns] + ["clean"]
        image = compose(labels, tiles(pairs, columns, a.crop))
        from PIL import Image

        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_name(a.out.name + ".part")
        Image.fromarray(image).save(tmp, format="PNG", optimize=True)
        tmp.replace(a.out)
        print(f"wrote {a.out}: {len(pairs)} photos x {len(labels)} columns ({method}: {setting}), "
              f"{a.out.stat().st_size // 1024} KB")
        return 0

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
