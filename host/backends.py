"""Which backend runs the accelerator: ``emulate`` and ``pynq`` from host, others registered.

Host's own backends are imported here, on use. A backend that needs what the board image does
not have (the Verilator model needs amaranth, cocotb and Verilator) lives in the package that
has it and registers its class under the entry-point group :data:`GROUP` (``sim`` registers
``verilator`` in pyproject.toml): host never imports it by name, and without the dev install
it is simply not there.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

from spec import Model

from .backend import Backend, EmulateBackend
from .errors import HostError
from .manifest import Manifest

__all__ = ["BACKENDS", "GROUP", "open_backend", "registered"]

BACKENDS = ("auto", "pynq", "verilator", "emulate")
#: Entry-point group of the backends other packages provide: name -> a :class:`Backend` class
#: taking ``(model, manifest)``.
GROUP = "gamir.backends"


def registered(name: str) -> type[Backend]:
    """The backend class registered as ``name``, or :class:`HostError` saying what to install."""
    found = entry_points(group=GROUP, name=name)
    why = "it is not registered"
    for ep in found:
        try:
            return ep.load()
        except ImportError as e:
            why = f"{e.name} is missing"
    raise HostError(f"--backend {name} needs the dev tools ({why}): pip install -e \".[dev]\"")


def open_backend(kind: str, model: Model, manifest: Manifest | None,
                 bitstream: Path | None, timeout: float | None = None) -> Backend:
    """The backend ``kind`` (one of :data:`BACKENDS`) for ``model``; ``auto`` explains its pick.

    ``timeout`` (seconds per tile) applies to the board's DMA; ``None`` derives it from the
    predicted cycles per frame.
    """
    if kind not in BACKENDS:
        raise HostError(f"backend {kind!r} is not one of {', '.join(BACKENDS)}")
    if kind == "emulate":
        return EmulateBackend(model, manifest)
    if kind not in ("auto", "pynq"):
        return registered(kind)(model, manifest)
    from . import pynq_backend

    present, why = pynq_backend.board_present()
    if kind == "pynq" or present:
        if not present:
            raise HostError(f"--backend pynq: no PYNQ board here ({why}). Run on the board, or "
                            f"use --backend emulate for the bit-exact CPU emulation")
        if manifest is not None and manifest.flow == "open":
            from .pynq_open_backend import OpenFlowBackend

            return OpenFlowBackend(model, manifest, bitstream, timeout)
        return pynq_backend.PynqBackend(model, manifest, bitstream, timeout)
    backend = EmulateBackend(model, manifest)
    print(f"auto: no PYNQ board here ({why}); emulating the accelerator bit-exactly on the CPU "
          f"({backend.path})", file=sys.stderr)
    return backend
