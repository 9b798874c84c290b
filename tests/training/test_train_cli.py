"""The train and eval CLIs end to end on a tiny network: logs, configs, resume, bad input, signals."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import io

from training.errors import TrainingError
from training.eval import main as eval_main
from training.export import main as export_main
from training.gallery import LABEL_HEIGHT, detail_window
from training.gallery import main as gallery_main
from training.tasks import validation_pairs
from training.train import main as train_main

pytestmark = pytest.mark.slow  # minutes: left out of the fast loop (README: the fast loop)

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--width", "8", "--blocks", "2", "--batch", "2", "--patch", "16", "--bn-batches", "2"]


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory) -> Path:
    """A finished 4-step GAM run (one step per stage)."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert train_main(["--task", "denoise", "--steps", "4", "--data", str(photos), "--out", str(out),
                       "--log-every", "1", "--val-every", "2", "--fracs", "0.25", "0.25", "0.25", "0.25",
                       *TINY]) == 0
    return out


def test_progress_lines_csv_and_tensorboard_agree(photos, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--task", "denoise", "--steps", "6", "--data", str(photos), "--out", str(out),
                       "--log-every", "2", "--val-every", "3", *TINY]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if " loss " in l]
    printed = {}
    for line in lines:
        m = re.match(r"\[denoise gam\] step (\d+)/6 \(stage (\d)/4 step \d+/\d+\) loss ([\d.]+) "
                     r"lr ([\d.e+-]+)( val PSNR ([\d.]+) dB)?", line)
        assert m, line
        printed[int(m[1])] = (int(m[2]), float(m[3]), float(m[4]), m[6] and float(m[6]))
    # Rows every 2nd step, at each validation (every 3rd step and stage end: plan 2, 1, 1, 2).
    assert sorted(printed) == [2, 3, 4, 6]
    with (out / "log.csv").open() as f:
        rows = {int(r["step"]): r for r in csv.DictReader(f)}
    assert sorted(rows) == sorted(printed)
    for step, (stage, loss, lr, val) in printed.items():
        r = rows[step]
        assert int(r["stage"]) == stage
        assert float(r["loss"]) == pytest.approx(loss, abs=5e-6)
        assert float(r["lr"]) == pytest.approx(lr, rel=5e-3)
        assert (r["val_psnr"] == "") == (val is None)
        if val is not None:
            assert float(r["val_psnr"]) == pytest.approx(val, abs=5e-3)
    assert (out / "best.pt").exists() and (out / "final.pt").exists()
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["task"] == "denoise" and config["steps"] == 6 and config["net"]["width"] == 8
    assert torch.load(out / "last.pt", weights_only=True)["config"] == config | {"out": str(out)}
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    loss = {e.step: e.value for e in events.Scalars("train/loss")}
    assert loss == pytest.approx({s: float(r["loss"]) for s, r in rows.items()}, abs=1e-5)
    val = {e.step: e.value for e in events.Scalars("val/psnr_db")}
    assert val == pytest.approx({s: float(r["val_psnr"]) for s, r in rows.items() if r["val_psnr"]}, abs=1e-3)


def test_config_file_flags_override_and_changed_settings_are_refused(photos, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'task = "denoise"\nmethod = "ste"\nsteps = 2\nbatch = 2\npatch = 16\n'
                   f'bn_batches = 0\ndata = "{photos}"\nlog_every = 1\n[net]\nwidth = 8\nblocks = 2\n')
    assert train_main(["--config", str(cfg), "--out", str(out), "--lr", "0.002"]) == 0
    stored = tomllib.loads((out / "config.toml").read_text())
    assert stored["lr"] == 0.002 and stored["method"] == "ste" and stored["net"]["blocks"] == 2
    assert stored["sigma"] == [15, 35]  # the task's noise levels, recorded
    capsys.readouterr()
    # Same settings, longer budget: continues (a notice says from where).
    assert train_main(["--config", str(cfg), "--out", str(out), "--lr", "0.002", "--steps", "3"]) == 0
    assert "resumed from" in capsys.readouterr().out
    # Another lr or seed: refused, naming each difference.
    assert train_main(["--config", str(cfg), "--out", str(out), "--lr", "0.5", "--seed", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lr: 0.002 -> 0.5" in err and "seed: 0 -> 3" in err
    assert train_main(["--config", str(cfg), "--out", str(out), "--lr", "0.002", "--sigma", "0", "50"]) == 1
    assert "sigma: [15, 35] -> [0, 50]" in capsys.readouterr().err
    # --resume takes the stored settings; flags may change the budget and the running settings.
    assert train_main(["--resume", "--out", str(out), "--steps", "4", "--threads", "2"]) == 0
    state = torch.load(out / "final.pt", weights_only=True)
    assert state["steps"] == 4 and state["config"]["lr"] == 0.002
    assert state["meta"]["command"].endswith("--lr 0.002") and len(state["meta"]["resumed_by"]) == 2


def test_a_budget_in_minutes_is_calibrated_recorded_and_continued(photos, tmp_path, capsys):
    out = tmp_path / "run"
    cmd = ["--task", "denoise", "--method", "ste", "--minutes", "0.3", "--data", str(photos),
           "--out", str(out), "--log-every", "1000", *TINY]
    assert train_main(cmd) == 0
    printed = capsys.readouterr().out
    m = re.search(r"budget 0.3 min: (\d+) steps \(s/step stage 4 [\d.]+; validation [\d.]+ s\)", printed)
    assert m, printed
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["minutes"] == 0.3 and config["steps"] == int(m[1]) >= 1
    state = torch.load(out / "final.pt", weights_only=True)
    assert state["steps"] == config["steps"] and state["meta"]["calibration"]["steps"] == config["steps"]
    # The same command continues the same schedule (no new calibration) ...
    assert train_main(cmd) == 0
    printed = capsys.readouterr().out
    assert "resumed from" in printed and "min: " not in printed
    text = (out / "config.toml").read_text()
    assert tomllib.loads(text)["steps"] == config["steps"] and "# steps sized for 0.3 minutes: s/step stage 4" in text
    # ... another time budget is refused.
    assert train_main(cmd[:5] + ["0.1"] + cmd[6:]) == 1
    assert "was sized for 0.3 minutes" in capsys.readouterr().err


def test_checkpoint_written_before_configs_still_resumes(run, tmp_path, capsys):
    """A run folder of the previous trainer (no config in its checkpoints) continues."""
    old = tmp_path / "old"
    old.mkdir()
    state = torch.load(run / "stage2.pt", weights_only=True)
    for k in ("config", "best_psnr"):
        del state[k]
    torch.save(state, old / "last.pt")
    same = ["--task", "denoise", "--steps", "4", "--data", state["meta"]["data"], "--out", str(old),
            "--fracs", "0.25", "0.25", "0.25", "0.25", *TINY]
    assert train_main(same + ["--lr", "0.01"]) == 1
    assert "lr: 0.001 -> 0.01" in capsys.readouterr().err
    assert train_main(same) == 0
    assert "resumed from" in capsys.readouterr().out


def test_eval_and_export_of_a_run(run, photos, tmp_path, capsys):
    rows = tmp_path / "rows.json"
    assert eval_main(["--task", "denoise", "--data", str(photos / "val"), "--checkpoint",
                      str(run / "final.pt"), "--baseline", "nlm", "--baseline", "wavelet",
                      "--baseline", "input", "--json", str(rows)]) == 0
    table = capsys.readouterr().out
    assert "| gam (" in table and "| nlm (" in table and "| wavelet (" in table
    got = json.loads(rows.read_text())
    assert got[0]["binary_ops_per_px"] > 0
    nlm, wavelet, noisy = (r["psnr"] for r in got[1:])
    assert nlm > noisy + 3 and wavelet > noisy + 3  # both denoise the sigma-25 input
    # An unfinished GAM stage exports only when asked for.
    model = tmp_path / "m.gamir"
    assert export_main(["--checkpoint", str(run / "stage2.pt"), "--data", str(photos / "val"),
                        "--out", str(model), "--unfinished"]) == 0 and model.exists()


@pytest.mark.parametrize("task, baseline", [("lowlight", "gamma"), ("derain", "opening")])
def test_classical_baselines_restore_their_task(task, baseline, tmp_path):
    (tmp_path / "val").mkdir()  # a smooth scene: what each method assumes the clean image is
    yy, xx = np.mgrid[0:128, 0:128] / 127
    smooth = np.stack([60 + 120 * yy, 80 + 100 * xx, 150 - 60 * yy * xx], axis=2).astype(np.uint8)
    io.imsave(tmp_path / "val" / "smooth.png", smooth, check_contrast=False)
    rows = tmp_path / "rows.json"
    assert eval_main(["--task", task, "--data", str(tmp_path / "val"), "--baseline", baseline,
                      "--baseline", "input", "--json", str(rows)]) == 0
    restored, degraded = (r["psnr"] for r in json.loads(rows.read_text()))
    assert restored > degraded + 1


def test_detail_window_finds_the_textured_square():
    img = np.full((80, 96, 3), 128, np.uint8)
    img[40:56, 24:40] = np.random.default_rng(0).integers(0, 256, (16, 16, 3))
    assert detail_window(img, 16, step=8) == (40, 24)
    with pytest.raises(TrainingError, match="smaller than the 128-pixel crop"):
        detail_window(img, 128)


def test_gallery_of_a_run(run, photos, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "g" / "denoise.png"
    assert gallery_main(["--task", "denoise", "--data", str(photos / "val"), "--model",
                         str(ROOT / "models" / "denoise.gamir"), "--checkpoint", str(run / "final.pt"),
                         "--crop", "32", "--out", str(out)]) == 0
    assert "1 photos x 5 columns (nlm: h=" in capsys.readouterr().out
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (LABEL_HEIGHT + 34, 5 * 34 - 2, 3)
    (name, noisy, clean, _), = validation_pairs("denoise", photos / "val")
    y, x = detail_window(clean, 32)
    top = LABEL_HEIGHT
    # the clean column is the clean crop; the input column the noisy crop above its PSNR label
    np.testing.assert_array_equal(img[top:top + 32, 4 * 34:4 * 34 + 32], clean[y:y + 32, x:x + 32])
    np.testing.assert_array_equal(img[top:top + 16, :32], noisy[y:y + 16, x:x + 32])
    assert not list(out.parent.glob("*.part"))


def _truncated(run: Path, tmp: Path) -> Path:
    blob = (run / "final.pt").read_bytes()
    (tmp / "trunc").mkdir()
    (tmp / "trunc" / "last.pt").write_bytes(blob[:len(blob) // 2])
    return tmp / "trunc"


def _corrupt_photo(photos: Path, tmp: Path) -> Path:
    bad = Path(shutil.copytree(photos, tmp / "bad"))
    (bad / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return bad


def _file(tmp: Path) -> Path:
    (tmp / "afile").write_text("x")
    return tmp / "afile"


def _toml(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp / name


T = "--task denoise --steps 4 --data {photos} --out {tmp}/new " + " ".join(TINY)
# (id, command with {photos}, {run} and {tmp} filled in, exit status, words the error must say)
BAD = [
    ("steps-0", f"train {T} --steps 0", 2, "--steps: '0' must be at least 1"),
    ("batch-0", f"train {T} --batch 0", 2, "--batch: '0' must be at least 1"),
    ("log-every-0", f"train {T} --log-every 0", 2, "--log-every: '0' must be at least 1"),
    ("val-every-0", f"train {T} --val-every 0", 2, "--val-every: '0' must be at least 1"),
    ("ckpt-every-0", f"train {T} --ckpt-every 0", 2, "--ckpt-every: '0' must be at least 1"),
    ("patch-4000", f"train {T} --patch 4000", 1, "--patch 4000: no training image is at least 4000x4000"),
    ("patch-odd", f"train {T} --patch 15", 2, "--patch 15: must be a multiple of 2"),
    ("fracs-sum", f"train {T} --fracs 0.5 0.5 0.5 0.5", 2, "--fracs 0.5 0.5 0.5 0.5: stage fractions"),
    ("fracs-negative", f"train {T} --fracs 1.5 -0.5 0 0", 2, "must be four non-negative numbers"),
    ("fracs-count", f"train {T} --fracs 0.5 0.5", 2, "--fracs: expected 4 arguments"),
    ("lr-negative", f"train {T} --lr -1", 2, "--lr: '-1' must be a finite number above 0"),
    ("lr-nan", f"train {T} --lr nan", 2, "--lr: 'nan' must be a finite number above 0"),
    ("threads-0", f"train {T} --threads 0", 2, "--threads: '0' must be at least 1"),
    ("device-tpu", f"train {T} --device tpu", 2, "--device 'tpu': must be cpu, cuda or cuda:N"),
    ("width-0", f"train {T} --width 0", 2, "--width: '0' must be at least 1"),
    ("task-unknown", f"train {T} --task blur", 2, "--task: invalid choice: 'blur'"),
    ("sigma-reversed", f"train {T} --sigma 30 10", 2, "--sigma 30 10: must satisfy 0 <= LO <= HI <= 255"),
    ("sigma-too-large", f"train {T} --sigma 0 300", 2, "--sigma 0 300: must satisfy"),
    ("sigma-on-sr", "train --task sr --data {photos} --out {tmp}/new --sigma 5 5", 2,
     "only the denoise task takes a noise level"),
    ("dw-with-1x1-head", f"train {T} --head-dw --head-kernel 1", 2, "head_dw needs head_kernel=3"),
    ("no-out", "train --task denoise --data {photos}", 2, "--out is required"),
    ("no-data", "train --task denoise --out {tmp}/new", 2, "--data is required"),
    ("out-is-file", "train --task denoise --data {photos} --out {file}", 1, "is a file, not a run folder"),
    ("data-missing", "train --task denoise --data {tmp}/nothing --out {tmp}/new", 1, "does not exist"),
    ("corrupt-photo", "train --task denoise --data {bad} --out {tmp}/new", 1, "broken.png cannot be read"),
    ("corrupt-checkpoint", "train --task denoise --data {photos} --out {junk}", 1,
     "last.pt' is not a gamir training run"),
    ("truncated-checkpoint", "train --task denoise --data {photos} --out {trunc}", 1,
     "last.pt' is not a gamir training run: it cannot be read (truncated or corrupt?"),
    ("resume-denoise-as-sr", "train --task sr --data {photos} --out {run} --fracs .25 .25 .25 .25 "
     + " ".join(TINY), 1,
     "task: 'denoise' -> 'sr'"),
    ("resume-nothing", "train --resume --out {tmp}/new", 1, "holds no run to continue"),
    ("budget-of-gam-stages", "train --resume --out {run} --steps 8", 1,
     "changes stages already trained: keep --steps 4"),
    ("steps-and-minutes", f"train {T} --minutes 5", 2, "--steps and --minutes: give one budget"),
    ("minutes-0", f"train {T} --minutes 0", 2, "--minutes: '0' must be a finite number above 0"),
    ("minutes-too-short", "train --task denoise --data {photos} --out {tmp}/new --minutes 0.0001 "
     + " ".join(TINY), 1, "the time budget is too short"),
    ("minutes-on-a-steps-run", "train --resume --out {run} --minutes 5", 1,
     "was budgeted in steps (4 steps): continue it with --resume"),
    ("bf16-on-cpu", f"train {T} --precision bf16", 2, "--precision bf16: only on a CUDA device"),
    ("compile-on-cpu", f"train {T} --compile", 2, "--compile: only on a CUDA device"),
    ("config-missing", "train --config {tmp}/none.toml --out {tmp}/new", 1, "does not exist"),
    ("config-not-toml", "train --config {badtoml} --out {tmp}/new", 1, "is not valid TOML"),
    ("config-unknown-key", "train --config {unknown} --out {tmp}/new", 1, "unknown setting(s) stepz"),
    ("eval-sr-on-denoise", "eval --task sr --data {photos}/val --checkpoint {run}/final.pt", 1,
     "is a denoise run, not sr"),
    ("eval-sr-on-denoise-model", "eval --task sr --data {photos}/val --model {models}/denoise.gamir", 1,
     "denoise.gamir is a denoise model, not sr"),
    ("eval-corrupt-checkpoint", "eval --task denoise --data {photos}/val --checkpoint {junk}/last.pt", 1,
     "it cannot be read"),
    ("eval-missing-checkpoint", "eval --task denoise --data {photos}/val --checkpoint {tmp}/x.pt", 1,
     "does not exist"),
    ("eval-threads-0", "eval --task denoise --data {photos}/val --baseline input --threads 0", 2,
     "--threads: '0' must be at least 1"),
    ("eval-nothing", "eval --task denoise --data {photos}/val", 2, "name at least one"),
    ("gallery-sr-model", "gallery --task denoise --data {photos}/val --model {models}/sr.gamir --out {tmp}/m.png",
     1, "sr.gamir is a sr model, not denoise"),
    ("gallery-unknown-photo", "gallery --task denoise --data {photos}/val --model {models}/denoise.gamir "
     "--images nope --out {tmp}/m.png", 1, "no photo named nope in"),
    ("gallery-crop-too-large", "gallery --task sr --data {photos}/val --model {models}/sr.gamir "
     "--out {tmp}/m.png", 1, "is smaller than the 128-pixel crop"),
    ("gallery-not-png", "gallery --task sr --data {photos}/val --model {models}/sr.gamir --out {tmp}/m.jpg",
     1, "is written as a .png file"),
    ("export-unfinished-stage", "export --checkpoint {run}/stage2.pt --data {photos}/val --out {tmp}/m.gamir",
     1, "stage2.pt stops at step 2 of 4 (GAM stage 3 of 4"),
]


@pytest.mark.parametrize("command, status, words", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_error_line(command, status, words, photos, run, tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "last.pt").write_bytes(os.urandom(300))
    names = dict(photos=photos, run=run, tmp=tmp_path, junk=junk, file=_file(tmp_path), models=ROOT / "models",
                 trunc=_truncated(run, tmp_path), bad=_corrupt_photo(photos, tmp_path),
                 badtoml=_toml(tmp_path, "bad.toml", "task = denoise"),
                 unknown=_toml(tmp_path, "unknown.toml", "stepz = 3"))
    cli, *args = command.format(**names).split()
    before = {p: p.stat().st_mtime_ns for p in run.iterdir()}
    main = {"train": train_main, "eval": eval_main, "export": export_main, "gallery": gallery_main}[cli]
    try:
        got = main(args)
    except SystemExit as e:  # argparse
        got = e.code
    out, err = capsys.readouterr()
    assert got == status, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], err
    assert err.splitlines()[-1] == errors[0] and (status == 2 or err.count("\n") == 1), err  # 2: usage first
    assert "Traceback" not in out + err
    assert not any((tmp_path / f).exists() for f in ("new", "m.gamir", "m.png", "m.jpg"))
    assert {p: p.stat().st_mtime_ns for p in run.iterdir()} == before  # nothing written


@pytest.mark.parametrize("signum, words", [(signal.SIGTERM, "terminated (SIGTERM)"),
                                           (signal.SIGINT, "interrupted (Ctrl-C)")], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_a_checkpoint_and_exits_cleanly(signum, words, photos, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "training.train", "--task", "denoise", "--method", "ste", "--steps", "100000",
           "--data", str(photos), "--out", str(out), "--log-every", "1", "--ckpt-every", "100000", *TINY]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until it trains
        if "step 2/" in line:
            break
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert err.count("\n") == 1 and err.startswith(f"error: {words}: stopped at step "), err
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] >= 2 and state["opt"] is not None
    assert f"step {state['step']} of 100000" in err and str(out / "last.pt") in err
