"""The manifest type: JSON round trip, the schema version, manifests written before it."""

import json

import pytest

import spec
from accel import regmap
from accel.manifest import SCHEMA_VERSION, Manifest, ManifestError


@pytest.fixture
def model():
    return spec.random_model(3, channels=4, n_binary=2)


def test_round_trip(model):
    fold = [{"pe": 2, "simd": 3}] + [None] * (len(model.layers) - 1)
    m = Manifest.describe(model, fold, max_width=48, dsp_budget=7, dsp_terms=[1, 0, 0, 0])
    m = m.with_build({"board": "b", "clock_mhz": 50.0}, {"accelerator": "gam", "dma": "dma"})
    back = Manifest.from_json(m.to_json())
    assert back == m
    assert back.fold == regmap.normalize_fold(model, fold)
    assert back.clock_hz == 50e6
    assert json.loads(m.to_json())["schema_version"] == SCHEMA_VERSION


def test_reads_a_manifest_without_schema_version(model):
    """Manifests written before the schema version (version 0) have the same fields."""
    d = Manifest.describe(model, None, max_width=16).to_dict()
    del d["schema_version"]
    m = Manifest.from_dict(d)
    assert m.model.shape_hash == model.shape_hash() and m.max_width == 16
    assert m.clock_hz == m.performance["clock_hz"]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(schema_version=99), r"^schema_version 99 is not supported"),
    (lambda d: d.pop("fold"), r"^it needs model.shape_hash, model.digest, max_width and fold$"),
    (lambda d: d.update(fold=[{"pe": 1}]), r"^fold entry is missing or has a bad 'simd'"),
    (lambda d: d.update(max_width="wide"), r"^a field has the wrong type"),
])
def test_errors_name_the_problem(model, edit, message):
    d = Manifest.describe(model, None, max_width=16).to_dict()
    edit(d)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(d)
