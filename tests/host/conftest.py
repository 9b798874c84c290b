"""Shared helpers for the host tests: tiny random models, clips and images made on the spot."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest

import spec
from accel.manifest import Manifest
from host.pipeline import postprocessed


def host_restored(model, frames: list[np.ndarray], video: bool = False) -> list[np.ndarray]:
    """What ``host.run`` writes for ``frames`` by default: the spec's restoration of each, then
    the filters the host runs after the accelerator (the temporal one for a ``video``)."""
    return list(postprocessed(model, [spec.restore(model, f) for f in frames], temporal=video))


def make_clip(path: Path, frames: list[np.ndarray], fps: int = 10, audio: bool = False) -> Path:
    """Encode ``frames`` (H, W, 3) uint8 as H.264 (near-lossless), optionally with AAC audio."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"crf": "0"}
        a = None
        if audio:
            a = out.add_stream("aac", rate=8000)
            a.layout = "mono"
        for f in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        if a is not None:
            t = np.arange(1024 * len(frames))
            tone = (0.3 * np.sin(t / 5.0)).astype(np.float32)
            for k in range(len(frames)):
                af = av.AudioFrame.from_ndarray(tone[None, k * 1024:(k + 1) * 1024],
                                                format="fltp", layout="mono")
                af.sample_rate, af.pts = 8000, k * 1024
                out.mux(a.encode(af))
            out.mux(a.encode(None))
        out.mux(v.encode(None))
    return path


def write_png(path: Path, image: np.ndarray, pix_fmt: str = "rgb24") -> Path:
    h, w = image.shape[:2]
    with av.open(str(path), "w", format="image2") as out:
        s = out.add_stream("png")
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        fmt = {1: "gray", 3: "rgb24"}[image.shape[2]]
        frame = av.VideoFrame.from_ndarray(image.reshape(h, w) if image.shape[2] == 1 else image,
                                           format=fmt)
        out.mux(s.encode(frame.reformat(format=pix_fmt)))
        out.mux(s.encode(None))
    return path


def write_manifest(path: Path, model, max_width: int, fold=None) -> Path:
    """The manifest ``python -m hw.generate`` would write for ``model``."""
    path.write_text(Manifest.describe(model, fold, max_width=max_width).to_json())
    return path


def open_manifest(path: Path, model, max_width: int, clock_mhz: float = 100.0) -> Path:
    """The manifest ``hw.build --flow open`` writes: a build section naming the flow."""
    man = Manifest.describe(model, None, max_width=max_width).with_build(
        {"board": "pynq-z2", "device": "xc7z020clg400-1", "bitstream": "gam.bit",
         "clock_mhz": clock_mhz, "flow": "open"})
    path.write_text(man.to_json())
    return path


def fake_board(tmp_path: Path, monkeypatch, flow: str):
    """A fake PYNQ board (the fake pynq installed for a small random model) with ``gam.bit``
    and its manifest as ``flow`` leaves them (``vivado``: with ``gam.hwh``; ``open``: a build
    section naming the flow, no ``.hwh``). Returns the model, the bitstream and a model file."""
    import fake_pynq

    model = spec.random_model(21, image_channels=3, channels=8, n_binary=2, unshuffle=2,
                              noise_channel=True)
    spec.save(model, tmp_path / "m.gamir")
    fake_pynq.install(model)
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq)
    d = tmp_path / "board"
    d.mkdir()
    (d / "gam.bit").write_bytes(b"bit")
    spec.save(model, d / "default.gamir")  # the model the bitstream was generated for
    if flow == "open":
        open_manifest(d / "gam.json", model, max_width=64)
    else:
        (d / "gam.hwh").write_text("<hwh/>")
        write_manifest(d / "gam.json", model, max_width=64)
    return model, d / "gam.bit", tmp_path / "m.gamir"


def read_frames(path: Path, fmt: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


@pytest.fixture
def model_file(tmp_path) -> Path:
    """A small RGB denoiser-shaped random model (unshuffle 2, noise channel, 2 binary layers)."""
    m = spec.random_model(11, image_channels=3, channels=8, n_binary=2, unshuffle=2,
                          noise_channel=True)
    p = tmp_path / "m.gamir"
    spec.save(m, p)
    return p


@pytest.fixture
def clip(tmp_path) -> Path:
    frames = [spec.random_image(k, 24, 32, 3) for k in range(4)]
    return make_clip(tmp_path / "clip.mp4", frames)
