"""Record what today's code computes, so a refactor can be held to it bit for bit.

Run once on the commit to hold against (the file records which); ``tests/spec/test_golden.py``
and ``tests/hw/test_golden.py`` compare the current code with it. The expected values come from
the old code, never from the code under test::

    git archive 2b9042d | tar -x -C /tmp/base
    cd /tmp/base && PYTHONPATH=$PWD python /path/to/tests/data/record_golden.py golden.npz 2b9042d

A retrained or new shipped model has no old code to hold it to: its key alone is recorded
(again) from the commit that ships it (``record_golden.py tests/data/golden.npz COMMIT models/NAME.gamir``),
listed in the file's ``_rerecorded``. An intended change of the hardware schedule (folding,
cycles) re-records only what the schedule decides, checking that everything else is unchanged
(``record_golden.py tests/data/golden.npz COMMIT --schedule``; the file's ``_schedule``).

Recorded per model (the shipped ``models/*.gamir`` and a few ``spec.random_model`` seeds): the
file digest, the payload digest (every array as stored) and shape hash, ``spec.restore`` of a fixed
image (the reference, equal to the fast spec), the
parameter words the board loads (full fold and the ``auto`` fold), and ``accel.perf.report``.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

import spec
from accel.fold import resolve_fold

try:  # the contract package, after the recorded commit
    from accel import perf, regmap
except ImportError:  # the recorded commit
    from hw import perf, regmap

#: Random models held to the recording: plain draws and the mixed-layer variant.
RANDOM = [dict(seed=s) for s in range(6)] + [dict(seed=s, mix_layers=True) for s in (7, 8)]
IMAGE = (24, 48)  # divisible by every pixel step (1..4)


def load(key):
    """The model a key names: ``models/NAME.gamir`` of this checkout or a random draw."""
    kind, _, name = key.partition("/")
    if kind == "models":
        return spec.load(Path(spec.__file__).resolve().parents[1] / key)
    kw = dict(item.split("=") for item in name.split(","))
    return spec.random_model(int(kw.pop("seed")), **{k: v == "True" for k, v in kw.items()})


def image_for(model, seed):
    return spec.random_image(seed, *IMAGE, model.image_channels)


def param_digest(model, fold) -> str:
    h = hashlib.sha256()
    for addr, words in regmap.param_writes(model, fold):
        h.update(int(addr).to_bytes(4, "little"))
        h.update(np.asarray(words, dtype="<u4").tobytes())
    return h.hexdigest()


def payload_digest(model) -> str:
    """SHA-256 of the model file's payload: every parameter array as stored."""
    data = spec.to_bytes(model)
    version, hlen = struct.unpack_from("<II", data, 8)
    prefix = 16 if version == 1 else 20  # version 2 adds the header's CRC-32 to the prefix
    return hashlib.sha256(data[prefix + hlen:]).hexdigest()


def record(model, key, seed, out, meta):
    img = image_for(model, seed)
    out[key] = spec.restore(model, img, "reference")
    assert np.array_equal(out[key], spec.restore(model, img, "fast")), key
    auto = resolve_fold(model, "auto")
    meta[key] = {
        "digest": spec.digest(model),
        "payload": payload_digest(model),
        "shape_hash": model.shape_hash(),
        "image_seed": seed,
        "params_full": param_digest(model, None),
        "params_auto": param_digest(model, auto),
        "fold_auto": [f.as_dict() for f in auto],
        "regions_auto": [r.as_dict() for r in regmap.regions(model, auto)],
        "perf_full": perf.report(model, None, height=360, width=640),
        "perf_auto": perf.report(model, auto, height=360, width=640),
    }


def rerecord(path, commit, key):
    """Record one shipped model again into an existing file (the model was retrained or is
    new, so no old code computed it): the key's entries change or join (a new model takes the
    next image seed of the shipped ones), ``_rerecorded`` names the commit."""
    root = Path(spec.__file__).resolve().parents[1]
    data = np.load(path)
    out = {k: data[k] for k in data.files if k != "meta"}
    meta = json.loads(data["meta"].tobytes())
    if key in meta:
        seed = meta[key]["image_seed"]
    else:
        seed = 1 + max(v["image_seed"] for k, v in meta.items() if k.startswith("models/"))
    record(spec.load(root / key), key, seed, out, meta)
    meta.setdefault("_rerecorded", {})[key] = commit
    out["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(path, **out)


#: What the hardware schedule decides (the ``auto`` fold, its regions and parameter words, the
#: performance model's report): an intended change of the schedule moves these and nothing else.
SCHEDULE = ("fold_auto", "regions_auto", "params_auto", "perf_full", "perf_auto")


def rerecord_schedule(path, commit):
    """Record the :data:`SCHEDULE` entries of every key again, after a change of the folding or
    of the hardware's cycles (``record_golden.py tests/data/golden.npz COMMIT --schedule``).
    Every other entry (outputs, digests, the full fold's parameter words) must still equal the
    recording: the arithmetic stays held to the old code. ``_schedule`` names the commit."""
    data = np.load(path)
    out = {k: data[k] for k in data.files if k != "meta"}
    meta = json.loads(data["meta"].tobytes())
    for key, old in meta.items():
        if key.startswith("_"):
            continue
        model = load(key)
        now, fresh = {}, {}
        record(model, key, old["image_seed"], now, fresh)
        assert np.array_equal(now[key], out[key]), f"{key}: the restored image changed"
        for field, value in fresh[key].items():
            # A random model's file digest is not held (its header follows the format's
            # defaults, as test_golden says); everything else outside the schedule is.
            if field not in SCHEDULE and (field != "digest" or key.startswith("models/")):
                assert value == old[field], f"{key}: {field} changed"
        old.update({field: fresh[key][field] for field in SCHEDULE})
    meta["_schedule"] = commit
    out["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(path, **out)


def main(path, commit):
    root = Path(spec.__file__).resolve().parents[1]  # the checkout being recorded
    out, meta = {}, {}
    for i, f in enumerate(sorted((root / "models").glob("*.gamir"))):
        record(spec.load(f), f"models/{f.name}", 100 + i, out, meta)
    for i, kw in enumerate(RANDOM):
        key = "random/" + ",".join(f"{k}={v}" for k, v in kw.items())
        record(spec.random_model(**kw), key, 200 + i, out, meta)
    meta["_commit"] = commit
    out["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    if sys.argv[3:] == ["--schedule"]:
        rerecord_schedule(*sys.argv[1:3])
    else:
        (rerecord if len(sys.argv) > 3 else main)(*sys.argv[1:4])
