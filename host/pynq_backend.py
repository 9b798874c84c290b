"""The PYNQ board backend (placeholder until hw/regmap.py lands)."""

from __future__ import annotations

import importlib

__all__ = ["board_present"]


def board_present() -> tuple[bool, str]:
    """Whether a PYNQ board is usable here, and why not."""
    try:
        pynq = importlib.import_module("pynq")
    except ImportError:
        return False, "the pynq package is not installed"
    try:
        devices = list(pynq.Device.devices)
    except Exception as e:  # noqa: BLE001 - pynq raises RuntimeError and others off-board
        return False, f"pynq finds no device: {e}"
    if not devices:
        return False, "pynq finds no device"
    return True, f"pynq device {devices[0].name}"
