"""Every bad input gets one clear message (no traceback) and leaves no output behind."""

from __future__ import annotations

import os
import re
import sys

import av
import numpy as np
import pytest
from conftest import make_clip, write_manifest, write_png

import fake_pynq
import host.media
import host.run
import spec
from accel import regmap
from host.backend import EmulateBackend
from host.run import main


def fails(capsys, args, message, code=1):
    """Run the CLI, expect exit ``code`` and ``message`` (a regex) as the only error line."""
    assert main([str(a) for a in args]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert re.search(message, lines[0]), lines[0]


def fails_and_remove(capsys, model_file, path, message, code=1):
    """``fails`` on the input file ``path`` with ``model_file``; the input goes afterwards."""
    try:
        fails(capsys, ["--model", model_file, path], message, code)
    finally:
        path.unlink()


def listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.fixture
def work(tmp_path, model_file, clip):
    """tmp_path holding m.gamir and clip.mp4; yields a checker that nothing else appeared."""
    before = listing(tmp_path)
    yield tmp_path
    assert listing(tmp_path) == before, "an output or temporary file was left behind"


def test_missing_input(work, model_file, capsys):
    fails(capsys, ["--model", model_file, work / "nope.mp4"], r"input '.*nope.mp4' does not exist")


def test_unreadable_input(work, model_file, capsys, monkeypatch):
    # Tests run as root here, which reads any file: deny access the way a user would see it.
    p = work / "clip.mp4"
    if os.geteuid() == 0:
        monkeypatch.setattr(host.media.os, "access", lambda path, mode: False)
    else:
        p.chmod(0)
    try:
        fails(capsys, ["--model", model_file, p], r"is not readable \(permission denied\)")
    finally:
        p.chmod(0o644)


def test_not_a_video(work, model_file, capsys):
    (work / "notes.mp4").write_text("hello, not a video\n" * 50)
    try:
        fails(capsys, ["--model", model_file, work / "notes.mp4"],
              r"cannot read '.*notes.mp4': not a video or image PyAV can decode")
    finally:
        (work / "notes.mp4").unlink()


def test_truncated_video(work, model_file, capsys):
    data = (work / "clip.mp4").read_bytes()
    bad = work / "cut.mp4"
    bad.write_bytes(data[: len(data) // 2])
    fails_and_remove(capsys, model_file, bad, r"cannot read '.*cut.mp4': not a video or image PyAV can decode")


def test_corrupt_frames_mid_stream(work, model_file, capsys, tmp_path):
    # A raw H.264 stream with its coded data garbled after the headers.
    raw = tmp_path / "g.h264"
    with av.open(str(raw), "w", format="h264") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for k in range(3):
            out.mux(s.encode(av.VideoFrame.from_ndarray(spec.random_image(k, 24, 32, 3),
                                                        format="rgb24")))
        out.mux(s.encode(None))
    data = bytearray(raw.read_bytes())
    rng = np.random.default_rng(0)
    data[100:] = rng.integers(0, 256, len(data) - 100, dtype=np.uint8).tobytes()
    raw.write_bytes(bytes(data))
    fails_and_remove(capsys, model_file, raw, r"'.*g.h264' is corrupt: decoding failed after 0 frames")


def test_zero_frame_video(work, model_file, capsys):
    p = work / "empty.mp4"
    out = av.open(str(p), "w")
    s = out.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
    out.start_encoding()
    out.close()
    try:
        fails(capsys, ["--model", model_file, p], r"'.*empty.mp4' has no video frames")
    finally:
        p.unlink()


def test_unsupported_pixel_format(work, model_file, capsys):
    p = write_png(work / "deep.png", spec.random_image(1, 8, 8, 3), pix_fmt="rgb48be")
    fails_and_remove(capsys, model_file, p,
                     r"pixel format 'rgb48be' has 16-bit samples; gamir models take 8-bit pixels")


def test_frame_too_small(work, model_file, capsys):
    p = write_png(work / "line.png", spec.random_image(1, 1, 9, 3))  # 1 row, unshuffle 2
    fails_and_remove(capsys, model_file, p, r"frame 9x1 is too small: the model packs 2x2 pixel blocks")


def test_bad_model_file(work, capsys):
    bad = work / "bad.gamir"
    bad.write_bytes(b"not a model")
    try:
        fails(capsys, ["--model", bad, work / "clip.mp4"], r"model file: .*too short|bad magic")
    finally:
        bad.unlink()


def test_sigma_without_noise_channel(work, capsys):
    m = spec.random_model(3, noise_channel=False)
    spec.save(m, work / "plain.gamir")
    try:
        fails(capsys, ["--model", work / "plain.gamir", "--sigma", "25", work / "clip.mp4"],
              r"--sigma: model '.*plain.gamir' has no noise-level channel", code=2)
    finally:
        (work / "plain.gamir").unlink()


def test_missing_shipped_model(work, capsys, monkeypatch):
    monkeypatch.setattr(host.run, "MODELS_DIR", work / "nowhere")
    fails(capsys, ["--task", "derain", work / "clip.mp4"],
          r"the shipped derain model '.*derain.gamir' is not here: pass a model file")


def test_output_folder_missing(work, model_file, capsys):
    fails(capsys, ["--model", model_file, "-o", work / "no" / "x.mp4", work / "clip.mp4"],
          r"output folder '.*no' does not exist")


def test_output_container_unknown(work, model_file, capsys):
    fails(capsys, ["--model", model_file, "-o", work / "out.xyz", work / "clip.mp4"],
          r"cannot write a video as '.*out.xyz': a video is written as .mp4, .mkv")


def test_image_output_suffix_unknown(work, model_file, capsys):
    p = write_png(work / "a.png", spec.random_image(1, 8, 8, 3))
    try:
        fails(capsys, ["--model", model_file, "-o", work / "a.gif", p],
              r"cannot write an image as .*a.gif.: an image is written as .png")
    finally:
        p.unlink()


def test_model_does_not_match_the_manifest(work, model_file, capsys):
    other = spec.random_model(99, channels=3)
    d = work / "bits"
    d.mkdir()
    write_manifest(d / "gam.json", other, max_width=64)
    try:
        fails(capsys, ["--bitstream", d / "gam.bit", "--model", model_file, work / "clip.mp4"],
              r"model '.*m.gamir' does not match the bitstream's manifest '.*gam.json'")
    finally:
        (d / "gam.json").unlink()
        d.rmdir()


def test_no_board_with_backend_pynq(work, model_file, capsys, monkeypatch):
    fake_pynq.install(spec.load(model_file), devices=())
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq)
    fails(capsys, ["--backend", "pynq", "--model", model_file, work / "clip.mp4"],
          r"--backend pynq: no PYNQ board here \(pynq finds no device\)")


def test_no_pynq_package_with_backend_pynq(work, model_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)  # import pynq -> ImportError
    fails(capsys, ["--backend", "pynq", "--model", model_file, work / "clip.mp4"],
          r"no PYNQ board here \(the pynq package is not installed\)")


@pytest.fixture
def board_dir(work, model_file, monkeypatch):
    model = spec.load(model_file)
    monkeypatch.setitem(sys.modules, "pynq", fake_pynq)
    d = work / "board"
    d.mkdir()
    (d / "gam.bit").write_bytes(b"bit")
    (d / "gam.hwh").write_text("<hwh/>")
    write_manifest(d / "gam.json", model, max_width=64)
    yield model, d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def test_bitstream_without_hwh_on_a_board(board_dir, work, model_file, capsys):
    model, d = board_dir
    fake_pynq.install(model)
    (d / "gam.hwh").unlink()
    fails(capsys, ["--bitstream", d / "gam.bit", "--model", model_file, work / "clip.mp4"],
          r"'.*gam.hwh' is missing: PYNQ needs the .hwh")


def test_missing_bitstream_on_a_board(board_dir, work, model_file, capsys):
    model, d = board_dir
    fake_pynq.install(model)
    fails(capsys, ["--bitstream", d / "other.bit", "--model", model_file, work / "clip.mp4"],
          r"bitstream '.*other.bit' does not exist")


def test_bitstream_built_for_another_shape(board_dir, work, model_file, capsys):
    model, d = board_dir
    fake_pynq.install(spec.random_model(5, channels=3))  # the FPGA holds another shape
    fails(capsys, ["--bitstream", d / "gam.bit", "--model", model_file, work / "clip.mp4"],
          r"the accelerator was built for another model shape \(SHAPE=0x[0-9a-f]{8}, the model")


def test_dma_timeout(board_dir, work, model_file, capsys):
    model, d = board_dir
    fake_pynq.install(model, hang=True)
    fails(capsys, ["--bitstream", d / "gam.bit", "--model", model_file, "--timeout", "0.2",
                   work / "clip.mp4"],
          r"DMA timeout: the output of tile 0 did not finish in time \(STATUS=0x0\)")
    assert ("recv_stop",) in fake_pynq.LOG  # the channels were reset


def test_tlast_error_on_the_board(board_dir, work, model_file, capsys):
    model, d = board_dir
    fake_pynq.install(model, frame_status=regmap.STATUS_ERR_TLAST_LATE)
    fails(capsys, ["--bitstream", d / "gam.bit", "--model", model_file, work / "clip.mp4"],
          r"the accelerator flagged tile 0: STATUS=0x4 \(no TLAST on the frame's last pixel\)")


def test_ctrl_c_on_the_board_stops_the_dma_before_freeing(board_dir, work, model_file,
                                                         capsys):
    model, d = board_dir
    fake_pynq.install(model, interrupt_at=1)
    fails(capsys, ["--bitstream", d / "gam.bit", "--model", model_file, work / "clip.mp4"],
          r"error: interrupted \(Ctrl-C\): stopped, no output written", code=130)
    log = fake_pynq.LOG
    stops = [i for i, e in enumerate(log) if e[0] in ("send_stop", "recv_stop")]
    frees = [i for i, e in enumerate(log) if e[0] == "free"]
    assert len(stops) == 2 and len(frees) == 4 and max(stops) < min(frees)


def interrupt_after(monkeypatch, frames: int) -> None:
    """Ctrl-C arrives while the backend computes frame ``frames`` (0-based)."""
    orig = EmulateBackend.run

    def interrupted(self, tensors):
        for n, y in enumerate(orig(self, tensors)):
            if n == frames:
                raise KeyboardInterrupt
            yield y

    monkeypatch.setattr(EmulateBackend, "run", interrupted)


def test_ctrl_c(work, model_file, capsys, monkeypatch):
    frames = [spec.random_image(k, 24, 32, 3) for k in range(6)]
    make_clip(work / "long.mp4", frames)
    interrupt_after(monkeypatch, 3)
    try:
        fails(capsys, ["--model", model_file, work / "long.mp4"],
              r"error: interrupted \(Ctrl-C\): stopped, no output written", code=130)
    finally:
        (work / "long.mp4").unlink()


def test_ctrl_c_in_a_folder(work, model_file, capsys, monkeypatch):
    folder = work / "imgs"
    folder.mkdir()
    for k in range(3):
        write_png(folder / f"{k}.png", spec.random_image(k, 8, 8, 3))
    interrupt_after(monkeypatch, 1)
    try:
        fails(capsys, ["--model", model_file, folder], r"interrupted", code=130)
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
