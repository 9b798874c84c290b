"""Fuzzing the model-file reader: every mutated file loads as a valid model or fails with one
``ModelError``; nothing else escapes and nothing hangs.

Mutations of real files (seeded random models of every layer kind, and the shipped denoiser):
truncations, bit flips anywhere, payload edits with the checksum repaired (so they reach the
array checks behind the CRC) and header edits (a field's value replaced, removed, retyped or
made extreme, written back with consistent lengths and checksums so they reach validation).
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

import spec
from spec.model import ModelError

CASES = 10_000
ODD_VALUES = [None, True, -1, 0, 1, 2, 3, 7, 255, 2**31, -(2**63), 2**64, 1e308, float("nan"),
              "", "x", "int8", "uint64", "threshold", [], [0], [1, 2, 3], [-1, 4], [2**40, 1],
              {}, {"dtype": "int8"}]


def _paths(node, prefix=()):
    """Every (path, value) inside a JSON tree."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _edit_header(data: bytes, rng: np.random.Generator, parts) -> bytes:
    header, payload = parts.split(data)
    paths = [p for p, _ in _paths(header) if p]
    path = paths[rng.integers(len(paths))]
    parent = header
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    how = rng.integers(4)
    if how == 0 and isinstance(parent, dict):
        del parent[key]
    elif how == 1 and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = parent[key] + int(rng.integers(-3, 4))
    else:
        parent[key] = ODD_VALUES[rng.integers(len(ODD_VALUES))]
    return parts.join(header, payload, fix_lengths=rng.random() < 0.8)


def _mutate(data: bytes, rng: np.random.Generator, parts) -> bytes:
    """One random damage of ``data``; ``parts``: the ``model_file`` fixture."""
    kind = rng.integers(5)
    if kind == 0:  # truncation
        return data[:rng.integers(len(data))]
    if kind == 1:  # bit flips anywhere
        b = bytearray(data)
        for _ in range(rng.integers(1, 9)):
            i = rng.integers(len(b))
            b[i] ^= 1 << rng.integers(8)
        return bytes(b)
    if kind == 2:  # payload bytes changed, checksum repaired: reaches the array checks
        header, payload = parts.split(data)
        p = bytearray(payload)
        for _ in range(rng.integers(1, 9)):
            if p:
                p[rng.integers(len(p))] = rng.integers(256)
        return parts.join(header, bytes(p), fix_lengths=True)
    if kind == 3:  # header edits
        return _edit_header(data, rng, parts)
    # junk appended, or the prefix's header length edited
    if rng.random() < 0.5:
        return data + bytes(rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8))
    magic, version, hlen, check = parts.PREFIX.unpack_from(data)
    hlen = int(rng.choice([0, 1, hlen - 1, hlen + 1, 2**32 - 1]))
    return parts.PREFIX.pack(magic, version, hlen, check) + data[parts.PREFIX.size:]


_SHIPPED = Path(__file__).resolve().parents[2] / "models" / "denoise.gamir"
BASES = [spec.to_bytes(spec.random_model(seed, mix_layers=seed % 3 == 0)) for seed in range(12)]
if _SHIPPED.is_file():
    BASES.append(_SHIPPED.read_bytes())


def _alarm(signum, frame):
    raise TimeoutError("the model-file reader hung on a mutated file")


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM for the hang guard")
def test_mutated_model_files_fail_cleanly(model_file):
    rng = np.random.default_rng(2026)
    outcomes = {"loaded": 0, "refused": 0}
    messages = set()
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in range(CASES):
            base = BASES[case % len(BASES)]
            data = _mutate(base, rng, model_file)
            signal.setitimer(signal.ITIMER_REAL, 5.0)  # any single file: far below a second
            try:
                model = spec.from_bytes(data)
            except ModelError as e:
                outcomes["refused"] += 1
                text = str(e)
                assert text and "\n" not in text, (case, text)
                messages.add(text.split(":")[1][:30] if ":" in text else text[:30])
            else:
                outcomes["loaded"] += 1
                spec.to_bytes(model)  # a loaded model is a whole, valid one
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert outcomes["refused"] > CASES // 2  # most mutations break the file
    assert len(messages) > 10  # and the failures reach many different checks
