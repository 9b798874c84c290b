"""GAM trainer: stage transitions, resume, export through the spec, DDP on 2 gloo processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, io

import spec
from training.binary import STAGES, stage_quant
from training.data import PatchSampler
from training.checkpoint import load_run
from training.export import export_checked
from training.export import main as export_main
from training.errors import TrainingError
from training.gam import Trainer, plan
from training.streamable import StreamNet

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def _images():
    img = data.astronaut()
    return [img[:96, :96].copy(), img[200:296, 200:296].copy()]


def _net(**kw):
    torch.manual_seed(0)
    return StreamNet(width=8, blocks=2, unshuffle=2, shuffle=2, noise_channel=True, **kw)


def _sampler(seed=0, batch=2):
    return PatchSampler(_images(), "denoise", 16, batch, seed=seed, sigma_range=(15, 35))


def test_four_stages_binarize_weights_then_activations(tmp_path):
    net = _net()
    seen = []

    def hook(m, inputs):
        w = stage_quant(m.weight_quant, m.weight)
        a = stage_quant(m.input_quant, inputs[0])
        seen.append(((m.weight_quant, m.input_quant), bool(torch.all(w.abs() == 1)),
                     bool(torch.all(a.abs() == 1))))

    conv = net.blocks[0].conv
    conv.register_forward_pre_hook(hook)
    Trainer(net, _sampler(), [], tmp_path, "gam", 8, fracs=(0.25, 0.25, 0.25, 0.25),
            log_every=100, bn_batches=0, gain_batches=0).run()
    assert [s[0] for s in seen] == [STAGES[k] for k in (1, 1, 2, 2, 3, 3, 4, 4)]
    assert [s[1] for s in seen] == [False] * 2 + [True] * 6  # weights binary from stage 2
    assert [s[2] for s in seen] == [False] * 6 + [True] * 2  # activations binary in stage 4
    for k in (1, 2, 3, 4):
        assert (tmp_path / f"stage{k}.pt").exists()


def test_batchnorm_statistics_reestimated_once_after_the_last_stage(tmp_path):
    trained = Trainer(_net(), _sampler(), [], tmp_path, "ste", 4, log_every=100, bn_batches=0).run()
    assert not trained.get("bn_recalibrated")
    # Running the finished run's command again re-estimates the statistics, weights untouched.
    net = _net()
    inputs = []
    net.blocks[0].bn.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach().clone()))
    again = Trainer(net, _sampler(seed=5), [], tmp_path, "ste", 4, log_every=100, bn_batches=3).run()
    assert again["bn_recalibrated"] and len(inputs) == 3
    conv = net.blocks[0].conv  # measured in the deployed (last) stage, not the fresh net's first
    assert (conv.weight_quant, conv.input_quant) == STAGES[4]
    bn = {k[len("blocks.0.bn."):]: v for k, v in again["model"].items() if k.startswith("blocks.0.bn.")}
    want = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs]).mean(0)  # plain mean of batches
    assert torch.allclose(bn["running_mean"], want, atol=1e-5)
    assert not torch.allclose(bn["running_mean"], trained["model"]["blocks.0.bn.running_mean"])
    assert int(bn["num_batches_tracked"]) == 3
    for k, v in trained["model"].items():
        if ".bn.running" not in k and "num_batches" not in k:
            assert torch.equal(v, again["model"][k]), k
    assert net.blocks[0].bn.momentum == 0.1
    # Once only: a third run changes nothing.
    third = Trainer(_net(), _sampler(seed=9), [], tmp_path, "ste", 4, log_every=100, bn_batches=3).run()
    assert torch.equal(third["model"]["blocks.0.bn.running_mean"], bn["running_mean"])


def test_plan_budgets_and_errors():
    assert plan("gam", 10, (0.3, 0.2, 0.2, 0.3)) == [(1, 3), (2, 2), (3, 2), (4, 3)]
    assert plan("ste", 10) == [(4, 10)] and plan("fp", 10) == [(1, 10)]
    with pytest.raises(ValueError, match=r"^method='x' must be one of gam, ste, fp$"):
        plan("x", 10)


class _Interrupt(Exception):
    pass


class _Recording(PatchSampler):
    """A sampler that keeps every batch it draws and can stop the run at its ``stop_at``-th."""

    def __init__(self, stop_at: int = 0):
        super().__init__(_images(), "denoise", 16, 2, seed=0, sigma_range=(15, 35))
        self.drawn, self.stop_at = [], stop_at

    def __call__(self):
        if len(self.drawn) + 1 == self.stop_at:
            raise _Interrupt
        batch = super().__call__()
        self.drawn.append(batch)
        return batch


def test_resume_continues_where_it_stopped_with_the_same_batches(tmp_path):
    whole = _Recording()
    Trainer(_net(), whole, [], tmp_path / "whole", "gam", 8, ckpt_every=1, log_every=100,
            bn_batches=0, gain_batches=0).run()
    cut = _Recording(stop_at=5)  # interrupted while drawing step 5's batch
    with pytest.raises(_Interrupt):
        Trainer(_net(), cut, [], tmp_path / "cut", "gam", 8, ckpt_every=1, log_every=100,
                bn_batches=0, gain_batches=0).run()
    state = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    done = sum(n for _, n in state["plan"][:state["stage_index"]]) + state["step"]
    assert done == 4
    resumed = _Recording()
    Trainer(_net(), resumed, [], tmp_path / "cut", "gam", 8, log_every=100, bn_batches=0,
            gain_batches=0).run()
    final = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    assert final["stage_index"] == len(final["plan"]) and final["step"] == 0
    assert len(whole.drawn) == 8 and len(cut.drawn) + len(resumed.drawn) == 8
    for a, b in zip(whole.drawn, cut.drawn + resumed.drawn):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert len({float(b[1].sum()) for b in whole.drawn}) == 8  # every step its own batch
    ref = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(ref[k], v) for k, v in final["model"].items())


def test_calibration_sizes_the_budget_and_leaves_the_network_as_it_was(tmp_path):
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainer = Trainer(net, _sampler(), [], tmp_path, "gam", None, fracs=(0.4, 0.1, 0.1, 0.4),
                      val_every=10**6, bn_batches=0, gain_batches=0)
    got = trainer.calibrate(seconds=60)
    assert sorted(got["sec_per_step"]) == ["1", "2", "3", "4"]
    per = sum(f * t for f, t in zip((0.4, 0.1, 0.1, 0.4), got["sec_per_step"].values()))
    # The steps fill what the calibration left of the minute, less the warm-up steps' cost
    # (a few tens of milliseconds for this network).
    left = 60 - got["calibration_s"]
    assert left / 2 <= got["steps"] * per <= left
    assert trainer.steps == got["steps"] and trainer.plan == plan("gam", got["steps"], (0.4, 0.1, 0.1, 0.4))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert (net.blocks[0].conv.weight_quant, net.blocks[0].conv.input_quant) == STAGES[1]
    with pytest.raises(TrainingError, match="the time budget is too short"):
        trainer.calibrate(seconds=0.01)


def test_reduced_precision_and_compile_need_cuda(tmp_path):
    assert Trainer(_net(), _sampler(), [], tmp_path, "ste", 2).precision == "fp32"  # auto on the CPU
    for kw in ({"precision": "bf16"}, {"precision": "tf32"}, {"compile": True}):
        with pytest.raises(ValueError, match="needs a CUDA device"):
            Trainer(_net(), _sampler(), [], tmp_path, "ste", 2, **kw)


@pytest.mark.parametrize("kernel, mid, dw, act", [(3, 0, False, "none"), (1, 0, False, "none"),
                                                  (3, 3, False, "none"), (3, 0, True, "none"),
                                                  (3, 0, False, "rprelu")])
def test_export_matches_torch_through_the_spec(tmp_path, kernel, mid, dw, act):
    run = tmp_path / "run"
    net = _net(head_kernel=kernel, tail_kernel=kernel, head_mid=mid, tail_mid=mid, head_dw=dw,
               tail_dw=dw, act=act)
    state = Trainer(net, _sampler(), [], run, "gam", 8, log_every=100,
                    meta={"task": "denoise", "command": "test"}).run()
    if act == "rprelu":
        # A few training steps barely move the activation: give it every slope (2**0 and
        # 2**-7 included) and offsets before and after, so the export's folding is exercised.
        g = torch.Generator().manual_seed(1)
        for key in [k for k in state["model"] if ".act." in k]:
            v = state["model"][key]
            if key.endswith("kappa"):
                state["model"][key] = torch.tensor([0.0, 7.0, 3.4, 9.0, -1.0, 1.6, 5.5, 2.0])[:len(v)]
            else:
                state["model"][key] = torch.randn(v.shape, generator=g) * 0.3
    torch.save(state, run / "final.pt")
    val = tmp_path / "val"
    val.mkdir()
    for i, img in enumerate([data.chelsea()[:64, :96], data.coffee()[100:164, 100:180]]):
        io.imsave(val / f"v{i}.png", img, check_contrast=False)
    # The eval-mode network needs BN statistics that actually move the stream.
    model, got = export_checked(run / "final.pt", val, tolerance=0.05)
    assert model.steps.unshuffle == 2 and model.steps.noise_channel and model.input_channels == 13
    kinds = [(l.kind, l.kernel, l.groups, l.stage.name, getattr(l.stage, "residual", None))
             for l in model.layers]
    # The extra fixed layer of a bottleneck (1x1) or a separable end (depthwise 3x3, 8 groups).
    mix = [("fixed", 1, 1, "affine", None)] if mid else [("fixed", 3, 8, "affine", None)] if dw else []
    end = 1 if dw else kernel  # the kernel of the first and the last layer
    b = len(mix) + 1  # the layer before the first binary one
    assert kinds == ([("fixed", end, 1, "affine", None)] + mix
                     + [("binary", 3, 1, "affine", b), ("binary", 3, 1, "affine", b + 1)]
                     + mix + [("fixed", end, 1, "pixel", None)])
    assert [l.c_out for l in model.layers[:len(mix) + 1]] == [mid or 8] + [8] * len(mix)
    if dw:
        assert model.layers[1].weights.shape == (8, 3, 3, 1)
    acts = [l.stage.act for l in model.layers if isinstance(l.stage, spec.Affine)]
    assert acts == [None] + [None] * len(mix) + ["prelu" if act == "rprelu" else None] * 2 + [None] * len(mix)
    if act == "rprelu":
        assert model.layers[1].stage.act_shift.tolist() == [0, 7, 3, 7, 0, 2, 6, 2]
    # Bit-level agreement on a random image: torch eval form == spec.restore.
    net, _ = load_run(run / "final.pt")
    img = spec.random_image(3, 32, 40, 3)
    with torch.no_grad():
        y = net(torch.from_numpy(img).permute(2, 0, 1)[None].float(), torch.tensor([25.0]))
    y = y[0].permute(1, 2, 0).numpy().astype(np.uint8)
    z = spec.restore(model, img)
    # The folded constants (18-bit A) put a stream value on the other side of a rounding
    # boundary now and then (a 1-LSB difference); each extra requantized tensor (a
    # bottleneck's middle, an activation's rounding) adds such cases.
    assert np.mean(y != z) < (1e-3 if not (mid or dw) and act == "none" else 3e-2)
    assert np.abs(y.astype(int) - z).max() <= 2
    out = tmp_path / "m.gamir"
    assert export_main(["--checkpoint", str(run / "final.pt"), "--data", str(val),
                        "--out", str(out)]) == 0
    loaded = spec.load(out)
    assert loaded.provenance["metrics"]["spec_psnr"] == pytest.approx(got["psnr"], abs=1e-3)
    assert loaded.shape_hash() == model.shape_hash()


def test_export_refuses_full_precision_run(tmp_path):
    state = Trainer(_net(), _sampler(), [], tmp_path, "fp", 2, log_every=100,
                    meta={"task": "denoise"}).run()
    torch.save(state, tmp_path / "final.pt")
    with pytest.raises(spec.ModelError, match="full-precision run"):
        export_checked(tmp_path / "final.pt", tmp_path)


def test_torchrun_resume_equals_the_uninterrupted_run(tmp_path):
    """2 gloo ranks under torchrun, cut off after step 5 of 8 (mid GAM stage 3) and resumed."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    str(Path(__file__).with_name("ddp_worker.py")), str(tmp_path)],
                   check=True, env=env, cwd=ROOT, capture_output=True, timeout=600)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # Every rank draws its own batches, before and after the resume.
    assert not set(ranks[0]["whole"]["batches"]) & set(ranks[1]["whole"]["batches"])
    assert not set(ranks[0]["resumed"]["batches"]) & set(ranks[1]["resumed"]["batches"])
    for r in ranks:
        assert [len(r[k]["batches"]) for k in ("whole", "cut", "resumed")] == [8, 5, 3]
        assert r["cut"]["batches"] + r["resumed"]["batches"] == r["whole"]["batches"]
        assert r["resumed"]["weights"] == r["whole"]["weights"]
    # DDP keeps the ranks' weights equal (BatchNorm statistics are each rank's own).
    for k, v in ranks[0]["whole"]["weights"].items():
        if "running" not in k and "num_batches" not in k:
            assert ranks[1]["whole"]["weights"][k] == v, k


def _level_batches(levels, seed=0):
    """Denoising batches (degraded, clean, sigma), each at one noise level, from the photos."""
    out = []
    for i, level in enumerate(levels):
        s = PatchSampler(_images(), "denoise", 16, 4, seed=(seed, i), sigma_range=(level, level))
        out.append(s())
    return out


def _error(net, batches, gain):
    """Squared error of the network's unrounded output at a fixed gain, per batch."""
    errs = []
    with torch.no_grad():
        for x, clean, sigma in batches:
            y, base = net.restoration(x, sigma)
            target = torch.nn.functional.pixel_unshuffle(clean, 2) - base
            errs.append(float(((gain * y - target) ** 2).sum()))
    return errs


def test_noise_gain_is_the_least_squares_strength_per_level():
    net = _net()
    net.eval()
    levels = [0, 0, 3, 20, 20, 40]
    strength = {3: 0.5, 20: 0.8, 40: 1.3}
    batches = []
    # Targets the network's restoration reaches at a known strength per level, off by an
    # error with no component along it: that strength is the least-squares gain.
    for (x, clean, sigma), level in zip(_level_batches(levels), levels):
        with torch.no_grad():
            y, base = net.restoration(x, sigma)
        off = torch.nn.functional.pixel_unshuffle(clean, 2) - base
        off -= y * (off * y).sum() / (y * y).sum()
        target = base + strength.get(level, 0.0) * y + (off if level else 0.0)
        batches.append((x, torch.nn.functional.pixel_shuffle(target, 2), sigma))
    gain = net.calibrate_noise_gain(batches, 50)
    assert gain.shape == (50,) and gain.dtype == torch.long
    assert int(gain[0]) == 0  # clean input: nothing to restore
    g = gain.double() / 4096
    for level in sorted(set(levels) - {0}):
        assert float(g[level]) == pytest.approx(strength[level], abs=1e-3)
        mine = [b for b, lv in zip(batches, levels) if lv == level]
        best = sum(_error(net, mine, float(g[level])))
        # Optimal within the table's rounding: any other strength does worse.
        for other in (g[level] * 0.9, g[level] * 1.1, g[level] + 0.01, g[level] - 0.01, 1.0):
            assert sum(_error(net, mine, float(other))) >= best * (1 - 1e-6)
    # Levels no batch drew take the nearest measured one.
    assert int(gain[1]) == 0 and int(gain[2]) == int(gain[3]) == int(gain[4])
    assert int(gain[30]) in (int(gain[20]), int(gain[40])) and int(gain[49]) == int(gain[40])


def test_noise_gain_measured_once_after_training_and_exported(tmp_path):
    """A run's end measures the gain over levels 0..top of its range (once); the checkpoint,
    the rebuilt network and the exported model carry it; the model passes a clean frame
    through at level 0."""
    run = tmp_path / "run"
    state = Trainer(_net(), _sampler(), [], run, "gam", 8, log_every=100, bn_batches=2,
                    meta={"task": "denoise", "command": "test"}).run()
    gain = state["noise_gain"]
    assert len(gain) == 36 and gain[0] == 0 and max(gain) > 0
    again = Trainer(_net(), _sampler(seed=4), [], run, "gam", 8, log_every=100, bn_batches=2).run()
    assert again["noise_gain"] == gain
    torch.save(again, run / "final.pt")
    net, _ = load_run(run / "final.pt")
    assert net.noise_gain.tolist() == gain
    val = tmp_path / "val"
    val.mkdir()
    io.imsave(val / "v.png", data.chelsea()[:64, :96], check_contrast=False)
    model, _ = export_checked(run / "final.pt", val, tolerance=0.05)
    assert model.steps.noise_gain == tuple(gain)
    img = data.coffee()[:32, :48].copy()
    assert np.array_equal(spec.restore(model.with_noise_level(0), img), img)
    assert not np.array_equal(spec.restore(model.with_noise_level(25), img), img)
    with torch.no_grad():
        y = net(torch.from_numpy(img).permute(2, 0, 1)[None].float(), torch.tensor([0.0]))
    assert np.array_equal(y[0].permute(1, 2, 0).numpy().astype(np.uint8), img)
