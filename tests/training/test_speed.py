"""training.speed: times the trainer's own step and writes what it measured."""

from __future__ import annotations

import json

import pytest

from training.speed import main


def test_times_every_stage_and_writes_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--batch", "2", "--warm", "0", "--timed", "1", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    got = json.loads(out.read_text())
    assert sorted(got["sec_per_step_by_stage"]) == ["1", "2", "3", "4"]
    assert got["patches_per_s"] == pytest.approx(2 / got["sec_per_step"])
    assert got["precision"] == "fp32" and got["sampler_sec_per_batch"] > 0


def test_cuda_only_options_are_one_error_line(tmp_path, capsys):
    assert main(["--compile", "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compile needs a CUDA device" in err
    assert not (tmp_path / "x.json").exists()
