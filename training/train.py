"""``python -m training.train``: train a streamable network for one task with GAM or a baseline.

Example (the shipped denoiser)::

    python -m training.train --task denoise --method gam --steps 15000 --batch 32 \\
        --data data/photos --out runs/denoise_gam

or the same settings from a TOML file (``--config run.toml``; flags override the file; see
``training.config``). ``--data`` holds ``train/`` and ``val/`` folders of clean photos
(``python -m training.gather_data`` makes them). The whole configuration is written to
``OUT/config.toml`` and into every checkpoint. Running again into an existing ``OUT``
continues it (a notice says from where) when the settings match, and refuses otherwise,
naming the differences; only the budget (``--steps``) and the settings that do not change
the trained network (intervals, threads, device, precision, compile) may differ. ``--resume
--out OUT`` continues a run with its own stored settings. Ctrl-C or SIGTERM saves
``OUT/last.pt`` and exits.

``--minutes N`` gives the budget in time instead of steps: a short calibration (a few steps of
each GAM stage and one validation) sizes ``--steps`` so that the run, its validations and its
closing measurements fit N minutes from the start of the command; both are recorded in
``OUT/config.toml`` (the measured rates in the checkpoints' ``meta.calibration``), so running
the same command again continues the same schedule.

Under ``torchrun`` the run uses DistributedDataParallel: ``--batch`` is per process, so the
effective batch is ``--batch`` x processes::

    torchrun --nproc-per-node 2 -m training.train --task denoise --batch 16 ...

``OUT/final.pt`` is the trained network, ready for ``python -m training.eval`` and
``python -m training.export``; ``OUT/log.csv`` (and ``OUT/tb/`` with TensorBoard installed)
hold the progress numbers.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from .config import DEFAULTS, NET_KEYS, differences, legacy_config, read_toml, resolve, to_toml
from .errors import SettingsError, TrainingError
from .gam import METHODS, PRECISIONS, Interrupted, plan, resume_position
from .tasks import TASKS

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = cli.ArgumentParser(prog="python -m training.train",
                           description="Train a streamable network for one task with GAM or a baseline.",
                           epilog="Flags left out take their value from --config, else the default shown.")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML file of settings (keys are these flags' names)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its stored settings (flags may change "
                        "the budget and the intervals, threads and device)")
    p.add_argument("--task", choices=sorted(TASKS), help="what to train for (required)")
    p.add_argument("--method", choices=METHODS,
                   help=f"gam (4 stages), ste (plain BNN from scratch), fp (full precision) (default: {d['method']})")
    p.add_argument("--steps", type=cli.positive_int, help=f"total optimizer steps, the budget (default: {d['steps']})")
    p.add_argument("--minutes", type=cli.positive_float,
                   help="the budget in wall-clock minutes instead of --steps: the steps are sized "
                        "by a short calibration on this machine and recorded")
    p.add_argument("--fracs", type=float, nargs=4, metavar=("S1", "S2", "S3", "S4"),
                   help="GAM stage lengths as fractions of --steps (default: "
                        + " ".join(map(str, d["fracs"])) + ")")
    p.add_argument("--data", type=Path, metavar="DIR", help="folder with train/ and val/ photos (required)")
    p.add_argument("--out", type=Path, metavar="DIR", help="run folder: config, checkpoints, logs (required)")
    p.add_argument("--batch", type=cli.positive_int, help=f"patches per step and process (default: {d['batch']})")
    p.add_argument("--patch", type=cli.positive_int, help="clean patch size (default: the task's, 64)")
    p.add_argument("--sigma", type=cli.natural_int, nargs=2, metavar=("LO", "HI"),
                   help="denoise: the noise levels trained on, uniform over LO..HI (pixel units; "
                        "default: the task's, denoise %d..%d)" % TASKS["denoise"]["sigma_range"])
    p.add_argument("--lr", type=cli.positive_float, help=f"Adam learning rate at each stage start (default: {d['lr']})")
    net = p.add_argument_group("network (default: the task's preset, training.tasks)")
    net.add_argument("--width", type=cli.positive_int, help="channels of the binary body")
    net.add_argument("--blocks", type=cli.positive_int, help="binary layers")
    net.add_argument("--unshuffle", type=cli.positive_int,
                     help="host pixel unshuffle, the body's resolution divisor (tasks that "
                          "shuffle back by the same factor follow it)")
    net.add_argument("--w-bits", type=cli.positive_int, help="head/tail weight bits")
    net.add_argument("--stream-bits", type=cli.positive_int, help="residual stream bits")
    net.add_argument("--frac-bits", type=cli.natural_int, help="the stream's fraction bits")
    net.add_argument("--head-kernel", type=int, choices=(1, 3), help="fixed head kernel (1 cuts its multipliers by 9)")
    net.add_argument("--tail-kernel", type=int, choices=(1, 3), help="fixed tail kernel")
    net.add_argument("--head-mid", type=cli.natural_int,
                     help="channels of a linear bottleneck in the head (3x3 to MID, 1x1 to the stream); 0: none")
    net.add_argument("--tail-mid", type=cli.natural_int,
                     help="channels of a linear bottleneck in the tail (1x1 to MID, then the tail); 0: none")
    net.add_argument("--head-dw", action="store_true", default=None,
                     help="depthwise-separable head: a 1x1 conv to the stream, then a depthwise 3x3")
    net.add_argument("--tail-dw", action="store_true", default=None,
                     help="depthwise-separable tail: a depthwise 3x3 on the stream, then a 1x1 conv")
    net.add_argument("--act", choices=("none", "rprelu"),
                     help="binary layers' activation after the norm: none, or rprelu (a per-channel "
                          "power-of-two RPReLU, the spec's affine activation)")
    p.add_argument("--bn-batches", type=cli.natural_int,
                   help=f"batches that re-estimate the BatchNorm statistics after the last stage "
                        f"(0: off) (default: {d['bn_batches']})")
    p.add_argument("--seed", type=cli.natural_int, help=f"initialization and batch seed (default: {d['seed']})")
    run = p.add_argument_group("running (may change when a run is continued)")
    run.add_argument("--threads", type=cli.positive_int,
                     help=f"torch CPU threads per process (default: {d['threads']})")
    run.add_argument("--device", help="torch device: cpu, cuda, cuda:N (under torchrun cuda means "
                                      f"cuda:LOCAL_RANK) (default: {d['device']})")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="training steps' arithmetic: fp32, tf32 or bf16 (CUDA only; validation "
                          f"stays fp32); auto: tf32 on CUDA, fp32 on the CPU (default: {d['precision']})")
    run.add_argument("--compile", action="store_true", default=None,
                     help="run the training steps through torch.compile with CUDA graphs (CUDA only)")
    run.add_argument("--log-every", type=cli.positive_int,
                     help=f"steps between progress lines and log rows (default: {d['log_every']})")
    run.add_argument("--val-every", type=cli.positive_int,
                     help=f"steps between validations (and at each stage end) (default: {d['val_every']})")
    run.add_argument("--val-crop", type=cli.natural_int,
                     help="validate on the centre CROP x CROP of each validation photo; "
                          f"0: whole photos (default: {d['val_crop']})")
    run.add_argument("--ckpt-every", type=cli.positive_int,
                     help=f"steps between checkpoints (OUT/last.pt) (default: {d['ckpt_every']})")
    return p


def _settings(a: argparse.Namespace, stored: dict | None) -> dict:
    """The run's resolved configuration: stored (with --resume) < --config file < flags.

    A budget in minutes that a stored run was sized for takes that run's steps."""
    raw = dict(stored or {}) if a.resume else {}
    raw["net"] = dict(raw.get("net", {}))
    given = {}
    if a.config:
        given = read_toml(a.config)
        raw["net"].update(given.pop("net", {}))
    for k in DEFAULTS:
        v = getattr(a, k, None)
        if v is not None and k != "net":
            given[k] = ([float(f) for f in v] if k == "fracs" else list(v) if k == "sigma"
                        else str(v) if isinstance(v, Path) else v)
    raw.update(given)
    raw["net"].update({k: getattr(a, k) for k in NET_KEYS if getattr(a, k, None) is not None})
    if given.get("steps") is not None and given.get("minutes") is not None:
        raise SettingsError("--steps and --minutes: give one budget, in steps or in minutes")
    if given.get("steps") is not None:
        raw["minutes"] = None
    elif given.get("minutes") is not None:
        if stored is None:
            raw["steps"] = None
        elif stored.get("minutes") == given["minutes"]:
            raw["steps"] = stored["steps"]
        else:
            was = (f"sized for {stored['minutes']:g} minutes" if stored.get("minutes") is not None
                   else "budgeted in steps")
            raise TrainingError(f"the run in {a.out or given.get('out')} was {was} "
                                f"({stored['steps']} steps): continue it with --resume, or "
                                f"change its budget with --steps")
    return resolve(raw)


def _prepare(a: argparse.Namespace, argv) -> tuple:
    """Everything checked before any work: settings, run folder, data; (config, meta, state)."""
    from .checkpoint import read_checkpoint

    out = a.out
    if out is None and a.config:
        out = read_toml(a.config).get("out")
    if out is None:
        raise SettingsError("--out is required (the run folder)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file, not a run folder")
    last = out / "last.pt"
    state = read_checkpoint(last) if last.exists() else None
    if a.resume and state is None:
        raise TrainingError(f"--resume: {out} holds no run to continue (no last.pt)")
    stored = None if state is None else (state.get("config") or legacy_config(state))
    cfg = _settings(a, stored)
    cfg["out"] = str(out)
    if state is not None:
        diffs = differences(stored, cfg)
        if diffs:
            raise TrainingError(f"{out} holds a run with other settings ({'; '.join(diffs)}): "
                                f"continue it as it was (--resume --out {out}) or train under another --out")
        try:
            resume_position(state, plan(cfg["method"], cfg["steps"], tuple(cfg["fracs"])))
        except TrainingError as e:
            raise TrainingError(f"{out}: {e}") from None
    cmd = "python -m training.train " + " ".join(shlex.quote(s) for s in (argv if argv is not None else sys.argv[1:]))
    meta = {"task": cfg["task"], "command": cmd, "data": cfg["data"], "batch": cfg["batch"],
            "patch": cfg["patch"], "lr": cfg["lr"], "seed": cfg["seed"]}
    return cfg, meta, state


def _run(p: argparse.ArgumentParser, a: argparse.Namespace, argv, started: float) -> int:
    import torch

    from .data import PatchSampler, read_folder
    from .gam import Trainer
    from .tasks import build_net, validation_pairs

    try:
        cfg, meta, state = _prepare(a, argv)
    except SettingsError as e:
        p.error(str(e))  # a value no run can take: a usage error (status 2)
    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    t = TASKS[cfg["task"]]
    data, out = Path(cfg["data"]), Path(cfg["out"])
    try:
        train = list(read_folder(data / "train").values())
        val = validation_pairs(cfg["task"], data / "val", crop=cfg["val_crop"] or None)
    except FileNotFoundError as e:
        raise TrainingError(f"{e} (make the photo folders with python -m training.gather_data)") from None
    net = build_net(cfg["task"], quant=True, **cfg["net"])
    device = torch.device(cfg["device"])
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    sampler = PatchSampler(train, cfg["task"], cfg["patch"], cfg["batch"], seed=(cfg["seed"], rank),
                           sigma_range=tuple(cfg["sigma"]), scale=t["scale"], device=device)
    trainer = Trainer(net, sampler, val, out, cfg["method"], cfg["steps"], lr=cfg["lr"],
                      fracs=tuple(cfg["fracs"]), log_every=cfg["log_every"],
                      val_every=cfg["val_every"], ckpt_every=cfg["ckpt_every"],
                      name=f"{cfg['task']} {cfg['method']}", meta=meta, device=device,
                      bn_batches=cfg["bn_batches"], config=cfg, precision=cfg["precision"],
                      compile=cfg["compile"])
    header = f"written by: {meta['command']}"
    measured = None if state is None else state.get("meta", {}).get("calibration")
    if cfg["steps"] is None:
        measured = trainer.calibrate(cfg["minutes"] * 60 - (time.monotonic() - started))
        cfg["steps"] = measured["steps"]
        trainer.meta["calibration"] = measured
    if measured is not None and cfg.get("minutes") is not None:
        rates = ", ".join(f"stage {k} {v:.3f}" for k, v in measured["sec_per_step"].items())
        header += (f"\nsteps sized for {cfg['minutes']:g} minutes: s/step {rates}; validation "
                   f"{measured['validation_s']:.1f} s; calibration {measured['calibration_s']:.1f} s")
        if rank == 0 and state is None:
            print(f"[{trainer.name}] budget {cfg['minutes']:g} min: {cfg['steps']} steps "
                  f"(s/step {rates}; validation {measured['validation_s']:.1f} s)", flush=True)
    if rank == 0:
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.toml").write_text(to_toml(cfg, header))
        except OSError as e:
            raise TrainingError(f"--out {out}: cannot write the run folder ({e.strerror or e})") from None
    final = trainer.run()
    if trainer.rank == 0 and final is not None:
        torch.save(final, out / "final.pt")
    return 0


def main(argv=None) -> int:
    """Exit status under :mod:`gamir.cli`: 1 for a bad file or run folder, 2 for a bad setting,
    130/143 after Ctrl-C/SIGTERM saved the run. Under torchrun only rank 0 prints errors."""
    started = time.monotonic()
    p = parser()
    a = p.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))

    def body() -> int:
        try:
            return _run(p, a, argv, started)
        except Interrupted as e:
            if rank == 0:
                print(f"error: {e}", file=sys.stderr)
            return cli.EXIT_SIGNAL[e.signum]
        except TrainingError:
            if rank == 0:
                raise
            return cli.EXIT_FAILED

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
