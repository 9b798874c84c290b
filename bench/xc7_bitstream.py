"""Time the Zynq bitstream writer (hw.xc7.bitstream) on a FASM file, both ways.

``python -m bench.xc7_bitstream FASM [--part xc7z020clg400-1] [--db-root DIR] [-o FILE]``

Steps, each timed (wall seconds, one process, in order): parse the database's tile grid
(cold), :func:`~hw.xc7.bitstream.fasm_to_frames` (first call: loads the tile types it
meets; second call: tables warm), ``xc7frames2bit``, ``bitread``, and decoding the read bits
back to features. Checks that the decoded features are the FASM's, prints one line per step
and writes the numbers to ``-o`` (default ``bench/results/xc7_bitstream.json``). Needs the
prjxray database and tools (tools/native-fpga-tools.sh).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import json
import sys
import tempfile
import time
from pathlib import Path

from hw.xc7 import bitstream, prjxray_db


def measure(fasm: Path, part: str, db_root=None) -> dict:
    times = {}

    def timed(name, fn, *args, **kw):
        t = time.perf_counter()
        out = fn(*args, **kw)
        times[name] = round(time.perf_counter() - t, 3)
        return out

    text = fasm.read_text()
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
    return {"fasm": str(fasm), "part": part, "fasm_lines": text.count("\n"),
            "features": len(expected), "frames": len(frames), "set_bits": len(bits),
            "bit_bytes": size, "seconds": times}


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.xc7_bitstream",
                            description=__doc__.splitlines()[0])
    ap.add_argument("fasm", type=Path, help="FASM from nextpnr-himbaechel-xilinx")
    ap.add_argument("--part", default=bitstream.DEFAULT_PART, help="part (default %(default)s)")
    ap.add_argument("--db-root", default=None, help="prjxray database folder")
    ap.add_argument("-o", "--out", type=Path, default=Path("bench/results/xc7_bitstream.json"),
                    help="results JSON to write")
    a = ap.parse_args(argv)

    def body() -> int:
        r = measure(a.fasm, a.part, a.db_root)
        print(f"{r['fasm']}: {r['fasm_lines']:,} lines, {r['features']:,} features, "
              f"{r['frames']:,} frames, {r['set_bits']:,} set bits; read back equal")
        for step, s in r["seconds"].items():
            print(f"  {step}: {s:.2f} s")
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(r, indent=1) + "\n")
        return 0

    return cli.run(body, errors=(bitstream.BitstreamError, OSError))


if __name__ == "__main__":
    sys.exit(main())
