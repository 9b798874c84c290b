"""Time the Zynq bitstream writer (hw.xc7.bitstream) on a FASM file, both ways.

``python -m bench.xc7_bitstream (FASM | --design N) [--part xc7z020clg400-1] [--db-root DIR]
[-o FILE]``

``--design N`` first places and routes a synthetic design (Yosys ``synth_xilinx``,
nextpnr-himbaechel-xilinx; minutes): N flip-flops, each the XOR/AND/OR of five others at most
23 bits away (local wiring routes quickly), about N LUTs, on the PYNQ-Z2's clock and LED pins.

Steps, each timed (wall and CPU seconds, the tools' included; one process, in order): parse
the database's tile grid (cold), :func:`~hw.xc7.bitstream.fasm_to_frames` (first call: loads
the tile types it meets; second call: tables warm), ``xc7frames2bit``, ``bitread``, and
decoding the read bits back to features (first call: builds the decoding tables). Checks that
the decoded features are the FASM's, prints one line per step and writes the numbers to
``-o`` (default ``bench/results/local/xc7_bitstream.json``; the recorded one:
``bench/results/xc7_bitstream.json``). Needs the prjxray database and tools
(tools/native-fpga-tools.sh).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import local_result, write_result
from hw.xc7 import bitstream, prjxray_db


PINS = {"clk": "H16", "led[0]": "R14", "led[1]": "P14", "led[2]": "N16", "led[3]": "M14"}


def synthetic_fasm(n: int, work: Path, part: str) -> Path:
    """Place and route ``n`` flip-flops of random local logic; the FASM's path."""
    rng = random.Random(1)
    terms = []
    for i in range(n):
        a = [(i + rng.randrange(1, 24)) % n for _ in range(5)]
        terms.append(f"    s[{i}] <= s[{a[0]}] ^ (s[{a[1]}] & s[{a[2]}]) ^ (s[{a[3]}] | ~s[{a[4]}])"
                     f" ^ s[{i}];\n")
    (work / "top.v").write_text(
        f"module top(input clk, output [3:0] led);\n  reg [{n - 1}:0] s = 1;\n"
        f"  always @(posedge clk) begin\n{''.join(terms)}  end\n  assign led = s[3:0];\n"
        f"endmodule\n")
    (work / "top.xdc").write_text("".join(
        f"set_property PACKAGE_PIN {pin} [get_ports {{{port}}}]\n"
        f"set_property IOSTANDARD LVCMOS33 [get_ports {{{port}}}]\n" for port, pin in PINS.items()))
    tools = {t: shutil.which(t) or str(bitstream.NATIVE_BIN / t)
             for t in ("yosys", "nextpnr-himbaechel-xilinx")}
    for cmd in ([tools["yosys"], "-q", "-p",
                 "read_verilog top.v; synth_xilinx -family xc7 -top top; write_json top.json"],
                [tools["nextpnr-himbaechel-xilinx"], "--device", part, "--json", "top.json", "-o",
                 "xdc=top.xdc", "-o", "fasm=top.fasm"]):
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if done.returncode:
            raise cli.CliError(f"{Path(cmd[0]).name} failed: "
                               f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return work / "top.fasm"


def measure(fasm: Path, part: str, db_root=None) -> dict:
    times = {}

    def timed(name, fn, *args, **kw):
        t, cpu = time.perf_counter(), sum(os.times()[:4])  # with the tools' (children)
        out = fn(*args, **kw)
        times[name] = {"wall": round(time.perf_counter() - t, 2),
                       "cpu": round(sum(os.times()[:4]) - cpu, 2)}
        return out

    timed("database (tilegrid)", prjxray_db.load, db_root, part)
    timed("fasm_to_frames (cold)", bitstream.fasm_to_frames, fasm, part, db_root)
    frames = timed("fasm_to_frames (warm)", bitstream.fasm_to_frames, fasm, part, db_root)
    expected = bitstream.fasm_features(fasm, part, db_root)
    with tempfile.TemporaryDirectory() as tmp:
        bit = timed("xc7frames2bit", bitstream.frames_to_bitstream, frames, Path(tmp) / "gam.bit",
                    part=part, db_root=db_root)
        bits = timed("bitread", bitstream.read_bits, bit, part=part, db_root=db_root)
        size = bit.stat().st_size
    features, unexplained = timed("decode_bits", bitstream.decode_bits, bits, part, db_root)
    if features != expected or unexplained:
        raise cli.CliError(f"{fasm}: the bitstream reads back {len(features - expected)} "
                           f"features more, {len(expected - features)} fewer, "
                           f"{len(unexplained)} bits unexplained")
    return {"fasm": str(fasm), "part": part, "fasm_lines": len(fasm.read_text().splitlines()),
            "features": len(expected), "frames": len(frames), "set_bits": len(bits),
            "bit_bytes": size, "seconds": times}


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.xc7_bitstream",
                            description=__doc__.splitlines()[0])
    ap.add_argument("fasm", type=Path, nargs="?", help="FASM from nextpnr-himbaechel-xilinx")
    ap.add_argument("--design", type=cli.positive_int, default=None,
                    help="place and route a synthetic design of N flip-flops and time its FASM")
    ap.add_argument("--part", default=bitstream.DEFAULT_PART, help="part (default %(default)s)")
    ap.add_argument("--db-root", default=None, help="prjxray database folder")
    ap.add_argument("-o", "--out", type=Path, default=local_result("xc7_bitstream.json"),
                    help="results JSON to write (default: bench/results/local/xc7_bitstream.json)")
    a = ap.parse_args(argv)
    if (a.fasm is None) == (a.design is None):
        ap.error("give a FASM file or --design N")

    def body() -> int:
        with tempfile.TemporaryDirectory() as work:
            fasm = a.fasm or synthetic_fasm(a.design, Path(work), a.part)
            r = measure(fasm, a.part, a.db_root)
        if a.design:
            r["fasm"] = f"--design {a.design}"
        print(f"{r['fasm']}: {r['fasm_lines']:,} lines, {r['features']:,} features, "
              f"{r['frames']:,} frames, {r['set_bits']:,} set bits; read back equal")
        for step, s in r["seconds"].items():
            print(f"  {step}: {s['wall']:.2f} s wall, {s['cpu']:.2f} s CPU")
        write_result(r, a.out, indent=1)
        return 0

    return cli.run(body, errors=(bitstream.BitstreamError, OSError))


if __name__ == "__main__":
    sys.exit(main())
