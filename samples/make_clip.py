"""Make ``samples/clip.mp4``, the short real-footage clip the README's run command uses.

The source is OpenCV's ``vtest.avi`` (pedestrians, 768x576, 10 fps), shipped in Debian's
``opencv-doc`` package; no dataset download is needed::

    apt-get download opencv-doc && dpkg -x opencv-doc_*.deb /tmp/opencv-doc
    python samples/make_clip.py /tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi

The clip keeps the source frame rate, is scaled to 320x240 with an area filter (which also
removes most of the MPEG-4 block noise) and is encoded losslessly enough (x264 CRF 18) that
the restoration models see the footage, not new compression artefacts, while staying a few
hundred KB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av


def make_clip(src: Path, dst: Path, frames: int, width: int, height: int) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"crf": "18", "preset": "slow"}
        for n, frame in enumerate(inp.decode(vin)):
            if n == frames:
                break
            small = frame.reformat(width=width, height=height, format="yuv420p",
                                   interpolation="AREA")
            small.pts = None
            out.mux(vout.encode(small))
        out.mux(vout.encode(None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="vtest.avi from Debian's opencv-doc package")
    p.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("clip.mp4"))
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--size", default="320x240", help="WIDTHxHEIGHT")
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    make_clip(a.source, a.output, a.frames, w, h)
    print(f"wrote {a.output} ({a.output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
