"""``python -m training.export``: a trained run -> ``models/<task>.gamir``, checked against the spec.

The network (eval mode, GAM stage 4, fake quantization on) is folded into the integer model
(:func:`training.streamable.export`), then the validation images are restored both by torch
and by the spec; the export fails unless their mean PSNR differs by less than ``--tolerance``
dB. The file's provenance records the commands, git commit, date, data and both results::

    python -m training.export --checkpoint runs/denoise_gam/final.pt \\
        --data data/photos/val --out models/denoise.gamir
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import datetime
import shlex
import subprocess
import sys
from pathlib import Path

import spec

from .checkpoint import describe_position, finished, load_run
from .errors import TrainingError
from .eval import net_costs, score, spec_restore, torch_restore
from .streamable import export
from .tasks import TASKS, validation_pairs

__all__ = ["main", "export_checked"]


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export_checked(checkpoint: Path, val_dir: Path, tolerance: float = 0.05,
                   command: str = "", unfinished: bool = False) -> tuple[spec.Model, dict]:
    """Export a run and compare spec vs torch on ``val_dir``; raises ``ModelError`` if they differ.

    A checkpoint that stops before the end of its plan (``stage2.pt``, an interrupted
    ``last.pt``) never trained the deployed network and is refused unless ``unfinished``.
    """
    try:
        net, state = load_run(checkpoint)
    except (FileNotFoundError, TrainingError):
        raise
    except Exception as e:  # noqa: BLE001 - the state dict fails to fit in many ways
        raise spec.ModelError(f"checkpoint {str(checkpoint)!r} is not a gamir training run "
                              f"({type(e).__name__}: {e})") from None
    if not finished(state) and not unfinished:
        raise TrainingError(f"{checkpoint} stops at {describe_position(state)}: its network is not "
                            f"the trained one (export final.pt, or pass --unfinished to export it anyway)")
    if state["method"] == "fp":
        raise spec.ModelError(f"{checkpoint} is a full-precision run; only binary runs export")
    task = state["meta"]["task"]
    sigma = TASKS[task]["val_sigma"]
    pairs = validation_pairs(task, val_dir, sigma=sigma)
    model = export(net, task, f"{task}-{state['method']}", noise_level=sigma)
    got_torch = score(torch_restore(net), pairs)
    got_spec = score(spec_restore(model), pairs)
    diff = abs(got_torch["psnr"] - got_spec["psnr"])
    if diff >= tolerance:
        raise spec.ModelError(f"exported model differs from torch by {diff:.3f} dB mean PSNR "
                              f"(tolerance {tolerance} dB)")
    model.provenance = {
        "export_command": command,
        "train_command": state["meta"].get("command", ""),
        "train_config": state.get("config") or {},
        "method": state["method"],
        "steps": state["steps"],
        "train_minutes": round(state["elapsed"] / 60, 1),
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": {"train": state["meta"].get("data", ""), "validation": str(val_dir),
                 "degradation": f"{task} (training.data.degrade), sigma {sigma}" if sigma else task},
        "metrics": {"spec_psnr": round(got_spec["psnr"], 3), "spec_ssim": round(got_spec["ssim"], 4),
                    "torch_psnr": round(got_torch["psnr"], 3), "images": got_spec["images"]},
        "costs": net_costs(net, task),
    }
    return model, got_spec


def _check_paths(a) -> None:
    """The paths, checked before torch loads: a bad one must not cost the export's minutes."""
    if not a.checkpoint.is_file():
        what = "is a folder" if a.checkpoint.is_dir() else "does not exist"
        raise cli.CliError(f"checkpoint {str(a.checkpoint)!r} {what} (train with "
                           f"python -m training.train; it writes RUN/final.pt)")
    if not a.data.is_dir():
        raise cli.CliError(f"--data {str(a.data)!r} is not a folder of validation images")
    if a.out.suffix != ".gamir":
        raise cli.CliError(f"--out {str(a.out)!r}: model files are named NAME.gamir")
    if a.out.is_dir():
        raise cli.CliError(f"--out {str(a.out)!r} is a folder: give a file name NAME.gamir")


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m training.export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="run checkpoint (final.pt)")
    p.add_argument("--data", type=Path, required=True, help="folder of clean validation images")
    p.add_argument("--out", type=Path, required=True, help="model file to write (.gamir)")
    p.add_argument("--tolerance", type=cli.positive_float, default=0.05,
                   help="max mean PSNR gap spec vs torch (dB)")
    p.add_argument("--unfinished", action="store_true",
                   help="export a checkpoint that stops before the end of its plan (e.g. stage2.pt)")
    a = p.parse_args(argv)
    return cli.run(lambda: _main(a, argv), errors=(OSError, spec.ModelError))


def _main(a, argv) -> int:
    _check_paths(a)
    import torch

    torch.set_num_threads(1)
    cmd = "python -m training.export " + " ".join(shlex.quote(s) for s in (argv or sys.argv[1:]))
    model, got = export_checked(a.checkpoint, a.data, a.tolerance, cmd, a.unfinished)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    spec.save(model, a.out)
    m = model.provenance["metrics"]
    print(f"wrote {a.out}: spec PSNR {m['spec_psnr']:.2f} dB SSIM {m['spec_ssim']:.4f} "
          f"(torch {m['torch_psnr']:.2f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
