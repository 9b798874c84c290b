"""The shipped and random models compute what they computed at the recorded commit.

``tests/data/golden.npz`` was written by ``tests/data/record_golden.py`` from the old code
(its ``_commit``): restored images, file digests, shape hashes, the parameter words the board
loads, and the performance model's report. A refactor must leave every one bit-identical."""

import json
from pathlib import Path

import numpy as np
import pytest

import spec
from accel import perf, regmap
from accel.fold import resolve_fold

ROOT = Path(__file__).resolve().parents[1]
DATA = np.load(ROOT / "tests" / "data" / "golden.npz")
META = json.loads(DATA["meta"].tobytes())
KEYS = sorted(k for k in META if not k.startswith("_"))

import sys  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "data"))
import record_golden  # noqa: E402


load = record_golden.load


def test_recording_covers_every_shipped_model():
    shipped = {f"models/{f.name}" for f in (ROOT / "models").glob("*.gamir")}
    assert shipped <= set(KEYS)


@pytest.mark.parametrize("key", KEYS)
def test_model_file_and_shape(key):
    """Every array stored as before, the same shape hash; shipped models byte for byte.

    Random models with threshold layers differ in the header only: the old flat layer wrote
    the scale and output widths such a layer ignores as drawn, the typed stage writes the
    version 1 defaults there (no shipped model has a threshold layer)."""
    model = load(key)
    assert record_golden.payload_digest(model) == META[key]["payload"]
    assert model.shape_hash() == META[key]["shape_hash"]
    if key.startswith("models/"):
        assert spec.digest(model) == META[key]["digest"]


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("key", KEYS)
def test_restore(key, impl):
    model = load(key)
    img = record_golden.image_for(model, META[key]["image_seed"])
    np.testing.assert_array_equal(spec.restore(model, img, impl), DATA[key])


@pytest.mark.parametrize("key", KEYS)
def test_parameter_words_and_performance(key):
    model, want = load(key), META[key]
    auto = resolve_fold(model, "auto")
    assert [f.as_dict() for f in auto] == want["fold_auto"]
    assert [r.as_dict() for r in regmap.regions(model, auto)] == want["regions_auto"]
    assert record_golden.param_digest(model, None) == want["params_full"]
    assert record_golden.param_digest(model, auto) == want["params_auto"]
    got = json.loads(json.dumps(perf.report(model, None, height=360, width=640)))
    assert got == want["perf_full"]
    got = json.loads(json.dumps(perf.report(model, auto, height=360, width=640)))
    assert got == want["perf_auto"]
