"""The cocotb + Verilator tests of the ``sim`` package, outside it so that a wheel carries no
tests. ``pytest sim/`` runs them (the root conftest maps the folder argument here)."""
