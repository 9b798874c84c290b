"""accel.perf's cost model against the recorded syntheses (bench/results/cost_model_synth.json):
no Yosys needed, so CI checks the model whenever it or the hardware's folds change."""

import pytest

from accel import perf
from bench import cost_model

MEASURED = cost_model.load_measured(cost_model.MEASURED)


def test_every_family_has_recorded_shapes():
    for family in perf.COSTS:
        assert any(e["family"] == family for e in MEASURED), family


@pytest.mark.parametrize("row", cost_model.compare(MEASURED), ids=lambda r: f"{r['board']}-{r['shape']}")
def test_estimate_within_ten_percent_of_synthesis(row):
    for res in ("LUT", "FF"):
        assert abs(row["error_pct"][res]) <= 10, (res, row["synthesized"], row["predicted"])


def test_costs_are_the_fit_of_the_recorded_syntheses():
    """The constants in accel.perf are what bench.cost_model fits, not tuned by hand."""
    assert cost_model.fit(MEASURED) == perf.COSTS


def test_a_changed_fold_asks_for_a_new_synthesis():
    entry = dict(MEASURED[0], fold=[{"pe": 1, "simd": 1, "out_pe": 1}])
    with pytest.raises(ValueError, match="no longer the one synthesized"):
        cost_model.compare([entry])


def test_shape_names():
    model, fold, dsp = cost_model.shape_model("pynq-z2", "depthwise32-ii20-dsp0")
    assert [l.c_out for l in model.layers] == [32, 32, 32, 32, 12]
    assert max(perf.layer_ii(l, f) for l, f in zip(model.layers, fold)) <= 20 and dsp == 0
    with pytest.raises(ValueError, match="^shape 'wide64'"):
        cost_model.shape_model("pynq-z2", "wide64")
