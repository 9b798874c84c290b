"""``python -m training.reproduce`` on a smoke configuration: every network and method, resume, table."""

from __future__ import annotations

import json
import re

import pytest
import torch

from training.reproduce import main, results_table

pytestmark = pytest.mark.slow  # minutes: left out of the fast loop (README: the fast loop)

torch.set_num_threads(1)


def test_smoke_grid_resumes_and_tabulates(photos, tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["--data", str(photos), "--out", str(out), "--size", "smoke", "--steps", "4",
            "--batch", "2", "--patch", "32", "--seeds", "0", "--bn-batches", "1", "--log-every", "100"]
    assert main(args) == 0
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == sorted(f"{n}_{m}_s0" for n in ("zerodce", "prnr", "srresnet", "ffdnet")
                             for m in ("fp", "gam", "ste", "bcnn"))
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 16
    by = {(r["network"], r["method"]): r for r in results}
    assert by[("ffdnet", "fp")]["binary_ops_per_px"] == 0 < by[("ffdnet", "gam")]["binary_ops_per_px"]
    # BCNN at half the width: the binary network's binary ops
    assert by[("ffdnet", "bcnn")]["net_args"] == {"width": 2, "layers": 3}
    assert by[("ffdnet", "bcnn")]["binary_ops_per_px"] == by[("ffdnet", "gam")]["binary_ops_per_px"]
    assert all(0 < r["psnr"] < 60 and -1 <= r["ssim"] <= 1 for r in results)
    table = (out / "results.md").read_text()
    assert table.startswith("Made by `python -m training.reproduce --data")
    assert table.count("| PSNR |") == 4 and table.count("| SSIM |") == 4
    assert "32.28 (Kodak24 sigma 25)" in table
    # the degraded input's column: Gaussian noise of sigma 25 is about 20 dB
    noisy = float(re.search(r"\| ffdnet \(denoise\) \| [^|]+ \| 4 \| PSNR \| (\d+\.\d\d) \|", table)[1])
    assert 19 < noisy < 22
    # Finished runs are skipped: no checkpoint is written again, the table is the same.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/last.pt")}
    capsys.readouterr()
    assert main(args + ["--seeds", "0"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/last.pt")} == stamps
    assert "resumed" not in capsys.readouterr().out
    # An interrupted run resumes: drop one result, its checkpoint is reused (no new training).
    (out / "prnr_gam_s0" / "result.json").unlink()
    assert main(args + ["--networks", "prnr", "--methods", "gam"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert (out / "prnr_gam_s0" / "result.json").exists()
    # --report trains nothing and rewrites the same table
    (out / "results.md").unlink()
    (out / "ffdnet_ste_s0" / "result.json").unlink()
    assert main(args + ["--report"]) == 0
    assert "run 1/" not in capsys.readouterr().out
    assert not (out / "ffdnet_ste_s0" / "result.json").exists()
    assert (out / "results.md").read_text().count("| PSNR |") == 4


def test_table_mean_and_spread_over_seeds():
    rows = [{"network": "ffdnet", "task": "denoise", "method": "gam", "seed": s, "net_args": {"width": 8},
             "steps": 10, "psnr": p, "ssim": 0.5} for s, p in ((0, 28.0), (1, 30.0))]
    table = results_table(rows)
    assert "| 29.00 ± 1.41 (2) |" in table and "| 0.5000 ± 0.0000 (2) |" in table
    assert "| ffdnet (denoise) | {\"width\": 8} | 10 | PSNR | - | - | 29.00 ± 1.41 (2) | - | - |" in table
    table = results_table(rows, {"ffdnet": {"psnr": 20.5, "ssim": 0.25}})
    assert "| 10 | PSNR | 20.50 | - | 29.00 ± 1.41 (2) |" in table and "| SSIM | 0.2500 | - |" in table


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: image folder") and err.count("\n") == 1
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--patch", "20"]) == 1
    assert capsys.readouterr().err.startswith("error: --steps and --batch must be positive")
