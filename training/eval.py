"""``python -m training.eval``: a PSNR/SSIM table on a folder of images.

Each row is one restorer: a run checkpoint (``--checkpoint``, the torch network in eval mode),
an exported model file (``--model``, run through the integer spec) or a classical baseline
(``--baseline nlm|wavelet|bicubic|input``). Images come from a folder of clean images degraded
synthetically with a fixed seed (``--data``), or from paired folders (``--pairs``)::

    python -m training.eval --task denoise --data /work/data/photos/val --sigma 25 \\
        --checkpoint runs/denoise_gam/final.pt --model models/denoise.gamir --baseline nlm
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import spec

from .data import read_pairs
from .evaluate import classical, load_run, net_costs, score, spec_restore, torch_restore
from .tasks import TASKS, crop_multiple, validation_pairs

__all__ = ["main", "table"]


def table(rows: list[dict]) -> str:
    """Markdown table of result rows (name, psnr, ssim and optional costs)."""
    head = "| model | PSNR (dB) | SSIM | params | FLOPs/px | binary ops/px |\n| --- | --- | --- | --- | --- | --- |"
    lines = [head]
    for r in rows:
        cost = [f"{r[k]:,.0f}" if k in r else "-" for k in ("params", "flops_per_px", "binary_ops_per_px")]
        lines.append(f"| {r['name']} | {r['psnr']:.2f} | {r['ssim']:.4f} | " + " | ".join(cost) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.eval", description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="folder of clean images (synthetic degradation)")
    src.add_argument("--pairs", type=Path, help="folder with paired subfolders (e.g. rain/ norain/)")
    p.add_argument("--sigma", type=int, default=None, help="denoising noise level (default: task's)")
    p.add_argument("--checkpoint", type=Path, action="append", default=[])
    p.add_argument("--model", type=Path, action="append", default=[])
    p.add_argument("--baseline", action="append", default=[], choices=["nlm", "wavelet", "bicubic", "input"])
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    sigma = TASKS[a.task]["val_sigma"] if a.sigma is None else a.sigma
    try:
        if a.data:
            pairs = validation_pairs(a.task, a.data, sigma=sigma)
        else:
            m = 4 * TASKS[a.task]["scale"]
            pairs = [(n, crop_multiple(d, 4), crop_multiple(c, m), sigma)
                     for n, (d, c) in sorted(read_pairs(a.pairs).items())]
        rows = []
        for path in a.checkpoint:
            net, state = load_run(path)
            rows.append({"name": f"{state['method']} ({path})", **score(torch_restore(net), pairs),
                         **net_costs(net, a.task)})
        for path in a.model:
            rows.append({"name": f"spec ({path})", **score(spec_restore(spec.load(path)), pairs)})
        for b in a.baseline:
            tried = [(setting, score(fn, pairs)) for setting, fn in classical(a.task, b, sigma)]
            setting, best = max(tried, key=lambda t: t[1]["psnr"])
            rows.append({"name": f"{b} ({setting}, best of {len(tried)})", **best})
    except (FileNotFoundError, spec.ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not rows:
        print("error: name at least one --checkpoint, --model or --baseline", file=sys.stderr)
        return 1
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
