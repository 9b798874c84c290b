"""The train and eval CLIs end to end on a tiny network, and their error messages."""

from __future__ import annotations

import json

from skimage import data, io

from training.eval import main as eval_main
from training.train import main as train_main


def test_train_then_eval_tiny_denoiser(tmp_path, capsys):
    for split, imgs in (("train", [data.astronaut()[:96, :96]]), ("val", [data.coffee()[:64, :64]])):
        (tmp_path / split).mkdir()
        for i, img in enumerate(imgs):
            io.imsave(tmp_path / split / f"{i}.png", img, check_contrast=False)
    run = tmp_path / "run"
    assert train_main(["--task", "denoise", "--steps", "4", "--data", str(tmp_path), "--out", str(run),
                       "--width", "8", "--blocks", "2", "--batch", "2", "--patch", "16",
                       "--log-every", "1", "--val-every", "2"]) == 0
    out = capsys.readouterr().out
    assert "[denoise gam] stage 4/4 step" in out and "ETA" in out and "val PSNR" in out
    rows = tmp_path / "rows.json"
    assert eval_main(["--task", "denoise", "--data", str(tmp_path / "val"), "--checkpoint",
                      str(run / "final.pt"), "--baseline", "nlm", "--baseline", "wavelet",
                      "--baseline", "input", "--json", str(rows)]) == 0
    table = capsys.readouterr().out
    assert "| gam (" in table and "| nlm (" in table and "| wavelet (" in table
    got = json.loads(rows.read_text())
    assert got[0]["binary_ops_per_px"] > 0
    nlm, wavelet, noisy = (r["psnr"] for r in got[1:])
    assert nlm > noisy + 3 and wavelet > noisy + 3  # both denoise the sigma-25 input


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert train_main(["--task", "sr", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert eval_main(["--task", "sr", "--data", str(tmp_path), "--checkpoint", str(tmp_path / "x.pt")]) == 1
    assert "error:" in capsys.readouterr().err
