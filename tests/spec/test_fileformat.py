"""The model file: round trip, determinism, and one clear error per kind of damage."""

import dataclasses
import hashlib
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import spec
from spec.model import ModelError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model():
    return spec.random_model(7, channels=5, n_binary=3, noise_channel=True, unshuffle=2)


@pytest.mark.parametrize("seed", range(25))
def test_round_trip_keeps_every_value(seed):
    m = spec.random_model(seed)
    m2 = spec.from_bytes(spec.to_bytes(m))
    assert m2.shape_dict() == m.shape_dict()
    assert spec.to_bytes(m2) == spec.to_bytes(m)
    for a, b in zip(m.layers, m2.layers):
        for name, arr in a.arrays().items():
            np.testing.assert_array_equal(arr, b.arrays()[name], err_msg=name)
    x0 = spec.model_input(m, spec.random_image(seed, 4 * m.steps.unshuffle, 6 * m.steps.unshuffle, m.image_channels))
    np.testing.assert_array_equal(spec.run_tensor(m, x0), spec.run_tensor(m2, x0))


def test_save_load_and_metadata(tmp_path, model):
    model.provenance = {"command": "python -m training.train --task denoise", "psnr": 30.1}
    p = tmp_path / "m.gamir"
    spec.save(model, p)
    m2 = spec.load(p)
    assert m2.provenance == model.provenance
    assert (m2.task, m2.name, m2.steps) == (model.task, model.name, model.steps)
    assert spec.digest(m2) == spec.digest(model)
    assert list(tmp_path.iterdir()) == [p]  # no temporary file left
    umask = os.umask(0o022)
    try:
        spec.save(model, p)
    finally:
        os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o644  # not the temporary file's 0600


def test_shape_hash_ignores_parameters():
    a = spec.random_model(3, channels=4, n_binary=2)
    b = spec.random_model(3, channels=4, n_binary=2)
    b.layers[1] = dataclasses.replace(b.layers[1], weights=1 - b.layers[1].weights)
    assert a.shape_hash() == b.shape_hash() and spec.digest(a) != spec.digest(b)


def _err(data, pattern):
    with pytest.raises(ModelError, match=pattern):
        spec.from_bytes(data)


def test_not_a_model(model):
    _err(b"", r"^model file: 0 bytes is too short to be a gamir model$")
    _err(pickle.dumps({"layers": []}) + bytes(32), r"^model file: not a gamir model \(bad magic bytes\)$")


def test_wrong_version(model, model_file):
    header, payload = model_file.split(spec.to_bytes(model))
    _err(model_file.join(header, payload, version=99),
         r"^model file: format version 99 is not supported \(this gamir reads versions 1, 2\)")


def test_truncated(model):
    data = spec.to_bytes(model)
    _err(data[:20], r"^model file: truncated inside the header$")
    _err(data[:-3], r"payload is \d+ bytes, header says \d+ \(file truncated\)$")


def test_trailing_junk(model):
    _err(spec.to_bytes(model) + b"junk", r"^model file: 4 bytes of trailing data after the payload "
                                         r"\(something was appended to the file\)$")


def test_corrupted_payload(model):
    data = bytearray(spec.to_bytes(model))
    data[-1] ^= 0x40
    _err(bytes(data), r"^model file: payload checksum mismatch \(file corrupted\)$")


def test_bad_json(model, model_file):
    header, payload = model_file.split(spec.to_bytes(model))
    text = b"x" + json.dumps(header).encode()[1:]
    broken = struct.pack("<8sIII", b"GAMIRMDL", 2, len(text), zlib.crc32(text)) + text + payload
    _err(broken, r"^model file: header is not valid JSON")


def test_header_change_is_caught():
    """Issue 33's case: the shipped denoiser's ``"shift":20`` edited to ``21`` in the file ran
    with different output; the header CRC now refuses it, as the payload's a flipped bit."""
    data = (ROOT / "models" / "denoise.gamir").read_bytes()
    assert struct.unpack_from("<8sI", data)[1] == 2 and b'"shift":20,' in data
    _err(data.replace(b'"shift":20,', b'"shift":21,', 1),
         r"^model file: header checksum mismatch \(the header was changed or corrupted\)$")


def test_version_1_files_still_load_with_the_same_digest(model, model_file):
    """A version 1 file (no header CRC) loads as the same model; its header gets every other
    check (here: a bad type), and re-saving makes it version 2 with the same digest."""
    v1 = spec.to_bytes(model, version=1)
    assert struct.unpack_from("<8sI", v1)[1] == 1
    back = spec.from_bytes(v1)
    assert spec.to_bytes(back) == spec.to_bytes(model)
    assert spec.digest(back) == spec.digest(model) == hashlib.sha256(v1).hexdigest()
    header, payload = model_file.split(spec.to_bytes(model))
    header["layers"][0]["c_out"] = "8"
    _err(model_file.join(header, payload, version=1), r"^model file: layer 1.c_out has the wrong type")


@pytest.fixture
def edit(model, model_file):
    """``edit(fn)``: ``model``'s file with ``fn(header, payload)`` applied (the payload's length
    and CRC repaired)."""
    def apply(fn):
        header, payload = model_file.split(spec.to_bytes(model))
        payload = fn(header, bytearray(payload)) or payload
        return model_file.join(header, bytes(payload), fix_lengths=True)
    return apply


def test_inconsistent_shapes(edit):
    def wrong_cin(h, p):
        h["layers"][1]["c_in"] += 1
    _err(edit(wrong_cin),
         r"^model file: layer 2.weights holds 29 packed bytes, shape \(5, 3, 3, 6\) needs 34$")

    def short_threshold(h, p):
        h["layers"][-1]["arrays"]["scale"]["shape"] = [2]
        h["layers"][-1]["arrays"]["scale"]["nbytes"] = 8
    _err(edit(short_threshold), r"^layer \d: scale has shape \(2,\), expected \(\d+,\)$")


def test_missing_key_and_bad_types(edit):
    def drop(h, p):
        del h["layers"][0]["kernel"]
    _err(edit(drop), r"^model file: layer 1 is missing 'kernel'$")

    def boolish(h, p):
        h["layers"][0]["kernel"] = True
    _err(edit(boolish), r"^model file: layer 1.kernel has the wrong type \(bool\)$")

    def dtype(h, p):
        h["layers"][0]["arrays"]["weights"]["dtype"] = "object"
    _err(edit(dtype), r"^model file: layer 1.weights has unsupported dtype 'object'$")

    def outside(h, p):
        h["layers"][0]["arrays"]["weights"]["offset"] = 10**6
    _err(edit(outside), r"^model file: layer 1.weights lies outside the payload")


def test_out_of_range_values(edit):
    def narrow_weights(h, p):
        h["layers"][0]["w_bits"] = 2  # the stored int8 weights no longer fit 2 bits
    _err(edit(narrow_weights), r"^layer 1: weights value -?\d+ is (above 1|below -2)$")


def test_load_names_the_file(tmp_path):
    p = tmp_path / "broken.gamir"
    p.write_bytes(b"GAMIRMDL")
    with pytest.raises(ModelError, match=r"broken.gamir: model file: 8 bytes is too short"):
        spec.load(p)
    with pytest.raises(ModelError, match=r"^cannot read model file .*missing.gamir.*No such file"):
        spec.load(tmp_path / "missing.gamir")


@pytest.mark.parametrize("seed", range(8))
def test_round_trip_with_activation(seed):
    m = spec.random_model(seed, n_binary=3, act_prob=1.0)
    assert any(getattr(l.stage, "act", None) for l in m.layers)
    m2 = spec.from_bytes(spec.to_bytes(m))
    assert m2.shape_hash() == m.shape_hash() and spec.to_bytes(m2) == spec.to_bytes(m)
    for a, b in zip(m.layers, m2.layers):
        assert a.arrays().keys() == b.arrays().keys()
        for name, arr in a.arrays().items():
            np.testing.assert_array_equal(arr, b.arrays()[name], err_msg=name)


@pytest.mark.parametrize("seed", range(8))
def test_round_trip_with_depthwise(seed, model_file):
    """``groups`` is written for depthwise layers only; weights keep their (c, k, k, 1) shape."""
    m = spec.random_model(seed, channels=[3, 8][seed % 2], n_binary=2, depthwise_prob=1.0)
    data = spec.to_bytes(m)
    header, _ = model_file.split(data)
    for layer, entry in zip(m.layers, header["layers"]):
        assert entry.get("groups", 1) == layer.groups
        assert ("groups" in entry) == layer.depthwise
        if layer.kind == "fixed":
            assert entry["arrays"]["weights"]["shape"] == list(layer.weight_shape)
    m2 = spec.from_bytes(data)
    assert m2.shape_hash() == m.shape_hash() and spec.to_bytes(m2) == data
    assert [l.groups for l in m2.layers] == [l.groups for l in m.layers]
    for a, b in zip(m.layers, m2.layers):
        np.testing.assert_array_equal(a.weights, b.weights)


def test_bad_groups_in_file(model_file):
    m = spec.random_model(3, channels=4, n_binary=2, depthwise_prob=1.0)
    i = next(i for i, l in enumerate(m.layers) if l.depthwise)
    header, payload = model_file.split(spec.to_bytes(m))
    header["layers"][i]["groups"] = "4"
    with pytest.raises(ModelError, match=rf"^model file: layer {i + 1}.groups has the wrong type \(str\)$"):
        spec.from_bytes(model_file.join(header, payload))
    header["layers"][i]["groups"] = m.layers[i].c_in + 1
    with pytest.raises(ModelError, match=rf"^layer {i + 1}: groups={m.layers[i].c_in + 1} must be 1 or equal"):
        spec.from_bytes(model_file.join(header, payload))


def test_noise_gain_round_trips_and_is_absent_from_files_without_it(model):
    plain = spec.to_bytes(model)
    assert b"noise_gain" not in plain
    gained = dataclasses.replace(model, steps=dataclasses.replace(model.steps, noise_gain=(0, 900, 4096)))
    back = spec.from_bytes(spec.to_bytes(gained))
    assert back.steps.noise_gain == (0, 900, 4096)
    assert back.layers[-1].stage.gain == gained.validate().layers[-1].stage.gain
    # The arrays stored are the trained ones, not the ones scaled for the file's level.
    assert np.array_equal(back.layers[-1].stage.scale, model.validate().layers[-1].stage.scale)
    assert spec.to_bytes(back) == spec.to_bytes(gained)
