"""gamir's accelerator: Amaranth blocks (imported explicitly), the register/stream contract
(:mod:`hw.regmap`) and the performance model (:mod:`hw.perf`).

This package file imports nothing, so host code can use :mod:`hw.regmap` without Amaranth.
"""
