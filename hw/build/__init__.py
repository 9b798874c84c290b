"""Build gamir for a board: a bitstream through the open tools, or an estimate + Vivado project
(Zynq), and a report.

``python -m hw.build --board BOARD --model MODEL [--fold F] [--max-width W] [--flow F] -o DIR``

Every build starts from :func:`hw.generate.generate`, so the board sees the same ``gam_top.v``
and ``manifest.json`` as the simulator and the host. Then, by the board's family:

- ``ecp5`` / ``ice40``: the accelerator inside :class:`hw.harness.SerialHarness` (a Lattice
  board has no AXI master), synthesized by Yosys, placed and routed by nextpnr, packed by
  ecppack/icepack (native or YoWASP: :func:`tool_env`). ``DIR/gam.bit`` (ECP5) or ``DIR/gam.bin``
  (iCE40).
- ``xc7``, ``--flow open``: Yosys ``synth_xilinx``, nextpnr-himbaechel-xilinx and, where the
  FASM-to-frames writer and prjxray's tools are at hand, ``DIR/gam.bit`` (:mod:`hw.build.xc7_open`).
- ``xc7``, ``--flow vivado``: Yosys ``synth_xilinx`` utilization of ``gam_top`` alone (no Fmax:
  the PYNQ clock is assumed), and ``DIR/vivado/`` with the project script that makes
  ``gam.bit`` + ``gam.hwh`` (:mod:`hw.build.vivado`).

``DIR/report.json`` holds utilization (used / available per resource), Fmax per clock domain,
pixels per clock and frames per second at 640x480 and 1280x720; ``DIR/manifest.json`` (the
generator's, plus a ``build`` section) sits beside the bitstream. Intermediate files and tool
logs stay in ``DIR/work/``.

The package, by concern: :mod:`~hw.build.tools` (finding, running and timing the tools),
:mod:`~hw.build.synthesis` (Yosys scripts, cell tables), :mod:`~hw.build.lattice`,
:mod:`~hw.build.xc7_open` and :mod:`~hw.build.vivado` (the flows), :mod:`~hw.build.fit` (what
does not fit, and the hint), :mod:`~hw.build.report`, :mod:`~hw.build.flow` (one build) and
:mod:`~hw.build.cli`. None imports Amaranth at load time (``--help`` and a bad board need none).
"""

from .cli import main
from .flow import FLOWS, build, choose_flow
from .report import FRAMES, format_report, step_times
from .synthesis import (BOOTH_LUT_PRODUCTS, cell_counts, classic_synth, resources_from_cells,
                        synth_script)
from .tools import (TOOL_CHOICES, BuildError, is_yowasp, native_tools_dir, parse_version,
                    tool_env, tool_versions)

__all__ = ["BuildError", "build", "choose_flow", "tool_env", "tool_versions", "TOOL_CHOICES",
           "FLOWS", "FRAMES", "main", "synth_script", "classic_synth", "BOOTH_LUT_PRODUCTS",
           "cell_counts", "resources_from_cells", "native_tools_dir", "is_yowasp",
           "parse_version", "step_times", "format_report"]
