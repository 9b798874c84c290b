"""The open-flow board backend against the fake pynq, which runs the spec behind the open-flow
design's registers and checks the download, clock, DMA addresses, lengths and start order."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import (fake_board, host_restored, make_clip, open_manifest, read_frames,
                      write_manifest, write_png)

import fake_pynq
import spec
from accel import protocol, regmap
from host import pynq_open_backend
from host.run import main


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A fake board with an open-flow ``gam.bit`` and its manifest, no ``.hwh``."""
    return fake_board(tmp_path, monkeypatch, "open")


def run_ok(*args):
    assert main([str(a) for a in args]) == 0


def fails(capsys, args, pattern):
    assert main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err
    assert re.search(pattern, err), err


def test_auto_uses_the_open_flow_board_bit_exact(board, tmp_path, capsys):
    model, bit, mfile = board
    img = spec.random_image(4, 20, 24, 3)
    run_ok("--bitstream", bit, write_png(tmp_path / "a.png", img))
    assert "backend pynq (open flow)" in capsys.readouterr().err
    (got,) = read_frames(tmp_path / "a_restored.png")
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])


def test_download_clock_and_dma_sequence(board, tmp_path):
    model, bit, mfile = board
    open_manifest(bit.with_suffix(".json"), model, max_width=10)  # 10x10 tiles
    img = spec.random_image(5, 20, 40, 3)
    run_ok("--bitstream", bit, "--model", mfile, write_png(tmp_path / "b.png", img))
    (got,) = read_frames(tmp_path / "b_restored.png")
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])

    log = fake_pynq.LOG
    assert log[:2] == [("fclk0", 100.0), ("download", "gam.bit")]  # the clock first
    assert log[2:4] == [("afi", 0x00, 0), ("afi", 0x14, 0)]  # HP0 in 64-bit mode
    assert [e[:2] for e in log[4:6]] == [("read", "ID"), ("read", "SHAPE")]
    writes = [e for e in log if e[0] == "write" and e[1] in ("PARAM_ADDR", "PARAM_DATA")]
    assert writes == [("write", op.reg, op.value)
                      for op in protocol.load_ops(model) if op.kind == "write"]
    # Each tile: the write (destination) is started, then the read (source), each with the
    # buffer's address and exactly the tile's bytes.
    starts = [e for e in log if e[0] == "write" and e[1].startswith("DMA_")]
    sb_in, sb_out = regmap.stream_bytes(model.input_channels), regmap.stream_bytes(12)
    tiles = sum(1 for e in starts if e[1:] == ("DMA_CONTROL", regmap.DMA_START_READ))
    assert tiles > 2
    for k in range(0, len(starts), 3):
        reg, value = starts[k + 2][1:]
        assert reg == "DMA_CONTROL"
        assert [e[1] for e in starts[k:k + 2]] == (
            ["DMA_SRC", "DMA_SRC_BYTES"] if value == regmap.DMA_START_READ
            else ["DMA_DST", "DMA_DST_BYTES"])
        assert starts[k + 1][2] == 100 * (sb_in if value == regmap.DMA_START_READ else sb_out)
    # Double buffering: tile n+1's read starts before tile n's result is written.
    reads = [i for i, e in enumerate(log) if e == ("write", "DMA_CONTROL", regmap.DMA_START_READ)]
    written = [i for i, e in enumerate(log) if e == ("dma_written",)]
    assert len(reads) == len(written) == tiles
    assert all(r < w for r, w in zip(reads[1:], written))
    assert ("free", (100, 16)) in log


def test_video_equals_emulation_and_the_vivado_flow(board, tmp_path, monkeypatch):
    """The same frames from the open-flow board, the Vivado-flow board and the emulation."""
    model, bit, mfile = board
    from host.media import Sink

    written = {}
    orig = Sink.write

    def spy(self, px, pts=None):
        written.setdefault(self.final.name, []).append(px.copy())
        orig(self, px, pts)

    monkeypatch.setattr(Sink, "write", spy)
    clip = make_clip(tmp_path / "c.mp4", [spec.random_image(k, 16, 20, 3) for k in range(3)])
    open_manifest(bit.with_suffix(".json"), model, max_width=9)
    run_ok("--bitstream", bit, "--model", mfile, "-o", tmp_path / "open.mp4", clip)
    vivado = tmp_path / "vivado"
    vivado.mkdir()
    (vivado / "gam.bit").write_bytes(b"bit")
    (vivado / "gam.hwh").write_text("<hwh/>")
    write_manifest(vivado / "gam.json", model, max_width=9)
    fake_pynq.install(model)
    run_ok("--bitstream", vivado / "gam.bit", "--model", mfile, "-o", tmp_path / "viv.mp4", clip)
    run_ok("--backend", "emulate", "--model", mfile, "-o", tmp_path / "cpu.mp4", clip)
    assert len(written["open.mp4"]) == 3
    for a, b, c in zip(written["open.mp4"], written["viv.mp4"], written["cpu.mp4"]):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_dma_error_aborts_with_its_meaning(board, tmp_path, capsys):
    model, bit, mfile = board
    fake_pynq.install(model, dma_status=regmap.DMA_ERR_WRITE)
    fails(capsys, ["--bitstream", bit, "--model", mfile,
                   write_png(tmp_path / "e.png", spec.random_image(6, 8, 8, 3))],
          r"the accelerator's DMA failed: DMA_STATUS=0x8 \(write error response\)")
    assert ("dma_abort",) in fake_pynq.LOG
    assert fake_pynq.LOG[-1] == ("free", (16, 16))


def test_timeout_aborts_the_dma_and_resets_the_pipeline(board, tmp_path, capsys):
    model, bit, mfile = board
    fake_pynq.install(model, hang=True)
    fails(capsys, ["--bitstream", bit, "--model", mfile, "--timeout", "0.2",
                   write_png(tmp_path / "t.png", spec.random_image(7, 8, 8, 3))],
          r"DMA timeout: the output of tile 0 did not finish in time")
    log = fake_pynq.LOG
    abort = log.index(("dma_abort",))
    assert log[abort + 1:abort + 3] == [
        ("read", "DMA_STATUS", 0),
        ("write", "CONTROL", regmap.CONTROL_SOFT_RESET | regmap.CONTROL_CLEAR_ERRORS)]


def test_clock_above_the_timed_one_is_refused(board, tmp_path, capsys):
    model, bit, mfile = board
    open_manifest(bit.with_suffix(".json"), model, max_width=64, clock_mhz=124.0)
    fails(capsys, ["--bitstream", bit, "--model", mfile,
                   write_png(tmp_path / "k.png", spec.random_image(8, 8, 8, 3))],
          r"PYNQ set FCLK0 to 125.00 MHz, above the 124 MHz the bitstream was timed at")
    assert ("download", "gam.bit") not in fake_pynq.LOG


def test_a_wrong_length_fails_the_fake(board, tmp_path, monkeypatch):
    """The fake checks the driver: one pixel short in DMA_SRC_BYTES is caught."""
    model, bit, mfile = board
    short = lambda addr, n: protocol.dma_read_ops(addr, n - 16)  # noqa: E731
    monkeypatch.setattr(pynq_open_backend._Dma, "__init__", _short_dma(short))
    with pytest.raises(AssertionError, match=r"read of \d+ bytes into a \d+-byte buffer"):
        main(["--bitstream", str(bit), "--model", str(mfile),
              str(write_png(tmp_path / "w.png", spec.random_image(9, 8, 8, 3)))])


def _short_dma(read_ops):
    orig = pynq_open_backend._Dma.__init__

    def init(self, mmio):
        orig(self, mmio)
        self.sendchannel.ops = read_ops
    return init
