"""gamir's host driver: ``python -m host.run`` restores videos and images.

Backends (:mod:`host.backend`) share one narrow interface: tensor-0 tiles in, output tensors
out; :mod:`host.backends` picks one. ``emulate`` runs the spec on the CPU, ``pynq`` drives the
accelerator on a PYNQ board
(:mod:`host.pynq_backend` for a Vivado-built bitstream, :mod:`host.pynq_open_backend` for an
open-flow one, picked by the manifest's ``build.flow``), ``verilator`` runs the generated Verilog
through the same register
and stream sequence (:mod:`sim.verilator_backend`, registered by ``sim``: host never imports
it). Pixel steps and tiling
(:mod:`host.pipeline`, :mod:`accel.tiling`) and video I/O (:mod:`host.media`) are shared.

Nothing here imports torch, amaranth, cocotb, ``hw`` or ``sim``; pynq is imported only by the
board backends.
"""
