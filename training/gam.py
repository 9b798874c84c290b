"""GAM, the Gentle Approximation Method, as a resumable (and distributed) trainer.

Methods
-------
``gam``
    The four stages of Wang et al. (ACML 2023), each continuing from the previous stage's
    weights: 1 full precision with tanh activations, 2 binary weights (clip STE), 3 binary
    weights + SB(x) = tanh(10x) activations, 4 the full BNN (``|x| <= 1`` STE). Stage lengths
    are fractions of the total step budget (``fracs``).
``ste``
    The plain baseline: the full BNN (stage 4) from scratch for the same total budget.
``fp``
    Stage 1 for the whole budget with the fixed-point fake quantization off: the
    full-precision network of the same architecture.

Each stage gets a fresh Adam and a cosine learning-rate decay. ``OUT/last.pt`` is written every
``ckpt_every`` steps and at each stage end (also kept as ``OUT/stage<k>.pt``); starting again
with the same ``OUT`` resumes from it, optimizer and random state included. Under ``torchrun``
(``WORLD_SIZE`` > 1) the network is wrapped in DistributedDataParallel (gloo on CPU, nccl on
GPUs); every rank draws its own patches, rank 0 validates, logs and saves.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .binary import set_stage
from .metrics import psnr

__all__ = ["METHODS", "plan", "Trainer"]

METHODS = ("gam", "ste", "fp")


def plan(method: str, steps: int, fracs=(0.3, 0.15, 0.15, 0.4)) -> list[tuple[int, int]]:
    """[(stage, steps)] of a run; GAM stage lengths are ``fracs`` of ``steps`` (sum 1)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {', '.join(METHODS)}")
    if steps < 1:
        raise ValueError(f"steps={steps!r} must be at least 1")
    if method == "ste":
        return [(4, steps)]
    if method == "fp":
        return [(1, steps)]
    if len(fracs) != 4 or abs(sum(fracs) - 1) > 1e-6 or min(fracs) < 0:
        raise ValueError(f"stage fractions {fracs!r} must be four non-negative numbers summing to 1")
    ends = [round(steps * sum(fracs[:k + 1])) for k in range(4)]
    lengths = [e - s for s, e in zip([0] + ends[:-1], ends)]
    return [(k + 1, n) for k, n in enumerate(lengths) if n > 0]


class Trainer:
    """Train ``net`` with ``method`` on batches from ``sampler``; see the module docstring.

    Parameters
    ----------
    net : StreamNet or any module ``net(x, sigma)`` with GAM quantizers inside.
    sampler : callable returning (degraded, clean, sigma) batches in pixel units.
    val : list of (name, degraded, clean, level) for the progress PSNR (may be empty).
    out : folder of the checkpoints.
    """

    def __init__(self, net: nn.Module, sampler, val, out: Path, method: str, steps: int,
                 lr: float = 1e-3, fracs=(0.3, 0.15, 0.15, 0.4), log_every: int = 50,
                 val_every: int = 500, ckpt_every: int = 200, name: str = "run", meta=None,
                 device: str | torch.device = "cpu", bn_batches: int = 100):
        self.device = torch.device(device)
        self.net, self.sampler, self.val = net.to(self.device), sampler, val
        self.out = Path(out)
        self.method, self.steps, self.lr = method, steps, lr
        self.plan = plan(method, steps, fracs)
        self.log_every, self.val_every, self.ckpt_every = log_every, val_every, ckpt_every
        self.bn_batches = bn_batches
        self.name, self.meta = name, meta or {}
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.model = net
        if self.world > 1:
            if not dist.is_initialized():
                dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if method == "fp" and hasattr(net, "set_quant"):
            net.set_quant(False)
        self.val_psnr = float("nan")

    # ------------------------------------------------------------------ checkpoints
    def _state(self, idx: int, step: int, opt, sched, elapsed: float) -> dict:
        return {
            "name": self.name, "method": self.method, "steps": self.steps, "plan": self.plan,
            "stage_index": idx, "step": step, "elapsed": elapsed, "val_psnr": self.val_psnr,
            "net_config": getattr(self.net, "config", {}), "meta": self.meta,
            "model": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "opt": opt.state_dict() if opt else None,
            "sched": sched.state_dict() if sched else None,
            "rng": {"numpy": getattr(self.sampler, "rng", np.random.default_rng()).bit_generator.state,
                    "torch": torch.get_rng_state()},
        }

    def _save(self, state: dict, *names: str) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        for n in names:
            tmp = self.out / (n + ".tmp")
            torch.save(state, tmp)
            os.replace(tmp, self.out / n)

    def _log(self, msg: str) -> None:
        if self.rank == 0:
            print(f"[{self.name}] {msg}", flush=True)

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def validate(self) -> float:
        if not self.val:
            return float("nan")
        self.net.eval()
        scores = []
        for _, d, c, level in self.val:
            x = torch.from_numpy(d).permute(2, 0, 1)[None].float().to(self.device)
            y = self.net(x, torch.tensor([float(level)], device=self.device))
            y = torch.clamp(torch.floor(y[0] + 0.5), 0, 255).permute(1, 2, 0).to(torch.uint8).cpu().numpy()
            scores.append(psnr(y, c))
        self.net.train()
        return float(np.mean(scores))

    @torch.no_grad()
    def recalibrate_bn(self, state: dict) -> dict:
        """Re-estimate every BatchNorm's statistics as a plain mean over ``bn_batches`` batches.

        The running averages of training follow the last few hundred noisy steps; the deployed
        network folds them into its integer affine layers, so they are measured once more on
        the final weights (+0.1..0.15 dB on the binary denoisers). Done once per run, after
        the last stage; a finished run without it gets it when its command runs again.
        """
        norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return state
        momenta = [m.momentum for m in norms]
        set_stage(self.net, self.plan[-1][0])  # a resumed finished run starts at stage 1
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.net.train()
        for _ in range(self.bn_batches):
            x, _, sigma = (t.to(self.device) for t in self.sampler())
            self.net(x, sigma)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        before = self.val_psnr
        self.val_psnr = self.validate()
        self._log(f"BatchNorm statistics re-estimated over {self.bn_batches} batches: "
                  f"val PSNR {before:.2f} -> {self.val_psnr:.2f} dB")
        state = dict(state, model={k: v.cpu() for k, v in self.net.state_dict().items()},
                     val_psnr=self.val_psnr, bn_recalibrated=True)
        self._save(state, "last.pt")
        return state

    def run(self) -> dict:
        """Train to the end of the plan (resuming if ``OUT/last.pt`` exists); returns the final state."""
        start_idx, start_step, elapsed, resume = 0, 0, 0.0, None
        last = self.out / "last.pt"
        if last.exists():
            resume = torch.load(last, map_location="cpu", weights_only=False)
            if resume["plan"] != self.plan:
                raise ValueError(f"{last} was written by a run with plan {resume['plan']}, "
                                 f"not {self.plan}: use another --out or the same budget")
            self.net.load_state_dict(resume["model"])
            start_idx, start_step, elapsed = resume["stage_index"], resume["step"], resume["elapsed"]
            self.val_psnr = resume.get("val_psnr", float("nan"))
            if hasattr(self.sampler, "rng"):
                self.sampler.rng.bit_generator.state = resume["rng"]["numpy"]
            torch.set_rng_state(resume["rng"]["torch"])
            self._log(f"resumed from {last} at stage index {start_idx} step {start_step}")
        total = sum(n for _, n in self.plan)
        done_before = sum(n for _, n in self.plan[:start_idx]) + start_step
        t_run, steps_run = time.time(), 0
        state = resume
        self.net.train()
        for idx in range(start_idx, len(self.plan)):
            stage, n = self.plan[idx]
            set_stage(self.net, stage)
            opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s, n=n: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(s, n) / n)))
            first = start_step if idx == start_idx else 0
            if resume is not None and idx == start_idx and resume["opt"] is not None and first > 0:
                opt.load_state_dict(resume["opt"])
                sched.load_state_dict(resume["sched"])
            for step in range(first, n):
                x, y, sigma = (t.to(self.device, non_blocking=True) for t in self.sampler())
                out = self.model(x, sigma)
                loss = (out - y).abs().mean() / 255.0
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                steps_run += 1
                g = done_before + steps_run
                now = elapsed + time.time() - t_run
                if (step + 1) % self.val_every == 0 or step + 1 == n:
                    self.val_psnr = self.validate()
                if (step + 1) % self.log_every == 0 or step + 1 == n:
                    per = (time.time() - t_run) / steps_run
                    eta = time.strftime("%H:%M:%S", time.gmtime(per * (total - g)))
                    self._log(f"stage {stage}/4 step {step + 1}/{n} ({g}/{total}) loss {loss.item():.5f} "
                              f"val PSNR {self.val_psnr:.2f} dB  {per:.2f} s/step  ETA {eta}")
                end = step + 1 == n
                if end or (step + 1) % self.ckpt_every == 0:
                    nxt = (idx + 1, 0) if end else (idx, step + 1)
                    state = self._state(*nxt, None if end else opt, None if end else sched, now)
                    self._save(state, "last.pt", *([f"stage{stage}.pt"] if end else []))
                    if self.world > 1:
                        dist.barrier()
        if state is not None and self.bn_batches and not state.get("bn_recalibrated"):
            state = self.recalibrate_bn(state)
        self._log(f"done: {total} steps, val PSNR {self.val_psnr:.2f} dB, "
                  f"{(state or {}).get('elapsed', 0) / 60:.1f} min of training")
        return state
