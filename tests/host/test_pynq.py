"""The board backend against a fake of the pynq API that checks the register/DMA sequence."""

from __future__ import annotations


import numpy as np
import pytest
from conftest import fake_board, host_restored, make_clip, read_frames, write_manifest, write_png

import fake_pynq
import spec
from accel import regmap
from host.run import main


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A fake board with ``gam.bit``/``gam.hwh``/``gam.json`` built for a small random model."""
    return fake_board(tmp_path, monkeypatch, "vivado")


def run_ok(*args):
    assert main([str(a) for a in args]) == 0


def test_auto_uses_the_board_and_is_bit_exact(board, tmp_path, capsys):
    model, bit, mfile = board
    img = spec.random_image(4, 20, 24, 3)
    src = write_png(tmp_path / "a.png", img)
    run_ok("--bitstream", bit, src)  # no --model: the manifest's, found by its digest
    err = capsys.readouterr().err
    assert "backend pynq" in err
    assert "127 cycles/frame (1 tile(s), measured)" in err  # the fake's CYCLES: 10*12 + 7
    (got,) = read_frames(tmp_path / "a_restored.png")
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])


def test_register_and_dma_sequence(board, tmp_path):
    model, bit, mfile = board
    # Tensor 0 is 10x20; halo 4 (four 3x3 layers): tiles of 10x10 with 2-pixel cores.
    write_manifest(bit.with_suffix(".json"), model, max_width=10)
    img = spec.random_image(5, 20, 40, 3)
    run_ok("--bitstream", bit, "--model", mfile, write_png(tmp_path / "b.png", img))
    (got,) = read_frames(tmp_path / "b_restored.png")
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])

    log = fake_pynq.LOG
    assert log[0] == ("overlay", "gam.bit")
    assert [e[:2] for e in log[1:3]] == [("read", "ID"), ("read", "SHAPE")]
    assert log[3] == ("write", "CONTROL", regmap.CONTROL_SOFT_RESET | regmap.CONTROL_CLEAR_ERRORS)
    writes = [e for e in log if e[0] == "write" and e[1] in ("PARAM_ADDR", "PARAM_DATA")]
    want = []
    for addr, words in regmap.param_writes(model):
        want += [("write", "PARAM_ADDR", addr)] + [("write", "PARAM_DATA", int(w)) for w in words]
    assert writes == want
    last_param = max(i for i, e in enumerate(log) if e[:2] == ("write", "PARAM_DATA"))
    assert [e[:2] for e in log[last_param + 1:last_param + 3]] == [("read", "STATUS"),
                                                                   ("read", "MAX_WIDTH")]
    first_dma = next(i for i, e in enumerate(log) if e[0] in ("send", "recv"))
    sizes = [e for e in log[:first_dma] if e[0] == "write" and e[1] in ("WIDTH", "HEIGHT")]
    assert [e[1] for e in sizes] == ["WIDTH", "HEIGHT"]
    # Double buffering: tile n+1 is sent before tile n has come back.
    sends = [i for i, e in enumerate(log) if e[0] == "send"]
    dones = [i for i, e in enumerate(log) if e[0] == "recv_done"]
    assert len(sends) == len(dones) > 2
    assert all(s < d for s, d in zip(sends[1:], dones))
    assert ("free", (10 * 10, 16)) in log  # buffers released at the end


def test_video_on_the_board_equals_emulation(board, tmp_path, monkeypatch):
    model, bit, mfile = board
    write_manifest(bit.with_suffix(".json"), model, max_width=9)
    clip = make_clip(tmp_path / "c.mp4", [spec.random_image(k, 16, 20, 3) for k in range(3)])
    from host.media import Sink

    written = {}
    orig = Sink.write

    def spy(self, px, pts=None):
        written.setdefault(self.final.name, []).append(px.copy())
        orig(self, px, pts)

    monkeypatch.setattr(Sink, "write", spy)
    run_ok("--bitstream", bit, "--model", mfile, "-o", tmp_path / "board.mp4", clip)
    run_ok("--backend", "emulate", "--model", mfile, "-o", tmp_path / "cpu.mp4", clip)
    assert len(written["board.mp4"]) == 3
    for a, b in zip(written["board.mp4"], written["cpu.mp4"]):
        np.testing.assert_array_equal(a, b)


def test_short_dma_length_register_means_shorter_tiles(board, tmp_path):
    model, bit, mfile = board
    # AXI DMA's default 14-bit length: 16383 bytes = 15 rows of 64 px * 16 B.
    fake_pynq.install(model, dma_width=14)
    img = spec.random_image(6, 40, 16, 3)
    run_ok("--bitstream", bit, "--model", mfile, write_png(tmp_path / "c.png", img))
    heights = [e[1] // 8 for e in fake_pynq.LOG if e[0] == "send"]  # 16 B/px, 8 px wide
    assert len(heights) == 2 and heights[0] == heights[1] <= 15  # the fewest equal tiles under 15 rows
    (got,) = read_frames(tmp_path / "c_restored.png")
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])
