"""accel.regmap: folding rules, parameter packing (decoded back to the model's arrays), stream
packing round trip."""

import numpy as np
import pytest

import spec
from accel import regmap


def test_fold_rules_name_the_layer_and_rule():
    m = spec.random_model(3, channels=4, n_binary=1)
    with pytest.raises(regmap.FoldError, match=r"^layer 2: c_out=4 must be a multiple of pe=3$"):
        regmap.normalize_fold(m, [None, {"pe": 3}, None])
    with pytest.raises(regmap.FoldError, match=r"^layer 2: pe=2 must be a multiple of out_pe=4$"):
        regmap.normalize_fold(m, [None, {"pe": 2, "out_pe": 4}, None])
    with pytest.raises(regmap.FoldError, match=r"^fold has 2 entries, the model has 3 layers$"):
        regmap.normalize_fold(m, [None, None])


def _decode(region, value):
    lane_bits = sum(b for _, b, _ in region.fields)
    out = {name: [] for name, _, _ in region.fields}
    for lane in range(region.lanes):
        off = lane * lane_bits
        for name, bits, sgn in region.fields:
            v = (value >> off) & ((1 << bits) - 1)
            if sgn and v >> (bits - 1):
                v -= 1 << bits
            out[name].append(v)
            off += bits
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_param_words_decode_to_model_arrays(seed):
    m = spec.random_model(seed, channels=4, n_binary=2)
    fold = [{"pe": 2, "simd": 3, "out_pe": 1}] + [None] * (len(m.layers) - 1)
    regions = regmap.regions(m, fold)
    writes = dict(regmap.param_writes(m, fold))
    types = m.tensor_types()
    for r in regions:
        words = writes[r.base].reshape(r.entries, r.stride)
        values = [sum(int(w) << (32 * k) for k, w in enumerate(row[:r.words])) for row in words]
        layer = m.layers[r.layer - 1]
        if r.name == "weights":
            pe, simd = r.fold.pe, r.fold.simd
            w = np.asarray(layer.weights, dtype=np.int64).reshape(layer.c_out, layer.taps)
            sf = layer.taps // simd
            for e, v in enumerate(values):
                n, s = divmod(e, sf)
                got = _decode(r, v)["w"]
                want = w[n * pe:(n + 1) * pe, s * simd:(s + 1) * simd].reshape(-1)
                assert got == want.tolist()
            continue
        dec = [_decode(r, v) for v in values]
        for name, _, _ in r.fields:
            got = np.array([x for d in dec for x in d[name]])
            if name == "threshold":
                lo, hi = regmap.acc_bounds(layer, types[r.layer - 1])
                want = np.clip(layer.stage.threshold, lo - 1, hi + 1)
            elif name == "map":
                want = layer.stage.residual_map + 1
            else:
                want = np.asarray(getattr(layer.stage, name), dtype=np.int64)
            assert got.tolist() == want.tolist(), (r.layer, name)


def test_stream_packing_round_trip():
    x = spec.random_image(0, 3, 5, 13)
    beats = regmap.pack_pixels(x)
    assert beats.shape == (15, 16) and regmap.stream_bits(13) == 128 and regmap.stream_bits(3) == 32
    assert (regmap.unpack_pixels(beats, 3, 5, 13) == x).all()
    ints = regmap.beats_to_ints(beats)
    assert ints[0] & 0xFF == x[0, 0, 0] and (ints[0] >> 96) & 0xFF == x[0, 0, 12]
    assert (regmap.unpack_pixels(ints, 3, 5, 13) == x).all()


def test_dma_registers_have_their_own_window():
    """The open-flow DMA's registers sit above DMA_BASE, the accelerator's below it, all
    distinct words of the 4 KiB AXI4-Lite window; address bit 11 alone tells them apart (the
    register port decodes it)."""
    top = [a for a, _, _ in regmap.REGISTERS.values()]
    dma = [a for a, _, _ in regmap.DMA_REGISTERS.values()]
    assert len(set(top + dma)) == len(top) + len(dma)
    assert all(a % 4 == 0 for a in top + dma)
    assert regmap.DMA_BASE == 1 << 11
    assert all(a < regmap.DMA_BASE for a in top)
    assert all(regmap.DMA_BASE <= a < regmap.DMA_BASE + 0x20 for a in dma)  # 3 word bits
    assert max(dma) < 1 << regmap.AXIL_ADDR_BITS


def test_dma_frame_bytes_are_the_packed_array():
    """A frame in DDR is pack_pixels' array: dma_bytes is its size, whole 8-byte beats hold
    whole pixels (or a pixel whole beats)."""
    for c in (1, 3, 4, 5, 13, 17):
        x = np.zeros((3, 5, c), np.uint8)
        assert regmap.dma_bytes(15, c) == regmap.pack_pixels(x).nbytes
        b = regmap.stream_bytes(c)
        assert regmap.DMA_BEAT_BYTES % b == 0 or b % regmap.DMA_BEAT_BYTES == 0
