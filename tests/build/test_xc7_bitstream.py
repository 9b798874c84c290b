"""hw.xc7.bitstream: FASM -> frames -> .bit for the Zynq-7020, checked by decoding the .bit
again (bitread + the database's bit patterns). Tests that read the prjxray database skip
without it; the round trip also needs Yosys, nextpnr-himbaechel-xilinx, xc7frames2bit and
bitread (tools/native-fpga-tools.sh); CI has none of them."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from hw.xc7 import bitstream
from hw.xc7.bitstream import BitstreamError, fasm_features, fasm_to_frames
from hw.xc7.prjxray_db import find_db_root, load

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)

PART = "xc7z020clg400-1"
CLB = "CLBLL_L_X70Y110"  # CLB_IO_CLK bits: column 0x00002300, words 20..21
REQUIRED = {f"CFG_CENTER_MID_X123Y84.ALWAYS_ON_PROP{i}" for i in (1, 2, 3)}


def _have_db() -> bool:
    try:
        find_db_root()
    except BitstreamError:
        return False
    return True


def _tool(name: str) -> str | None:
    found = shutil.which(name) or str(bitstream.NATIVE_BIN / name)
    return found if Path(found).is_file() else None


needs_db = pytest.mark.skipif(not _have_db(), reason="no prjxray database (Debian's "
                              "prjxray-database or tools/native-fpga-tools.sh)")
FLOW_TOOLS = ("yosys", "nextpnr-himbaechel-xilinx", "xc7frames2bit", "bitread")
needs_tools = pytest.mark.skipif(
    not _have_db() or not all(map(_tool, FLOW_TOOLS)),
    reason=f"needs the prjxray database and native {', '.join(FLOW_TOOLS)} "
           f"(tools/native-fpga-tools.sh)")


def _frames_without_required(text: str) -> dict[int, list[int]]:
    """Frames of ``text`` less those of an empty FASM (the part's required features)."""
    frames, base = fasm_to_frames(text, PART), fasm_to_frames("", PART)
    out = {}
    for addr, words in frames.items():
        diff = [w ^ b for w, b in zip(words, base.get(addr, [0] * 101))]
        if any(diff):
            out[addr] = diff
    return out


def _one_bit(frame: int, word: int, bit: int) -> dict[int, list[int]]:
    words = [0] * 101
    words[word] = 1 << bit
    return {frame: words}


# ---------------------------------------------------------------- needs nothing

def test_missing_tool_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("XC7FRAMES2BIT", str(tmp_path / "nowhere"))
    with pytest.raises(BitstreamError, match=r"^xc7frames2bit not found at \$XC7FRAMES2BIT="
                                             r".*nowhere \(install"):
        bitstream.find_tool("xc7frames2bit")


def test_missing_database_is_one_clear_error(tmp_path):
    with pytest.raises(BitstreamError, match=r"^no prjxray database in .* \(install"):
        find_db_root(tmp_path)


def test_frm_format(tmp_path):
    words = [0] * 101
    words[0], words[100] = 0xDEADBEEF, 1
    bitstream.write_frm({0x00402301: [0] * 101, 0x00002300: words}, tmp_path / "a.frm")
    lines = (tmp_path / "a.frm").read_text().splitlines()
    assert lines[0] == "0x00002300 0xDEADBEEF," + "0x00000000," * 99 + "0x00000001"
    assert lines[1].startswith("0x00402301 0x00000000,") and lines[1].count(",") == 100


# ---------------------------------------------------------------- needs the database

@needs_db
def test_bits_land_where_the_database_says():
    """Positions worked out by hand from tilegrid.json (column base, word offset) and the
    segbits lines (``FRAME_BIT`` within the tile)."""
    # CLBLL_L.SLICEL_X0.ALUT.INIT[00] 32_15: frame 0x2300 + 32, word 20 + 15 // 32, bit 15.
    assert _frames_without_required(f"{CLB}.SLICEL_X0.ALUT.INIT[0]") == _one_bit(0x2320, 20, 15)
    # ALUT.INIT[63] 34_00; BLUT.INIT[03] 33_30; AFF.ZINI 31_03.
    assert _frames_without_required(f"{CLB}.SLICEL_X0.ALUT.INIT[63]") == _one_bit(0x2322, 20, 0)
    assert _frames_without_required(f"{CLB}.SLICEL_X0.BLUT.INIT[3]") == _one_bit(0x2321, 20, 30)
    assert _frames_without_required(f"{CLB}.SLICEL_X0.AFF.ZINI") == _one_bit(0x231F, 20, 3)
    # BRAM_L_X6Y0 BLOCK_RAM at 0x00C20000, offset 0; RAMB18_Y0.INIT_00[255] 01_143.
    assert (_frames_without_required("BRAM_L_X6Y0.RAMB18_Y0.INIT_00[255]")
            == _one_bit(0xC20001, 4, 15))
    # A *_SING IO tile has half of an LIOB33's words (alias start_offset): LIOB33_SING_X0Y49 at
    # 0x00420000, offset 99, words 0..1 of LIOB33 (IOB_Y1.PULLTYPE.PULLUP 38_34 39_33 !39_35),
    # LIOB33_SING_X0Y0 at offset 0, words 2..3 (IOB_Y0.PULLTYPE.PULLUP !38_92 38_94 39_93).
    top = _one_bit(0x420026, 100, 2)
    top.update(_one_bit(0x420027, 100, 1))
    assert _frames_without_required("LIOB33_SING_X0Y49.IOB_Y1.PULLTYPE.PULLUP") == top
    bottom = _one_bit(0x420026, 0, 30)
    bottom.update(_one_bit(0x420027, 0, 29))
    assert _frames_without_required("LIOB33_SING_X0Y0.IOB_Y0.PULLTYPE.PULLUP") == bottom
    with pytest.raises(BitstreamError, match=r"^<fasm>:1: feature LIOB33_SING_X0Y0\.IOB_Y1\."
                                             r"PULLTYPE\.PULLUP has bits outside tile"):
        fasm_to_frames("LIOB33_SING_X0Y0.IOB_Y1.PULLTYPE.PULLUP", PART)
    # The part's required features: CFG_CENTER_MID.ALWAYS_ON_PROP1 26_2206 at 0x00401900.
    assert fasm_to_frames("", PART)[0x0040191A][2206 // 32] & 1 << (2206 % 32)


@needs_db
def test_parsing_values_comments_annotations():
    text = f"""# a comment line
{CLB}.SLICEL_X0.ALUT.INIT[63:0] = 64'h8000_0000_0000_0005  # trailing comment
{{ origin = "nextpnr # not a comment" }}
{CLB}.SLICEL_X0.AFF.ZINI {{ cell = "ctr[0]" }}
{CLB}.SLICEL_X0.BLUT.INIT[3:2] = 2'b10

{CLB}.SLICEL_X0.CLUT.INIT[7] = 0
{CLB}.SLICEL_X0.DLUT.INIT[9]
{CLB}.SLICEL_X1.ALUT.INIT[15:8] = 8'd129
{CLB}.SLICEL_X1.BLUT.INIT[3:0] = 4'o7
{CLB}.SLICEL_X1.CLUT.INIT[1:0] = 2
"""
    lut = f"{CLB}.SLICEL_X0."
    assert fasm_features(text, PART) == REQUIRED | {
        lut + "ALUT.INIT[0]", lut + "ALUT.INIT[2]", lut + "ALUT.INIT[63]", lut + "AFF.ZINI",
        lut + "BLUT.INIT[3]", lut + "DLUT.INIT[9]", f"{CLB}.SLICEL_X1.ALUT.INIT[8]",
        f"{CLB}.SLICEL_X1.ALUT.INIT[15]", f"{CLB}.SLICEL_X1.BLUT.INIT[0]",
        f"{CLB}.SLICEL_X1.BLUT.INIT[1]", f"{CLB}.SLICEL_X1.BLUT.INIT[2]",
        f"{CLB}.SLICEL_X1.CLUT.INIT[1]"}
    # The same features one per line give the same frames.
    singles = "\n".join(sorted(fasm_features(text, PART) - REQUIRED))
    assert fasm_to_frames(singles, PART) == fasm_to_frames(text, PART)


@needs_db
def test_decoding_frames_gives_the_features_back():
    """The decoder on frames alone (no bitread): IO tiles of both *_SING kinds, BRAM contents,
    a mux whose patterns differ in zero bits, a pseudo-pip and a clearing-only feature."""
    text = """LIOB33_SING_X0Y49.IOB_Y1.PULLTYPE.PULLUP
LIOB33_SING_X0Y0.IOB_Y0.PULLTYPE.KEEPER
BRAM_L_X6Y0.RAMB18_Y1.INIT_00[255:254] = 2'b10
BRAM_L_X6Y0.RAMB18_Y1.INIT_00[1:0] = 2'b11
BRAM_L_X6Y0.BRAM_ADDRARDADDRL1.BRAM_CASCINTOP_ADDRARDADDRU1
BRAM_L_X6Y0.BRAM_ADDRARDADDRL0.BRAM_IMUX_ADDRARDADDRL0
INT_L_X70Y110.BYP_ALT0.VCC_WIRE
"""
    frames = fasm_to_frames(text, PART)
    keys = {addr << 12 | w << 5 | b for addr, words in frames.items()
            for w, word in enumerate(words) for b in range(32) if word >> b & 1}
    features, unexplained = bitstream.decode_bits(keys, PART)
    assert features == fasm_features(text, PART) == REQUIRED | {
        "LIOB33_SING_X0Y49.IOB_Y1.PULLTYPE.PULLUP", "LIOB33_SING_X0Y0.IOB_Y0.PULLTYPE.KEEPER",
        "BRAM_L_X6Y0.RAMB18_Y1.INIT_00[0]", "BRAM_L_X6Y0.RAMB18_Y1.INIT_00[1]",
        "BRAM_L_X6Y0.RAMB18_Y1.INIT_00[255]",
        "BRAM_L_X6Y0.BRAM_ADDRARDADDRL1.BRAM_CASCINTOP_ADDRARDADDRU1"}
    assert unexplained == set()


@needs_db
def test_a_stepdown_iob_steps_down_its_banks_unused_iobs():
    """As prjxray's fasm2frames: an IOB at 1.2-1.8 V in bank 35 sets STEPDOWN on every unused
    IOB of the bank (package_pins.csv lists them) and the bank's HCLK_IOI3 (part.json)."""
    tag = "LVCMOS12_LVCMOS15_LVCMOS18_SSTL135_SSTL15.STEPDOWN"
    text = (f"RIOB33_X73Y145.IOB_Y0.{tag}\n"
            "RIOB33_X73Y145.IOB_Y1.PULLTYPE.PULLUP\n"  # used: not stepped down
            "RIOB33_X73Y53.IOB_Y0.PULLTYPE.PULLUP\n")  # bank 34: untouched
    db_part = find_db_root() / "zynq7" / PART
    with open(db_part / "package_pins.csv", newline="") as f:
        pins = [r for r in csv.DictReader(f) if r["bank"] == "35" and "IOB33" in r["tile"]]
    sites = {f"{r['tile']}.IOB_Y{int(r['site'][-1]) % 2}" for r in pins}
    assert len(sites) == 50 and "RIOB33_X73Y145.IOB_Y0" in sites
    assert fasm_features(text, PART) == REQUIRED | {
        "RIOB33_X73Y145.IOB_Y1.PULLTYPE.PULLUP", "RIOB33_X73Y53.IOB_Y0.PULLTYPE.PULLUP",
        "HCLK_IOI3_X185Y130.STEPDOWN"} | {
        f"{s}.{tag}" for s in sites if s != "RIOB33_X73Y145.IOB_Y1"}


@needs_db
def test_pseudo_pips_and_clearing_features_set_no_bit():
    # INT_L.BYP_ALT0.VCC_WIRE is a pseudo-pip (ppips_int_l.db); BRAM_IMUX_ADDRARDADDRL0 only
    # clears bits (!26_32 !26_33 !26_35): neither shows in a bitstream.
    text = ("INT_L_X70Y110.BYP_ALT0.VCC_WIRE\n"
            "BRAM_L_X6Y0.BRAM_ADDRARDADDRL0.BRAM_IMUX_ADDRARDADDRL0\n")
    assert fasm_features(text, PART) == REQUIRED
    assert _frames_without_required(text) == {}
    # A feature that sets a bit the other clears (26_32) is a conflict naming both lines.
    with pytest.raises(BitstreamError, match=r"set by <fasm>:3 \(BRAM_L_X6Y0\.BRAM_ADDRARDADDRL0"
                                             r"\.BRAM_CASCINTOP_ADDRARDADDRU0\) but cleared by "
                                             r"<fasm>:2 "):
        fasm_to_frames(text + "BRAM_L_X6Y0.BRAM_ADDRARDADDRL0.BRAM_CASCINTOP_ADDRARDADDRU0\n",
                       PART)


@needs_db
@pytest.mark.parametrize("line, message", [
    (f"{CLB}.SLICEL_X0.ALUT.NOPE", rf"^<fasm>:2: feature {CLB}\.SLICEL_X0\.ALUT\.NOPE is not "
                                   r"in the prjxray database for tile type CLBLL_L"),
    (f"{CLB}.SLICEL_X0.ALUT.INIT[64]", rf"^<fasm>:2: feature {CLB}\.SLICEL_X0\.ALUT\.INIT\[64\]"
                                       r" is not in"),
    ("CLBLL_L_X999Y0.SLICEL_X0.AFF.ZINI", r"^<fasm>:2: tile CLBLL_L_X999Y0 is not in "
                                          r"xc7z020clg400-1"),
    (f"{CLB}.SLICEL_X0.ALUT.INIT[1:0] = 3'b111", r"^<fasm>:2: value 3'b111 does not fit"),
    (f"{CLB}.SLICEL_X0.ALUT.INIT[3:0] = 2'b111", r"^<fasm>:2: value 2'b111 does not fit"),
    (f"{CLB}.SLICEL_X0.ALUT.INIT[3:0] = 4'hG", r"^<fasm>:2: value \"4'hG\" is not a FASM"),
    (f"{CLB}.SLICEL_X0.ALUT.INIT[0:3] = 1", r"^<fasm>:2: .*high bit first"),
    ("= 1", r"^<fasm>:2: a value without a feature"),
    ("ALUT INIT", r"^<fasm>:2: 'ALUT INIT' is not a FASM feature"),
])
def test_bad_fasm_names_the_line(line, message):
    with pytest.raises(BitstreamError, match=message):
        fasm_to_frames(f"{CLB}.SLICEL_X0.AFF.ZINI\n{line}\n", PART)


@needs_db
def test_missing_fasm_file_is_one_clear_error(tmp_path):
    with pytest.raises(BitstreamError, match=r"^cannot read FASM .*top\.fasm: No such file"):
        bitstream.write_bitstream(tmp_path / "top.fasm", tmp_path / "top.bit", part=PART)
    with pytest.raises(BitstreamError, match=r"^cannot read FASM nowhere\.fasm: No such file"):
        fasm_features("nowhere.fasm", PART)


@needs_db
def test_failed_frames2bit_leaves_no_bitstream(monkeypatch, tmp_path):
    monkeypatch.setenv("XC7FRAMES2BIT", shutil.which("false"))
    fasm = tmp_path / "top.fasm"
    fasm.write_text(f"{CLB}.SLICEL_X0.AFF.ZINI\n")
    with pytest.raises(BitstreamError, match=r"^xc7frames2bit failed \(status 1\)"):
        bitstream.write_bitstream(fasm, tmp_path / "top.bit", part=PART)
    assert not (tmp_path / "top.bit").exists()


# ---------------------------------------------------------------- needs the native flow

# A counter, a BRAM with initial contents, a LUT RAM and a DSP multiply on the PYNQ-Z2's
# 125 MHz clock (H16) and four LEDs.
DESIGN = """
module top(input clk, output [3:0] led);
  reg [26:0] ctr = 0;
  always @(posedge clk) ctr <= ctr + 1'b1;
  reg [15:0] mem [0:1023];
  integer i;
  initial for (i = 0; i < 1024; i = i + 1) mem[i] = i * 16'd37;
  reg [15:0] q;
  always @(posedge clk) begin
    if (ctr[0]) mem[ctr[10:1]] <= ctr[26:11];
    q <= mem[ctr[20:11]];
  end
  reg [3:0] lram [0:31];
  always @(posedge clk) lram[ctr[4:0]] <= ctr[24:21];
  wire [3:0] lq = lram[ctr[9:5]];
  reg [35:0] p;
  always @(posedge clk) p <= $signed(ctr[17:0]) * $signed({q, ctr[26:25]});
  assign led = ctr[26:23] ^ lq ^ p[35:32] ^ q[15:12];
endmodule
"""
PINS = {"clk": "H16", "led[0]": "R14", "led[1]": "P14", "led[2]": "N16", "led[3]": "M14"}


@pytest.fixture(scope="module")
def routed(tmp_path_factory) -> Path:
    """The design's FASM from Yosys ``synth_xilinx`` and nextpnr-himbaechel-xilinx."""
    work = tmp_path_factory.mktemp("xc7")
    (work / "top.v").write_text(DESIGN)
    (work / "top.xdc").write_text("".join(
        f"set_property PACKAGE_PIN {pin} [get_ports {{{port}}}]\n"
        f"set_property IOSTANDARD LVCMOS33 [get_ports {{{port}}}]\n"
        for port, pin in PINS.items()) + "create_clock -period 8.0 [get_ports clk]\n")
    for cmd in ([_tool("yosys"), "-q", "-p", "read_verilog top.v; synth_xilinx -family xc7 "
                 "-top top; write_json top.json"],
                [_tool("nextpnr-himbaechel-xilinx"), "--device", PART, "--json", "top.json",
                 "-o", "xdc=top.xdc", "-o", "fasm=top.fasm", "--threads", "1"]):
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:] or done.stdout[-2000:]
    return work / "top.fasm"


@needs_tools
def test_bitstream_reads_back_as_its_fasm(routed, tmp_path):
    expected = fasm_features(routed, PART)
    kinds = {f.split("_X")[0] for f in expected}
    # LUTs and flip-flops, LUT RAM, routing, BRAM contents, the DSP, IOBs and clock buffers.
    assert {"CLBLL_L", "CLBLM_R", "INT_L", "INT_R", "BRAM_R", "DSP_L", "RIOB33",
            "CLK_BUFG_TOP_R"} <= kinds
    assert any(".INIT_" in f for f in expected) and any(".ALUT.RAM" in f for f in expected)
    assert len(expected) > 5000

    bit = bitstream.write_bitstream(routed, tmp_path / "gam.bit", part=PART)
    assert bit.read_bytes().count(b"\xaa\x99\x55\x66") == 1  # one sync word
    assert (tmp_path / "gam.frm").is_file()
    assert bitstream.bit_to_features(bit, part=PART) == expected
    # Every set bit of the bitstream is one of a decoded feature's.
    _, unexplained = bitstream.decode_bits(bitstream.read_bits(bit, part=PART), PART)
    assert unexplained == set()


@needs_tools
def test_a_planted_wrong_bit_fails_the_comparison(routed, tmp_path):
    """The oracle can fail: one LUT bit more, or one routing bit less, in the frames."""
    expected = fasm_features(routed, PART)
    db = load(None, PART)
    lut = next(f for f in sorted(expected) if ".ALUT.INIT[" in f)
    tile_name, rest = lut.split(".", 1)
    unset = next(f"{rest.split('[')[0]}[{i}]" for i in range(64)
                 if f"{tile_name}.{rest.split('[')[0]}[{i}]" not in expected)
    tile = db.tiles[tile_name]
    ((block, rel, _),) = db.tile_type(tile.type).features[unset].bits
    key = tile.origin[block] + rel

    frames = fasm_to_frames(routed, PART)
    frames.setdefault(key >> 12, [0] * 101)[(key >> 5) & 0x7F] |= 1 << (key & 31)
    got = bitstream.bit_to_features(
        bitstream.frames_to_bitstream(frames, tmp_path / "extra.bit", part=PART), part=PART)
    assert got != expected and got - expected == {f"{tile_name}.{unset}"}

    frames = fasm_to_frames(routed, PART)
    pip = next(f for f in sorted(expected) if f.startswith("INT_L_"))
    tile = db.tiles[pip.split(".")[0]]
    feature = db.tile_type(tile.type).features[pip.split(".", 1)[1]]
    key = tile.origin[0] + next(rel for _, rel, v in feature.bits if v)
    frames[key >> 12][(key >> 5) & 0x7F] &= ~(1 << (key & 31))
    got = bitstream.bit_to_features(
        bitstream.frames_to_bitstream(frames, tmp_path / "less.bit", part=PART), part=PART)
    assert pip in expected - got
