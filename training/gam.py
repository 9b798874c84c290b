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
``ckpt_every`` steps, at each stage end (also kept as ``OUT/stage<k>.pt``) and when SIGINT or
SIGTERM stops the run; starting again with the same ``OUT`` resumes from it, optimizer
included. The batches do not depend on where a run was interrupted: before step ``g`` the
sampler is reseeded from (seed, rank, g), so a resumed run draws what the uninterrupted one
would have, and every rank its own batches. Under ``torchrun`` (``WORLD_SIZE`` > 1) the network
is wrapped in DistributedDataParallel (gloo on CPU, nccl on GPUs); rank 0 validates, logs
(``OUT/log.csv``, TensorBoard) and saves. ``OUT/best.pt`` is the checkpoint of the best
validation PSNR in the plan's last stage (earlier GAM stages are not the deployed network).

``precision`` sets the arithmetic of the training steps (never of validation, the BatchNorm
re-estimation or the noise gain, which measure the deployed network in fp32): ``fp32``;
``tf32`` (CUDA: TensorFloat-32 convolutions and matmuls); ``bf16`` (CUDA: autocast to
bfloat16, whose 8-bit significand does not hold the 10-bit residual stream: opt-in only).
``compile`` runs the training forward and backward through ``torch.compile`` (CUDA, with CUDA
graphs: ``mode="reduce-overhead"``). :meth:`Trainer.calibrate` sizes the step budget to a time
budget by timing a few steps of each stage.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from gamir import cli
from spec import arith

from .binary import set_stage
from .errors import TrainingError
from .metrics import psnr
from .runlog import RunLog

__all__ = ["METHODS", "PRECISIONS", "plan", "resume_position", "Interrupted", "Trainer"]

METHODS = ("gam", "ste", "fp")
#: The training steps' arithmetic (``auto``: tf32 on CUDA, fp32 elsewhere; see the module docstring).
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
#: Batches that measure a noise-input network's gain per level at the end of a run.
GAIN_BATCHES = 100


def _has_noise_gain(net: nn.Module) -> bool:
    """Whether ``net`` takes a noise level and can scale its restoration by it (StreamNet)."""
    return hasattr(net, "calibrate_noise_gain") and bool(getattr(net, "config", {}).get("noise_channel"))


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
        raise ValueError(f"stage fractions {tuple(fracs)!r} must be four non-negative numbers summing to 1")
    ends = [round(steps * sum(fracs[:k + 1])) for k in range(4)]
    lengths = [e - s for s, e in zip([0] + ends[:-1], ends)]
    return [(k + 1, n) for k, n in enumerate(lengths) if n > 0]


def resume_position(state: dict, new: list) -> tuple[int, int]:
    """Where a run continues under plan ``new``: (stage index, step in it) from checkpoint ``state``.

    The budget may change where the stages already trained keep their lengths and the current
    stage is still running, or is the last and grows (a finished ``ste``/``fp`` run trained
    longer): then only the rest of the schedule changes. Anything else is a ``TrainingError``.
    """
    old, new = [tuple(s) for s in state["plan"]], [tuple(s) for s in new]
    idx, step = state["stage_index"], state["step"]
    if old == new:
        return idx, step
    if idx >= len(old) and state.get("opt") is not None:  # finished: reopen its last stage
        idx, step = len(old) - 1, old[-1][1]
    if (idx >= len(old) or old[:idx] != new[:idx] or idx >= len(new)
            or new[idx][0] != old[idx][0] or new[idx][1] < step):
        raise TrainingError(f"the stage plan {old} -> {new} changes stages already trained: keep "
                            f"--steps {sum(n for _, n in old)} and the --fracs, or train under another --out")
    return idx, step


class Interrupted(cli.Interrupted):
    """SIGINT or SIGTERM stopped the run (after saving, unless ``saved`` is None)."""

    def __init__(self, signum: int, saved: Path | None, where: str = ""):
        super().__init__(signum)
        self.saved = saved
        what = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
        if saved is None:
            self.args = (f"{what} again: stopped without saving",)
        else:
            self.args = (f"{what}: stopped at {where}; saved {saved} (run the same command to continue)",)


@contextmanager
def _stop_on_signals():
    """Turn the first SIGINT/SIGTERM into a request (``box[0]``), a second into ``Interrupted``."""
    box = [0]
    if threading.current_thread() is not threading.main_thread():
        yield box
        return

    def handler(signum, frame):
        if box[0]:
            raise Interrupted(signum, None)
        box[0] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield box
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def _tf32(on: bool):
    """TensorFloat-32 in CUDA convolutions and matmuls on or off (cudnn's default is on)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Trainer:
    """Train ``net`` with ``method`` on batches from ``sampler``; see the module docstring.

    Parameters
    ----------
    net : StreamNet or any module ``net(x, sigma)`` with GAM quantizers inside.
    sampler : callable returning (degraded, clean, sigma) batches in pixel units; with a
        ``reseed(step)`` method (:class:`training.data.PatchSampler`) resumed runs are exact.
    val : list of (name, degraded, clean, level): the validation images (may be empty).
    out : folder of the checkpoints and logs.
    config : the run's whole configuration (:func:`training.config.resolve`), kept in every
        checkpoint.
    bn_batches, gain_batches : batches that re-estimate the BatchNorm statistics and measure a
        noise-input network's gain per level (:meth:`calibrate_noise_gain`) after the last
        stage (0: off).
    precision : one of :data:`PRECISIONS` (``auto`` resolved by the device).
    compile : run the training steps through ``torch.compile`` (CUDA only).
    steps : may be None when :meth:`calibrate` sizes the budget before :meth:`run`.
    """

    def __init__(self, net: nn.Module, sampler, val, out: Path, method: str, steps: int,
                 lr: float = 1e-3, fracs=(0.3, 0.15, 0.15, 0.4), log_every: int = 50,
                 val_every: int = 500, ckpt_every: int = 200, name: str = "run", meta=None,
                 device: str | torch.device = "cpu", bn_batches: int = 100, config=None,
                 tensorboard: bool = True, gain_batches: int = GAIN_BATCHES,
                 precision: str = "auto", compile: bool = False):
        self.device = torch.device(device)
        self.net, self.sampler, self.val = net.to(self.device), sampler, val
        self.out = Path(out)
        self.method, self.lr, self.fracs = method, lr, tuple(fracs)
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} must be one of {', '.join(PRECISIONS)}")
        if precision == "auto":
            precision = "tf32" if self.device.type == "cuda" else "fp32"
        if self.device.type != "cuda" and (precision != "fp32" or compile):
            what = f"precision {precision}" if precision != "fp32" else "compile"
            raise ValueError(f"{what} needs a CUDA device, not {self.device}")
        self.precision = precision
        self.set_steps(steps)
        self.log_every, self.val_every, self.ckpt_every = log_every, val_every, ckpt_every
        self.bn_batches, self.tensorboard = bn_batches, tensorboard
        self.gain_batches = gain_batches
        self.name, self.meta, self.config = name, dict(meta or {}), config
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.model = net
        if self.world > 1:
            if not dist.is_initialized():
                dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if compile:
            self.model = torch.compile(self.model, mode="reduce-overhead")
        if method == "fp" and hasattr(net, "set_quant"):
            net.set_quant(False)
        self.val_psnr = float("nan")
        self.best_psnr = float("-inf")

    def set_steps(self, steps: int | None) -> None:
        """The step budget (None: not yet sized; :meth:`calibrate` does)."""
        self.steps = steps
        self.plan = None if steps is None else plan(self.method, steps, self.fracs)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def calibrate(self, seconds: float, warm: int = 2, timed: int = 5) -> dict:
        """Size the budget to ``seconds`` of wall time and set it; returns what was measured.

        Times ``warm`` + ``timed`` training steps in each GAM stage the method trains (the warm
        ones include ``torch.compile``'s work, paid once per stage in the run as well), one
        forward-only batches and one validation pass, and then takes the most steps whose
        stages (in the ``fracs`` proportions), validations (every ``val_every`` steps and at
        each stage end), warm-ups and the closing BatchNorm and noise-gain batches (forward
        only) fit the time left. The network's weights, statistics and stage are restored afterwards;
        every rank runs the same steps and takes the slowest rank's times.
        """
        t0 = time.perf_counter()
        shares = ({1: 1.0} if self.method == "fp" else {4: 1.0} if self.method == "ste"
                  else dict(zip((1, 2, 3, 4), self.fracs)))
        stages = [k for k, share in shares.items() if share > 0]
        saved = copy.deepcopy(self.net.state_dict())
        self.net.train()
        times = []
        for stage in stages:
            set_stage(self.net, stage)
            opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
            for i in range(warm + timed):
                if i == warm:
                    self._sync()
                    t = time.perf_counter()
                x, y, sigma = self._batch(i)
                self._step(opt, x, y, sigma)
            self._sync()
            times.append((time.perf_counter() - t) / timed)
        t = time.perf_counter()
        with torch.no_grad():  # the closing BatchNorm and noise-gain batches: forward only
            for i in range(timed):
                x, _, sigma = self._batch(i)
                self.net(x, sigma)
        self._sync()
        forward = (time.perf_counter() - t) / timed
        self.net.load_state_dict(saved)
        set_stage(self.net, 1)
        t = time.perf_counter()
        if self.rank == 0:
            self.validate()
        val_s = time.perf_counter() - t
        spent = time.perf_counter() - t0
        measured = torch.tensor([*times, forward, val_s, spent], dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(measured, op=dist.ReduceOp.MAX)
        *times, forward, val_s, spent = measured.tolist()
        per_step = sum(shares[s] * t for s, t in zip(stages, times))
        warmups = spent - val_s - timed * (sum(times) + forward)  # the warm steps' compile and start cost
        fixed = len(stages) * val_s + warmups + (self.bn_batches + self.gain_batches) * forward
        left = seconds - spent - fixed
        steps = math.floor(left / (per_step + val_s / self.val_every))
        if steps < 1:
            raise TrainingError(f"the time budget is too short: {spent:.0f} s went to calibrating, "
                                f"a validation takes {val_s:.1f} s and a step {per_step:.2f} s "
                                f"(give more minutes, or --val-crop to validate faster)")
        self.set_steps(steps)
        return {"sec_per_step": dict(zip(map(str, stages), times)), "forward_s": forward,
                "validation_s": val_s, "calibration_s": spent, "steps": steps}

    def _step(self, opt, x, y, sigma) -> torch.Tensor:
        """One optimizer step on a batch in the run's precision; the loss (not synchronized)."""
        with _tf32(self.precision == "tf32"):
            with torch.autocast("cuda", torch.bfloat16, enabled=self.precision == "bf16"):
                out = self.model(x, sigma)
                loss = (out.float() - y).abs().mean() / 255.0
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return loss.detach()

    # ------------------------------------------------------------------ checkpoints
    def _state(self, idx: int, step: int, opt, sched, elapsed: float) -> dict:
        return {
            "name": self.name, "method": self.method, "steps": self.steps, "plan": self.plan,
            "stage_index": idx, "step": step, "elapsed": elapsed, "val_psnr": self.val_psnr,
            "best_psnr": self.best_psnr, "config": self.config,
            "net_config": getattr(self.net, "config", {}), "meta": self.meta,
            "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "opt": opt.state_dict() if opt else None,
            "sched": sched.state_dict() if sched else None,
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

    def _resume(self) -> dict | None:
        """Load ``OUT/last.pt`` into the network if it exists; its state (None if not), with
        ``stage_index``/``step`` set to where this run's plan continues."""
        from .checkpoint import describe_position, load_weights, read_checkpoint

        last = self.out / "last.pt"
        if not last.exists():
            return None
        state = read_checkpoint(last)
        idx, step = resume_position(state, self.plan)
        load_weights(self.net, state)
        self.val_psnr = state.get("val_psnr", float("nan"))
        self.best_psnr = state.get("best_psnr", float("-inf"))
        command = self.meta.get("command")
        self.meta = dict(state["meta"])  # the run's provenance: its first command, then resumes
        if command and command != self.meta.get("command"):
            self.meta["resumed_by"] = [*self.meta.get("resumed_by", []), command]
        budget = sum(n for _, n in self.plan)
        change = f" (budget {state['steps']} -> {budget} steps)" if budget != state["steps"] else ""
        self._log(f"resumed from {last}: {describe_position(state)}{change}")
        return dict(state, stage_index=idx, step=step)

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def validate(self) -> float:
        if not self.val:
            return float("nan")
        self.net.eval()
        scores = []
        with _tf32(False):  # the deployed arithmetic, whatever the training steps use
            for _, d, c, level in self.val:
                x = torch.from_numpy(d).permute(2, 0, 1)[None].float().to(self.device)
                y = self.net(x, torch.tensor([float(level)], device=self.device))
                y = torch.clamp(torch.floor(y[0] + 0.5), 0, 255).permute(1, 2, 0).to(torch.uint8).cpu().numpy()
                scores.append(psnr(y, c))
        self.net.train()
        return float(np.mean(scores))

    def _batch(self, step: int):
        if hasattr(self.sampler, "reseed"):
            self.sampler.reseed(step)
        return (t.to(self.device, non_blocking=True) for t in self.sampler())

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
        total = sum(n for _, n in self.plan)
        with _tf32(False):
            for i in range(self.bn_batches):
                x, _, sigma = self._batch(total + i)
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

    @torch.no_grad()
    def calibrate_noise_gain(self, state: dict) -> dict:
        """Measure the network's noise gain per level 0..(the training range's top) on
        ``gain_batches`` batches with levels drawn over that range
        (:meth:`training.streamable.StreamNet.calibrate_noise_gain`). Done once per run, after
        the BatchNorm statistics; a finished run without it gets it when its command runs again.
        """
        top = int(self.sampler.sigma_range[1])
        sampler = copy.copy(self.sampler)
        sampler.sigma_range = (0, top)
        first = sum(n for _, n in self.plan) + self.bn_batches
        set_stage(self.net, self.plan[-1][0])
        self.net.eval()

        def batches():
            for i in range(self.gain_batches):
                sampler.reseed(first + i)
                yield tuple(t.to(self.device) for t in sampler())

        with _tf32(False):
            gain = self.net.calibrate_noise_gain(batches(), top + 1)
        before = self.val_psnr
        self.val_psnr = self.validate()
        shown = ", ".join(f"{lv}: {int(gain[lv]) / arith.GAIN_ONE:.2f}"
                          for lv in sorted({0, 1, 2, 5, 10, top // 2, top}) if lv <= top)
        self._log(f"noise gain measured over {self.gain_batches} batches (level: gain {shown}): "
                  f"val PSNR {before:.2f} -> {self.val_psnr:.2f} dB")
        state = dict(state, noise_gain=[int(g) for g in gain], val_psnr=self.val_psnr)
        self._save(state, "last.pt")
        return state

    def _mean_over_ranks(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def _stop_requested(self, box: list) -> int:
        """The signal that asked to stop, agreed by every rank (all stop at the same step)."""
        if self.world == 1:
            return box[0]
        t = torch.tensor([box[0]], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def run(self) -> dict:
        """Train to the end of the plan (resuming from ``OUT/last.pt``); returns the final state.

        Raises :class:`Interrupted` after saving when SIGINT or SIGTERM arrives.
        """
        resume = self._resume()
        start_idx, start_step, elapsed = 0, 0, 0.0
        if resume is not None:
            start_idx, start_step, elapsed = resume["stage_index"], resume["step"], resume["elapsed"]
        total = sum(n for _, n in self.plan)
        done_before = sum(n for _, n in self.plan[:start_idx]) + start_step
        log = RunLog(self.out, done_before, self.tensorboard) if self.rank == 0 else None
        t_run, steps_run, losses = time.time(), 0, []
        state = resume
        self.net.train()
        try:
            with _stop_on_signals() as signalled:
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
                        g = done_before + steps_run + 1  # the global step this one completes
                        x, y, sigma = self._batch(g - 1)
                        lr = opt.param_groups[0]["lr"]
                        losses.append(self._step(opt, x, y, sigma))
                        sched.step()
                        steps_run += 1
                        end = step + 1 == n
                        now = elapsed + time.time() - t_run
                        validated = g % self.val_every == 0 or end
                        best = False
                        validated = validated and bool(self.val)
                        if validated and self.rank == 0:
                            self.val_psnr = self.validate()
                            best = idx == len(self.plan) - 1 and self.val_psnr > self.best_psnr
                            if best:
                                self.best_psnr = self.val_psnr
                        if g % self.log_every == 0 or end or validated:
                            mean = self._mean_over_ranks(float(torch.stack(losses).mean()))
                            losses = []
                            self._progress(log, g, total, stage, step + 1, n, mean, lr,
                                           self.val_psnr if validated else None, best,
                                           (time.time() - t_run) / steps_run, now)
                        stop = self._stop_requested(signalled)
                        ckpt = end or g % self.ckpt_every == 0 or stop
                        if ckpt or best:  # best is rank 0's alone: no barrier for it
                            nxt = (idx + 1, 0) if end else (idx, step + 1)
                            state = self._state(*nxt, opt, sched, now)
                            names = (["last.pt"] if ckpt else []) + ([f"stage{stage}.pt"] if end else [])
                            self._save(state, *names, *(["best.pt"] if best else []))
                        if ckpt and self.world > 1:
                            dist.barrier()
                        if stop:
                            from .checkpoint import describe_position
                            raise Interrupted(stop, self.out / "last.pt", describe_position(state))
        finally:
            if log is not None:
                log.close()
        if state is not None and self.bn_batches and not state.get("bn_recalibrated"):
            state = self.recalibrate_bn(state)
        if (state is not None and self.gain_batches and state.get("noise_gain") is None
                and _has_noise_gain(self.net)):
            state = self.calibrate_noise_gain(state)
        self._log(f"done: {total} steps, val PSNR {self.val_psnr:.2f} dB, "
                  f"{(state or {}).get('elapsed', 0) / 60:.1f} min of training")
        return state

    def _progress(self, log, g, total, stage, step, n, loss, lr, val, best, per, elapsed) -> None:
        """One progress line and the same numbers as a row of the run's logs (rank 0)."""
        if self.rank != 0:
            return
        where = f"step {g}/{total}"
        if self.method == "gam":
            where += f" (stage {stage}/4 step {step}/{n})"
        msg = f"{where} loss {loss:.5f} lr {lr:.2e}"
        if val is not None:
            msg += f" val PSNR {val:.2f} dB" + (" (best)" if best else "")
        self._log(f"{msg}  {per:.2f} s/step  ETA {_clock(per * (total - g))}")
        log.write(step=g, stage=stage, loss=loss, lr=lr, val_psnr=val, sec_per_step=per,
                  elapsed_s=elapsed)
