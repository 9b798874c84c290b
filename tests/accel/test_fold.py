"""accel.fold: the --fold language resolved once; a resolved Fold passes every layer below
unchanged; one --frame parser (WxH on the command line, (height, width) in code)."""

import argparse

import pytest

import spec
from accel import perf, regmap
from accel.fold import resolve_fold
from gamir import cli


def test_the_language_names_the_same_folds_as_the_cost_model():
    m = spec.random_model(3, channels=4, n_binary=2)
    assert resolve_fold(m, "full") == regmap.Fold.full(m) == regmap.normalize_fold(m, None)
    assert resolve_fold(m, "ii:8") == regmap.normalize_fold(m, perf.fold_within(m, 8))
    assert resolve_fold(m, '[{"pe": 2}, null, null, null]')[0] == regmap.LayerFold(2, m.layers[0].taps, 2)
    for bad, why in (("lut:x", "lut:N needs a whole number"), ("ii:0", "at least 1"),
                     ("fast", "is not full, auto"), ("@/nonexistent.json", "cannot read the file")):
        with pytest.raises(regmap.FoldError, match=why):
            resolve_fold(m, bad)


def test_a_resolved_fold_is_not_normalized_again(monkeypatch):
    m = spec.random_model(3, channels=4, n_binary=2)
    fold = resolve_fold(m, "ii:4")
    calls = []
    monkeypatch.setattr(regmap, "normalize_fold", lambda *a: calls.append(a))
    assert resolve_fold(m, fold) is fold and regmap.given_fold(m, fold) is fold
    perf.report(m, fold, height=4, width=5)
    regmap.regions(m, fold)
    assert calls == []


def test_frames_are_width_x_height_on_the_command_line():
    assert cli.frame_size("640x480") == (480, 640)
    assert cli.frame_text((480, 640)) == "640x480"
    for bad in ("640", "0x480", "ax480"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.frame_size(bad)
    assert cli.frame_sizes("640x480,1280x720") == [(480, 640), (720, 1280)]
    for bad in ("640x480,", "640x480;1280x720"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.frame_sizes(bad)
