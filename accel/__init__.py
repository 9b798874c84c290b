"""The accelerator's contract: what the hardware, its simulation, the host and the benchmarks
agree on, in one numpy-only package (no Amaranth, no torch: the board image imports it).

* :mod:`accel.config` -- design defaults (clock, line-buffer width, frame);
* :mod:`accel.boards` -- the boards gamir builds for and their devices' resources (read by
  ``hw.build`` and ``training.search``);
* :mod:`accel.regmap` -- the AXI4-Lite register map, folding (:class:`~accel.regmap.Fold`),
  the parameter memories and their words, the AXI4-Stream pixel packing;
* :mod:`accel.latency` -- the blocks' latencies, imported by the blocks and the cycle model;
* :mod:`accel.perf` -- the cycle and cost model, automatic folding;
* :mod:`accel.protocol` -- the board's register sequence as data, replayed by the PYNQ
  driver, the Verilator backend and the hardware tests;
* :mod:`accel.tiling` -- the receptive-field radius and the exact tiling of wide frames;
* :mod:`accel.manifest` -- :class:`~accel.manifest.Manifest`, what one generated design is
  (written by ``hw.generate``/``hw.build``, read by ``host`` and ``sim``).

This file imports nothing, so ``import accel.regmap`` costs only that module.
"""
