"""gamir's accelerator generator: Amaranth blocks (one per module, imported explicitly), the
top level (:mod:`hw.top`), ``python -m hw.generate`` and ``python -m hw.build``.

What the hardware shares with its simulation and the host (register map, folding, cycle model,
register sequence, manifest) is the numpy-only contract package :mod:`accel`.
"""
