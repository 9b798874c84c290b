"""The board's register sequence: what it writes, what its read checks say, and its array form
(how simulator processes receive it)."""

import numpy as np

import spec
from accel import protocol, regmap


def test_setup_loads_every_parameter_word_then_checks_status():
    model = spec.random_model(2, channels=3, n_binary=1)
    ops = protocol.setup_ops(model)
    assert [op.reg for op in ops[:3]] == ["ID", "SHAPE", "CONTROL"]
    writes = regmap.param_writes(model)
    data = [op.value for op in ops if op.reg == "PARAM_DATA"]
    assert data == [int(w) for _, words in writes for w in words]
    assert [op.value for op in ops if op.reg == "PARAM_ADDR"] == [a for a, _ in writes]
    assert ops[-1].reg == "STATUS" and ops[-1].mask == regmap.STATUS_ERR_PARAM_ADDR


def test_read_checks_say_what_is_wrong():
    model = spec.random_model(2, channels=3, n_binary=1)
    ident, shape = protocol.identify_ops(model)
    assert ident.mismatch(regmap.ID_VALUE) is None
    assert "not a gamir accelerator" in ident.mismatch(0x1234)
    assert "built for another model shape" in shape.mismatch(regmap.shape_id(model) ^ 1)
    size = protocol.size_ops(4, 5)[-1]
    assert size.mismatch(regmap.STATUS_BUSY) is None  # only the size error bit counts
    assert "refused the frame size 5x4" in size.mismatch(regmap.STATUS_ERR_FRAME_SIZE)
    assert protocol.Op("write", "WIDTH", 3).mismatch(0) is None


def test_array_form_round_trips_without_messages():
    model = spec.random_model(2, channels=3, n_binary=1)
    ops = protocol.setup_ops(model) + protocol.size_ops(3, 7)
    a = protocol.to_array(ops)
    assert a.dtype == np.int64 and a.shape == (len(ops), 4)
    back = protocol.from_array(a)
    assert [(o.kind, o.reg, o.value, o.mask) for o in back] == \
        [(o.kind, o.reg, o.value, o.mask) for o in ops]
    assert back[0].mismatch(0) == (f"register ID: read 0x0, expected 0x{regmap.ID_VALUE:x} "
                                   f"under mask 0xffffffff")
