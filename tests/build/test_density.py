"""bench.density without Yosys: the layer model it cuts, the folds it compares, and the split of
Yosys' per-module statistics into the layer's blocks (a hand-made hierarchy)."""

import pytest

import spec
from accel import perf
from bench.density import layer_model, layer_split, with_pe


@pytest.mark.parametrize("channels", [40, 64])
def test_layer_model_is_head_binary_residual_layer_tail(channels):
    m = layer_model(spec.load("models/denoise.gamir"), channels)
    head, body, tail = m.layers
    assert (head.kernel, body.kind, body.kernel, tail.kernel) == (1, "binary", 3, 1)
    assert body.c_in == body.c_out == head.c_out == tail.c_in == channels
    assert body.stage.residual == 1  # its own input, as the shipped body's


def test_with_pe_keeps_the_cycles_and_lanes_of_the_shipped_fold():
    m = layer_model(spec.load("models/denoise.gamir"), 40)
    layer = m.layers[1]
    shipped = perf.fold_within(m, 40)[1]
    for pe in (1, 4, 10, 40):
        f = with_pe(layer, 40, pe)
        assert f.pe == pe and perf.layer_ii(layer, f) <= 40
        assert f.pe * f.simd == shipped.pe * shipped.simd == 360
    with pytest.raises(ValueError, match="--pe 7"):
        with_pe(layer, 40, 7)


def test_layer_split_counts_each_module_once_in_its_block():
    # Yosys' per-module cells: a module's own cells plus one cell per submodule instance.
    modules = {
        "\\top": {"\\top.l2_mvu": 1, "\\top.l2_window": 1, "\\top.l1_mvu": 1,
                  "\\top.fork1": 1, "\\top.delay1_2": 1, "\\top.l2_gather": 1, "LUT6": 5},
        "\\top.l1_mvu": {"LUT6": 100},  # another layer: left out
        "\\top.l2_mvu": {"\\top.l2_mvu.weights": 1, "LUT6": 30, "FDRE": 20, "CARRY4": 2},
        "\\top.l2_mvu.weights": {"RAM64M": 3, "FDRE": 9},
        "\\top.l2_window": {"LUT6": 7, "FDRE": 12, "RAMB18E1": 1},
        "\\top.fork1": {"LUT6": 1},
        "\\top.delay1_2": {"\\top.delay1_2.fifo": 1, "FDRE": 4},
        "\\top.delay1_2.fifo": {"LUT6": 2, "RAMB36E1": 1},
        "\\top.l2_gather": {"FDRE": 40, "LUT3": 2},
    }
    split = layer_split("xc7", modules, 2)
    assert set(split) == {"pe_array", "weights", "window", "residual_fifo", "streams"}
    assert (split["pe_array"]["LUT"], split["pe_array"]["FF"], split["pe_array"]["carry"]) == (30, 20, 2)
    assert (split["weights"]["LUT"], split["weights"]["lutram"]) == (12, 3)  # RAM64M: 4 LUTs
    assert split["window"]["BRAM"] == 0.5
    assert (split["residual_fifo"]["LUT"], split["residual_fifo"]["FF"],
            split["residual_fifo"]["BRAM"]) == (3, 4, 1)
    assert split["streams"]["modules"] == {"l2_gather": {"LUT": 2, "FF": 40}}
