"""training.search: the space, the fit filter on hand-counted small cases, the Pareto front, and
a tiny search end to end (interrupted, resumed, bounded, continued)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from accel.boards import Board
from training import gam
from training.search import Costing, Shape, Space, Target, main, ordered, pareto

pytestmark = pytest.mark.slow  # minutes: left out of the fast loop (README: the fast loop)

ROOT = Path(__file__).resolve().parents[2]

# The small case counted by hand below: denoise preset, 8 channels, one binary layer,
# unshuffle 2 (13 input channels: 12 + the noise level), 1x1 head 13 -> 8 and tail 8 -> 12.
SMALL = Shape(width=8, blocks=1, unshuffle=2, head="1x1", tail="1x1", stream_bits=8, frac_bits=4,
              w_bits=6, act="none")


def _board(lut=10**6, bram=100, dsp=10) -> Board:
    return Board("test", "xc7", "test part", {"LUT": lut, "FF": 10**6, "BRAM": bram, "DSP": dsp},
                 36864, clock_hz=1e6)


def _cost(shape=SMALL, fps=1.0, lut_share=0.85, **board):
    # Image 16x8 -> accelerator frame 8 wide, 4 high (32 pixels) after unshuffle 2.
    return Costing("denoise", Target(_board(**board), 16, 8, fps, 1e6), lut_share)(shape)


def test_space_enumerates_every_combination_but_wide_bottlenecks():
    space = Space(widths=(16, 32), blocks=(2,), unshuffles=(2,), heads=("3x3", "mid16"),
                  tails=("1x1",), formats=((8, 4), (10, 6)), w_bits=(6,), acts=("none",))
    # width 16: a 16-channel bottleneck is no bottleneck, so mid16 heads are left out there.
    assert [s.name for s in space.shapes()] == [
        "c16-b2-u2-h3x3-t1x1-s8.4-w6-none", "c16-b2-u2-h3x3-t1x1-s10.6-w6-none",
        "c32-b2-u2-h3x3-t1x1-s8.4-w6-none", "c32-b2-u2-h3x3-t1x1-s10.6-w6-none",
        "c32-b2-u2-hmid16-t1x1-s8.4-w6-none", "c32-b2-u2-hmid16-t1x1-s10.6-w6-none"]
    shape = space.shapes()[4]
    assert shape.overrides() == {"width": 32, "blocks": 2, "unshuffle": 2, "stream_bits": 8,
                                 "frac_bits": 4, "w_bits": 6, "act": "none", "head_kernel": 3,
                                 "head_mid": 16, "tail_kernel": 1}
    assert shape.capacity() == 9 * 32 * 32 * 2 / 4


def test_small_case_costs_counted_by_hand():
    """At 1 frame/s every layer folds to one lane: the binary layer's 8 outputs x 72 taps are
    576 cycles per pixel. Memories at max width 8 (the accelerator frame, not 1280): the
    binary layer's line buffer 2 rows x 8 channels x 1 bit, its residual delay 64 bits x
    (8 + 32) + 32, the global residual 13 x 8 = 104 bits x 3 x (8 + 32) + 32 = 152: one
    RAMB36 each as 1024x36, 512x72 and 2 x 512x72 = 4. Multipliers: three output stages of
    one lane, plus the head's and the tail's single product: 5."""
    row = _cost()
    assert row["fits"] is True
    assert row["ii"] == 576 and row["bram"] == 4 and row["dsp"] == 5 and row["dsp_pct"] == 50
    # 13*8 + 8 head, 8*8*9 + 2*8 binary + BatchNorm, 8*12 + 12 tail.
    assert row["params"] == 112 + 592 + 108
    # 32 pixels x 576 cycles at least, less than twice that with the pipeline's fill.
    assert 1e6 / (2 * 32 * 576) < row["fps"] <= 1e6 / (32 * 576)
    assert row["flags"] == "--width 8 --blocks 1 --frac-bits 4 --stream-bits 8 --w-bits 6 " \
                          "--head-kernel 1 --tail-kernel 1"


def test_depthwise_separable_ends_counted_by_hand():
    """dw ends: head 1x1 13 -> 8 then a depthwise 3x3, tail a depthwise 3x3 then 1x1 8 -> 12.
    At one lane per layer: five output stages and four fixed convs of one product each."""
    shape = dataclasses.replace(SMALL, head="dw", tail="dw")
    assert shape.overrides()["head_dw"] is True and shape.overrides()["tail_kernel"] == 3
    row = _cost(shape)
    assert row["fits"] is True and row["ii"] == 576 and row["dsp"] == 5 + 4
    # Parameters: the 1x1 halves as before plus 8 x (9 + 1) per depthwise conv.
    assert row["params"] == 112 + 80 + 592 + 80 + 108


def test_fit_filter_limits():
    assert _cost(bram=4)["fits"] is True and _cost(bram=3)["fits"] == "BRAM"
    # The build's DSP budget is 90 % of the device's: 4 of 5 leaves the tail's product to LUTs,
    # 2 of 3 cannot hold the three output stages.
    assert _cost(dsp=5)["dsp"] == 4 and _cost(dsp=3)["fits"] == "DSP"
    # LUTs: under 85 %; just over is found by the exact fold, far over by the first screen.
    luts = _cost()["luts"]
    assert _cost(lut=int(luts / 0.85) + 1)["fits"] is True
    assert _cost(lut=int(luts / 0.85) - 1)["fits"] == "LUT"
    assert _cost(lut=int(luts / 0.85 / 1.5))["fits"] == "LUT"
    assert _cost(lut=luts + 1, lut_share=1.0)["fits"] is True
    # 32 pixels per frame at 1 MHz: 2**15 frames/s leave one cycle per pixel, not enough for
    # the pipeline's fill; 2**16 leave half a cycle.
    assert _cost(fps=2**15)["fits"] == "rate" and _cost(fps=2**16)["fits"] == "rate"


def test_variants_of_a_geometry_share_the_fold_and_cost_no_less():
    shapes = Space(widths=(8,), blocks=(1,), unshuffles=(2,), heads=("1x1",), tails=("1x1",),
                   formats=((8, 4), (10, 6)), w_bits=(6, 8), acts=("none", "rprelu")).shapes()
    costing = Costing("denoise", Target(_board(), 16, 8, 1.0, 1e6))
    rows = costing.rows(shapes)
    assert [r["name"] for r in rows] == [s.name for s in shapes] and len(rows) == 8
    base = rows[0]
    for r in rows:
        assert r["fits"] is True and r["ii"] == base["ii"] and r["fps"] == base["fps"]
        assert r["luts"] >= base["luts"] and r["bram"] >= base["bram"]
    # When the narrowest variant does not fit, the others are not costed.
    small = Costing("denoise", Target(_board(bram=3), 16, 8, 1.0, 1e6)).rows(shapes)
    assert all(r["fits"] == "BRAM" for r in small) and "luts" not in small[1]


def test_pareto_front():
    rows = [{"name": n, "luts": l, "psnr": p} for n, l, p in
            [("a", 100, 28.0), ("b", 200, 27.5), ("c", 200, 29.0), ("d", 300, 29.0),
             ("e", 400, 30.0), ("f", 50, None)]]
    assert [r["name"] for r in pareto(rows)] == ["a", "c", "e"]


def test_training_orders():
    rows = [{"name": n, "luts": l, "shape": dataclasses.replace(SMALL, width=w, blocks=b, unshuffle=u)}
            for n, l, w, b, u in [("a", 300, 16, 8, 2), ("b", 100, 8, 4, 2), ("c", 200, 16, 2, 1),
                                  ("d", 150, 16, 8, 2)]]
    # MACs per image pixel: a, d 9*256*8/4 = 4608; b 9*64*4/4 = 576; c 9*256*2 = 4608.
    assert [r["name"] for r in ordered(rows, "cost")] == ["b", "d", "c", "a"]
    assert [r["name"] for r in ordered(rows, "capacity")] == ["d", "c", "a", "b"]


def test_importing_the_search_loads_no_amaranth():
    code = "import sys, training.search; print('amaranth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


# ------------------------------------------------------------------ end to end
def _argv(**options) -> list[str]:
    """A search of two tiny shapes (1x1 or 3x3 tail), ``options`` replacing its values."""
    o = dict(board="pynq-z2", frame="64x48", fps="30", widths="8", blocks="1", unshuffles="2",
             heads="1x1", tails="1x1,3x3", formats="8.4", w_bits="6", acts="none")
    o.update(options)
    return [x for k, v in o.items() for x in (f"--{k.replace('_', '-')}", v)]


TWO = _argv()
NAMES = ["c8-b1-u2-h1x1-t1x1-s8.4-w6-none", "c8-b1-u2-h1x1-t3x3-s8.4-w6-none"]


def _search(photos, out, *extra):
    return main([*TWO, "--data", str(photos), "--out", str(out), "--steps", "4", "--batch", "2",
                 "--bn-batches", "1", "--sigma", "0", "50", *extra])


def _table(out) -> dict:
    with (out / "search-pynq-z2-64x48-30fps.csv").open() as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def test_dry_run_lists_the_fitting_shapes(tmp_path, capsys):
    assert main([*TWO, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 shapes fit" in out and all(f"| {n} |" in out for n in NAMES)
    assert not list(tmp_path.iterdir())


def test_search_stops_resumes_bounds_and_continues(photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "search"

    @contextlib.contextmanager
    def ctrl_c_at_first_step():  # what the trainer's handler records on a Ctrl-C
        yield [signal.SIGINT]

    # Ctrl-C in the first proxy: it saves its last.pt after one step and the search stops.
    with monkeypatch.context() as m:
        m.setattr(gam, "_stop_on_signals", ctrl_c_at_first_step)
        assert _search(photos, out) == 130
    first = out / "runs" / NAMES[0]
    assert (first / "last.pt").exists() and not (first / "final.pt").exists()
    assert not (first / "result.json").exists()
    capsys.readouterr()

    # Again, one candidate at most: the interrupted proxy continues (training.train --resume).
    assert _search(photos, out, "--max-candidates", "1") == 0
    text = capsys.readouterr().out
    assert "0 already trained; training 1 now" in text and "resumed from" in text
    result = json.loads((first / "result.json").read_text())
    assert result["steps"] == 4 and 5 < result["psnr"] < 60
    config = tomllib.loads((first / "config.toml").read_text())
    assert config["sigma"] == [0, 50] and config["seed"] == 0 and config["net"]["tail_kernel"] == 1
    rows = _table(out)
    assert rows[NAMES[0]]["psnr"] and not rows[NAMES[1]]["psnr"]

    # Again: the finished one is skipped, the other trained.
    assert _search(photos, out) == 0
    text = capsys.readouterr().out
    assert "1 already trained; training 1 now" in text and "resumed from" not in text
    rows = _table(out)
    assert all(rows[n]["psnr"] for n in NAMES)
    assert float(rows[NAMES[0]]["psnr"]) == pytest.approx(result["psnr"], abs=1e-4)
    front = [n for n in NAMES if rows[n]["pareto"] == "1"]
    assert front[0] == min(NAMES, key=lambda n: int(rows[n]["luts"]))
    md = (out / "search-pynq-z2-64x48-30fps.md").read_text()
    assert "## Pareto front" in md and NAMES[1] in md

    # Nothing left; other training settings are refused, naming the difference.
    assert _search(photos, out) == 0
    assert "2 already trained; training 0 now" in capsys.readouterr().out
    assert _search(photos, out, "--seed", "3") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out} holds a search with other training settings (seed: 0 -> 3): "
                   f"use those, or search into another --out"]


def test_shards_share_a_search_folder(photos, tmp_path, capsys):
    out = tmp_path / "search"
    assert _search(photos, out, "--shard", "1/2") == 0
    assert "0 already trained; training 1 now (shard 1/2: 1 of 2 shapes)" in capsys.readouterr().out
    rows = _table(out)  # cost order: the 1x1 tail first, so shard 1 has the 3x3 tail
    assert rows[NAMES[1]]["psnr"] and not rows[NAMES[0]]["psnr"]
    assert _search(photos, out, "--shard", "0/2") == 0
    assert all(_table(out)[n]["psnr"] for n in NAMES)
    assert not list(out.rglob("*.partial"))


@pytest.mark.parametrize("options, extra, status, words", [
    ({"board": "nope"}, [], 1, "unknown board 'nope'"),
    ({"board": "icebreaker"}, [], 1, "no LUT and block RAM estimate"),
    ({"frame": "640"}, [], 2, "is not WIDTHxHEIGHT"),
    ({"heads": "5x5"}, [], 2, "5x5: not one of"),
    ({"formats": "10"}, [], 2, "is not BITS.FRAC"),
    ({"formats": "8.8"}, [], 2, "fraction bits must be fewer"),
    ({"lut_share": "1.5"}, [], 2, "must be above 0 and at most 1"),
    ({"w_bits": "1"}, [], 1, "w_bits=1 must be 2.."),
    ({}, ["--no-such"], 2, "unrecognized arguments"),
    ({}, ["--shard", "2/2"], 2, "is not I/N with 0 <= I < N"),
])
def test_bad_input_is_one_error_line(options, extra, status, words, capsys):
    try:
        got = main([*_argv(**options), "--dry-run", *extra])
    except SystemExit as e:
        got = e.code
    assert got == status
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and words in err[0], err


def test_training_needs_data_and_out(photos, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(TWO)
    assert e.value.code == 2 and "--data and --out are needed" in capsys.readouterr().err
    assert main([*TWO, "--data", str(tmp_path), "--out", str(tmp_path / "s")]) == 1
    assert "no train/ folder" in capsys.readouterr().err
    # The proxies' settings go through training's own checks before anything is written.
    assert main([*TWO, "--data", str(photos), "--out", str(tmp_path / "s"), "--sigma", "30", "20"]) == 1
    assert "--sigma 30 20: must satisfy 0 <= LO <= HI <= 255" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
