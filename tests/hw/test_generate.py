"""python -m hw.generate: Verilog top with the contract's port names, and the manifest."""

import json
import re
import subprocess
import sys

import spec
from accel import perf, regmap
from hw.generate import main


def test_cli_writes_verilog_and_manifest(tmp_path):
    model = spec.random_model(3, channels=4, n_binary=2, image_channels=1, unshuffle=1)
    path = tmp_path / "m.gamir"
    spec.save(model, path)
    fold = '[{"pe": 2, "simd": 3}, null, null, null]'
    r = subprocess.run([sys.executable, "-m", "hw.generate", "--model", str(path), "--fold", fold,
                        "--max-width", "64", "--frame", "16x8", "--dsp", "50", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "out" / "gam_top.v").read_text()
    header = re.search(r"module gam_top\((.*?)\);", text, re.S).group(1)
    ports = {p.strip() for p in header.split(",")}
    for name in ("clk", "rst", "s_axis__tdata", "s_axis__tvalid", "s_axis__tready",
                 "s_axis__tlast", "m_axis__tdata", "m_axis__tlast", "s_axil__awaddr",
                 "s_axil__wstrb", "s_axil__bresp", "s_axil__rdata", "s_axil__rready"):
        assert name in ports
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["model"]["digest"] == spec.digest(model)
    assert man["model"]["shape_hash"] == model.shape_hash()
    assert man["fold"][0] == {"pe": 2, "simd": 3, "out_pe": 2}
    assert man["max_width"] == 64
    assert man["dsp_budget"] == 50 and len(man["dsp_terms"]) == len(model.layers)
    assert man["streams"]["s_axis_tdata_bits"] == regmap.stream_bits(model.input_channels)
    assert man["register_map"]["registers"]["PARAM_DATA"]["address"] == regmap.REG["PARAM_DATA"]
    want = perf.frame_cycles(model, json.loads(fold), height=8, width=16)
    assert man["performance"]["cycles_per_frame"] == want


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing.gamir"), "-o", str(tmp_path)]) == 1
    model = spec.random_model(3, channels=4, n_binary=1)
    spec.save(model, tmp_path / "m.gamir")
    assert main(["--model", str(tmp_path / "m.gamir"), "--fold", "[{\"pe\": 3}, null, null]",
                 "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: layer 1: c_out=4 must be a multiple of pe=3"


def test_lutram_depth_marks_exactly_the_shallow_weight_memories(tmp_path):
    """``lutram_depth`` asks synthesis for LUT RAM (``ram_style``) for the weight memories of at
    most that many rows, and for no other memory."""
    from hw.generate import generate

    model = spec.random_model(4, channels=4, n_binary=2, image_channels=1, unshuffle=1)
    fold = [{"pe": 1, "simd": 1}, {"pe": 2, "simd": 9}, {"pe": 4, "simd": 3}, {"pe": 1, "simd": 4}]
    rows = sorted(r.entries for r in regmap.regions(model, regmap.given_fold(model, fold))[::2])
    depth = rows[len(rows) // 2]
    generate(model, tmp_path, fold=fold, max_width=16, lutram_depth=depth)
    marked = (tmp_path / "gam_top.v").read_text().count('ram_style = "distributed"')
    assert marked == sum(r <= depth for r in rows) and 0 < marked < len(rows)
    generate(model, tmp_path, fold=fold, max_width=16)
    assert 'ram_style' not in (tmp_path / "gam_top.v").read_text()
