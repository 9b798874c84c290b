"""The gamir model file (``.gamir``): a JSON header and raw little-endian arrays.

Layout (all integers little-endian)::

    8 bytes   magic  b"GAMIRMDL"
    4 bytes   format version (uint32), currently 2
    4 bytes   header length H (uint32)
    4 bytes   CRC-32 of the header's H bytes (version 2 on; version 1 has no such field)
    H bytes   header, UTF-8 JSON (below)
    rest      payload: the arrays, each at the offset the header gives

The header holds the task, name, image channels, pixel steps, provenance (free JSON: the
command, data and results that produced the model), the layer list with every scalar, and for
each parameter array its dtype, shape, byte offset and length, plus a CRC-32 of the payload.
So every byte past the fixed prefix is under a checksum: a changed scalar in the header (a
layer's ``shift``) is refused like a flipped payload bit. The magic, version and length are
checked by value.

Version 1 files (no header CRC) still load: their header is checked as far as it can be
without one (valid JSON, every key present with its type, shapes, offsets and lengths that fit
the payload, the payload's length and CRC, and the whole model's validation), which catches
truncation and most damage but not a value changed into another valid one. ``spec.save(
spec.load(F), F)`` rewrites such a file as version 2 with the same model, the same
:func:`digest`.

A layer entry holds the convolution's scalars (``kernel``, ``c_in``, ``c_out`` and the kind's
:meth:`~spec.kinds.Kind.file_fields`: ``kind``, ``w_bits``, and ``groups`` only for a
depthwise layer, so dense layers keep their bytes),
``output`` (the stage's :attr:`~spec.stages.Stage.name`) and the stage's own
scalars and arrays (:attr:`~spec.stages.Stage.SCALARS`, :attr:`~spec.stages.Stage.ARRAYS`).
Version 1 wrote every scalar of the former flat layer for every stage; the scalars a stage
does not have are still written, at :data:`V1_DEFAULTS`, so saving stays byte-identical and
older readers still read new files. The reader ignores them.
Binary weights are stored bit-packed (``np.packbits``, big-endian bit order, over the
flattened (c_out, k, k, c_in) array); fixed weights as int8, shape (c_out, k, k, c_in // groups).

Loading parses JSON and copies bytes into numpy arrays of whitelisted dtypes: it never runs
code from the file (no pickle). Every failure raises :class:`spec.model.ModelError` with one
message naming the problem.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .kinds import kind_of
from .model import STAGES, Layer, Model, ModelError, PixelSteps

__all__ = ["FORMAT_VERSION", "MAGIC", "V1_DEFAULTS", "to_bytes", "from_bytes", "save", "load",
           "digest"]

MAGIC = b"GAMIRMDL"
FORMAT_VERSION = 2
#: The fixed prefix of each version: magic, version, header length (, header CRC-32).
_PREFIX = {1: struct.Struct("<8sII"), 2: struct.Struct("<8sIII")}
_MAGIC_VERSION = struct.Struct("<8sI")
_DTYPES = {"uint8": np.uint8, "int8": np.int8, "int16": np.int16, "int32": np.int32}
#: The convolution's scalars in a layer entry, with their types.
_CONV_SCALARS = {"kind": (str,), "kernel": (int,), "c_in": (int,), "c_out": (int,),
                 "output": (str,), "w_bits": (int,)}
#: Version 1's scalars that not every stage has, written at these values where a stage lacks
#: them (what the former flat layer held there by default).
V1_DEFAULTS = {"shift": 0, "scale_bits": 16, "out_bits": 8, "frac_bits": 0, "residual": None}


def _stored(layer: Layer, name: str, a: np.ndarray) -> np.ndarray:
    if name == "weights":
        return layer.conv.stored_weights(a)
    return np.asarray(a).astype(layer.stage.ARRAYS[name])


def to_bytes(model: Model, version: int = FORMAT_VERSION) -> bytes:
    """Serialize a validated model; the same model always gives the same bytes.

    ``version`` 1 writes the former layout (no header CRC): :func:`digest` hashes
    it, so a model keeps the digest its builds' manifests name whatever version stores it.
    """
    if version not in _PREFIX:
        raise ValueError(f"format version {version} is not one of {tuple(_PREFIX)}")
    model = model.validate()
    payload = bytearray()
    layers = []
    for layer in model.layers:
        entry: dict[str, Any] = {**V1_DEFAULTS, "kernel": layer.kernel,
                                 "c_in": layer.c_in, "c_out": layer.c_out,
                                 "output": layer.stage.name, **layer.conv.file_fields(layer),
                                 **layer.stage.scalars()}
        arrays = {}
        for name, a in layer.arrays().items():
            stored = np.ascontiguousarray(_stored(layer, name, a))
            arrays[name] = {
                "dtype": stored.dtype.name,
                "shape": list(stored.shape),
                "offset": len(payload),
                "nbytes": stored.nbytes,
            }
            payload += stored.astype(stored.dtype.newbyteorder("<")).tobytes()
        entry["arrays"] = arrays
        layers.append(entry)
    header = {
        "format": "gamir-model",
        "task": model.task,
        "name": model.name,
        "image_channels": model.image_channels,
        # noise_gain only where a model has one: files without it keep their bytes.
        "steps": {k: (list(v) if k == "noise_gain" else v) for k, v in vars(model.steps).items()
                  if k != "noise_gain" or v},
        "provenance": model.provenance,
        "layers": layers,
        "payload_nbytes": len(payload),
        "payload_crc32": zlib.crc32(payload),
    }
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    check = (zlib.crc32(text),) if version >= 2 else ()
    return _PREFIX[version].pack(MAGIC, version, len(text), *check) + text + bytes(payload)


def digest(model: Model) -> str:
    """SHA-256 of the model's version-1 file bytes (saving is deterministic): its header and
    payload, the same whichever format version stores it, so builds' manifests made before
    version 2 still name it. (A function of the file format, not a method of the model: the
    model module does not import its file format.)"""
    return hashlib.sha256(to_bytes(model, version=1)).hexdigest()


def _get(d: dict, key: str, types, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ModelError(f"model file: {where} is missing {key!r}")
    v = d[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
        raise ModelError(f"model file: {where}.{key} has the wrong type ({type(v).__name__})")
    return v


def _as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _read_array(spec: Any, payload: bytes, where: str) -> np.ndarray:
    dtype = _DTYPES.get(_get(spec, "dtype", str, where))
    if dtype is None:
        raise ModelError(f"model file: {where} has unsupported dtype {spec['dtype']!r}")
    shape = _get(spec, "shape", list, where)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ModelError(f"model file: {where} has a bad shape {shape!r}")
    offset = _get(spec, "offset", int, where)
    nbytes = _get(spec, "nbytes", int, where)
    if nbytes != math.prod(shape) * np.dtype(dtype).itemsize:  # Python ints: no overflow
        raise ModelError(f"model file: {where} byte length {nbytes} does not match shape {shape}")
    if offset < 0 or offset + nbytes > len(payload):
        raise ModelError(f"model file: {where} lies outside the payload (file truncated?)")
    stored = np.dtype(dtype).newbyteorder("<")
    raw = np.frombuffer(payload, dtype=stored, count=nbytes // stored.itemsize, offset=offset)
    return raw.astype(dtype).reshape(shape)


def _read_layer(entry: dict, payload: bytes, where: str) -> Layer:
    """One layer entry: the convolution, then its stage from the stage's own fields."""
    conv = {key: _get(entry, key, types, where) for key, types in _CONV_SCALARS.items()}
    if "groups" in entry:  # written only for grouped kinds (depthwise)
        conv["groups"] = _get(entry, "groups", int, where)
    stage_cls = STAGES.get(conv["output"])
    if stage_cls is None:
        raise ModelError(f"{where}: output {conv['output']!r} must be one of {tuple(STAGES)}")
    kind = kind_of(where, conv["kind"], conv.get("groups", 1))
    fields = {key: _get(entry, key, types, where) for key, types in stage_cls.SCALARS.items()
              if key in entry or key not in stage_cls.OPTIONAL_SCALARS}
    arrays = _get(entry, "arrays", dict, where)
    if "weights" not in arrays:
        raise ModelError(f"model file: {where} has no weights array")
    for name, spec in arrays.items():
        if name != "weights" and name not in stage_cls.ARRAYS:
            raise ModelError(f"model file: {where} has an unknown array {name!r}")
        a = _read_array(spec, payload, f"{where}.{name}")
        fields[name] = kind.read_weights(a, conv, where) if name == "weights" else a
    weights = fields.pop("weights")
    del conv["output"]
    return Layer(weights=weights, stage=stage_cls.from_fields(fields), **conv)


def from_bytes(data: bytes) -> Model:
    """Parse and validate a model file's bytes."""
    if len(data) < _PREFIX[1].size:
        raise ModelError(f"model file: {len(data)} bytes is too short to be a gamir model")
    magic, version = _MAGIC_VERSION.unpack_from(data)
    if magic != MAGIC:
        raise ModelError("model file: not a gamir model (bad magic bytes)")
    if version not in _PREFIX:
        raise ModelError(
            f"model file: format version {version} is not supported (this gamir reads "
            f"versions {', '.join(map(str, _PREFIX))})"
        )
    prefix = _PREFIX[version]
    if len(data) < prefix.size:
        raise ModelError("model file: truncated inside the header")
    _, _, hlen, *check = prefix.unpack_from(data)
    text = data[prefix.size : prefix.size + hlen]
    if len(text) < hlen:
        raise ModelError("model file: truncated inside the header")
    if check and zlib.crc32(text) != check[0]:
        raise ModelError("model file: header checksum mismatch (the header was changed or "
                         "corrupted)")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"model file: header is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != "gamir-model":
        raise ModelError("model file: header does not describe a gamir model")
    payload = data[prefix.size + hlen :]
    n = _get(header, "payload_nbytes", int, "header")
    if len(payload) < n:
        raise ModelError(
            f"model file: payload is {len(payload)} bytes, header says {n} (file truncated)"
        )
    if len(payload) > n:
        raise ModelError(
            f"model file: {len(payload) - n} bytes of trailing data after the payload (something "
            f"was appended to the file)"
        )
    if zlib.crc32(payload) != _get(header, "payload_crc32", int, "header"):
        raise ModelError("model file: payload checksum mismatch (file corrupted)")
    steps_d = _get(header, "steps", dict, "header")
    steps = PixelSteps(
        unshuffle=_get(steps_d, "unshuffle", int, "steps"),
        noise_channel=_get(steps_d, "noise_channel", bool, "steps"),
        noise_level=_get(steps_d, "noise_level", int, "steps"),
        shuffle=_get(steps_d, "shuffle", int, "steps"),
        noise_gain=tuple(_get(steps_d, "noise_gain", list, "steps")) if "noise_gain" in steps_d else (),
    )
    layers = []
    for i, entry in enumerate(_get(header, "layers", list, "header"), 1):
        layers.append(_read_layer(entry, payload, f"layer {i}"))
    model = Model(
        layers=layers,
        image_channels=_get(header, "image_channels", int, "header"),
        steps=steps,
        task=_get(header, "task", str, "header"),
        name=_get(header, "name", str, "header"),
        provenance=_get(header, "provenance", dict, "header"),
    )
    return model.validate()


def save(model: Model, path: str | os.PathLike) -> None:
    """Write atomically: a temporary file beside ``path``, then rename.

    The file gets the usual permissions (0666 less the umask), not the temporary file's 0600.
    """
    data = to_bytes(model)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike) -> Model:
    """Read and validate a model file; errors name the file and the problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {str(path)!r}: {e.strerror}") from None
    try:
        return from_bytes(data)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
