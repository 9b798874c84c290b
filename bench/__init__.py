"""Benchmark scripts: each prints its numbers and writes them to a file.

By default the file goes under ``bench/results/local/`` (git-ignored), so running a benchmark
leaves the checkout as it was; ``--out bench/results/NAME.json`` replaces the recorded result
that the docs cite.
"""

import json
from pathlib import Path

__all__ = ["LOCAL_RESULTS", "local_result", "write_result"]

#: Where a benchmark writes unless told otherwise (``.gitignore`` lists it).
LOCAL_RESULTS = Path(__file__).resolve().parent / "results" / "local"


def local_result(name: str) -> Path:
    """``bench/results/local/NAME``: a benchmark's default output."""
    return LOCAL_RESULTS / name


def write_result(result: dict | list, out: Path | None, name: str | None = None, *,
                 indent: int = 2) -> Path:
    """Write ``result`` as JSON to ``out``, or to :func:`local_result` ``(name)`` when ``out`` is
    None (a bench whose ``--out`` defaults to None); return the path."""
    path = out or local_result(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")
    return path
