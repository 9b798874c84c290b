"""The PYNQ board backend for the open-flow bitstream (no Xilinx IP, no ``.hwh``).

The open flow (Yosys + nextpnr) builds :mod:`hw.zynq_top`: the PS7 instantiated directly, the
registers on M_AXI_GP0 at :data:`accel.regmap.GP0_BASE`, and the accelerator's own DMA
(:mod:`hw.axi_dma`) on S_AXI_HP0. The manifest's ``build.flow`` is ``"open"``
(:data:`accel.manifest.FLOWS`); :func:`host.backends.open_backend` picks this backend by it.

Sequence (what differs from :class:`host.pynq_backend.PynqBackend`; tiles, double buffering,
timeouts and the register setup are the same code):

1. ``pynq.ps.Clocks.fclk0_mhz`` is set to the manifest's ``build.clock_mhz`` (the clock the
   build was timed at) *before* the download, so the design never runs on another clock; the
   frequency PYNQ reached is read back, and one above the timed clock is refused.
2. ``pynq.Bitstream(gam.bit).download()``: PYNQ downloads a bitstream without metadata (there
   is no ``.hwh``: no block design made it), and nothing is looked up by IP name.
3. S_AXI_HP0 is put in 64-bit mode (AFI0's read and write channel control registers, Zynq-7000
   TRM appendix B), whatever the boot image configured.
4. ``pynq.MMIO(GP0_BASE, 4096)`` holds every register (:data:`accel.regmap.REGISTERS` and
   :data:`accel.regmap.DMA_REGISTERS`); buffers come from ``pynq.allocate`` as for the AXI DMA
   (the DDR layout is the same: :func:`accel.regmap.pack_pixels`' array).
5. Per tile: ``DMA_DST``/``DMA_DST_BYTES`` + start write, ``DMA_SRC``/``DMA_SRC_BYTES`` + start
   read (:func:`accel.protocol.dma_write_ops`, :func:`~accel.protocol.dma_read_ops`), the
   channels' busy bits polled in ``DMA_STATUS``; a DMA error bit aborts with its meaning.
   Recovery (timeout, Ctrl-C, an error) aborts the DMA, waits for it to go idle and soft-resets
   the accelerator.

Tested against the fake pynq (tests/host/fake_pynq.py), which runs the spec behind these
registers and checks addresses, lengths and the order of starts; not run on a real board.
"""

from __future__ import annotations

import time
from pathlib import Path

from accel import protocol, regmap

from .errors import HostError
from .manifest import Manifest
from .pynq_backend import PynqBackend

__all__ = ["OpenFlowBackend", "HP0_AFI_BASE", "AFI_RDCHAN_CTRL", "AFI_WRCHAN_CTRL"]

#: AFI0 (S_AXI_HP0's FIFO interface) registers; bit 0 of each channel control is ``32BitEn``.
HP0_AFI_BASE = 0xF800_8000
AFI_RDCHAN_CTRL = 0x00
AFI_WRCHAN_CTRL = 0x14
#: How long an abort may take to drain the bursts under way (they are at most 16 beats).
ABORT_SECONDS = 1.0
#: FCLK0 may come out this much above the timed clock (PYNQ rounds to its divisors).
CLOCK_TOLERANCE = 1.005


class _Channel:
    """One direction of the DMA with the part of pynq's ``AxiDMA`` channel API the board
    backend uses (``transfer``, ``idle``, ``wait``, ``stop``, ``start``)."""

    def __init__(self, dma: "_Dma", busy: int, ops, receive: bool):
        self.dma, self.busy, self.ops, self.receive = dma, busy, ops, receive
        self.buf = None

    def transfer(self, buf) -> None:
        if not self.receive:
            buf.flush()  # the CPU's writes reach DDR before the DMA reads them
        self.buf = buf
        self.dma.execute(self.ops(int(buf.physical_address), int(buf.nbytes)))
        self.dma.check()

    @property
    def idle(self) -> bool:
        return not self.dma.status() & self.busy

    def wait(self) -> None:
        """The transfer finished: raise on a DMA error; drop stale cache lines of results."""
        self.dma.check()
        if self.receive:
            self.buf.invalidate()

    def stop(self) -> None:
        self.dma.abort()

    def start(self) -> None:
        pass


class _Dma:
    """The DMA's registers through the accelerator's MMIO window."""

    def __init__(self, mmio):
        self.mmio = mmio
        self.sendchannel = _Channel(self, regmap.DMA_READ_BUSY, protocol.dma_read_ops, False)
        self.recvchannel = _Channel(self, regmap.DMA_WRITE_BUSY, protocol.dma_write_ops, True)

    def execute(self, ops) -> None:
        for op in ops:
            self.mmio.write(op.address, op.value)

    def status(self) -> int:
        return int(self.mmio.read(regmap.DMA_REG["DMA_STATUS"]))

    def check(self) -> None:
        status = self.status()
        if status & regmap.DMA_ERRORS:
            raise HostError(f"the accelerator's DMA failed: {protocol.dma_status_text(status)}."
                            f" Buffers or lengths do not match the frame, or DDR refused an "
                            f"access; the DMA has been reset")

    def abort(self) -> None:
        """Stop both channels and wait until the bursts under way have completed."""
        self.execute(protocol.dma_abort_ops())
        deadline = time.monotonic() + ABORT_SECONDS
        while self.status() & (regmap.DMA_READ_BUSY | regmap.DMA_WRITE_BUSY):
            if time.monotonic() > deadline:
                raise HostError("the accelerator's DMA did not stop after an abort: the bus "
                                "is hung, reload the bitstream (or reboot the board)")


class OpenFlowBackend(PynqBackend):
    """The open-flow accelerator on a PYNQ board (see the module docstring)."""

    name = "pynq (open flow)"
    beside = "its manifest"

    def _check_files(self, bitstream: Path) -> None:
        """No ``.hwh``: the open flow writes none and this backend needs none."""

    def _open(self, bitstream: Path, manifest: Manifest) -> None:
        pynq = self._pynq
        self._set_clock(manifest)
        try:
            pynq.Bitstream(str(bitstream)).download()
        except Exception as e:  # noqa: BLE001 - pynq's errors are many and plain
            raise HostError(f"cannot load bitstream {str(bitstream)!r}: {e}") from None
        afi = pynq.MMIO(HP0_AFI_BASE, 0x1000)
        for reg in (AFI_RDCHAN_CTRL, AFI_WRCHAN_CTRL):
            afi.write(reg, int(afi.read(reg)) & ~1)  # 64-bit mode
        self._mmio = pynq.MMIO(regmap.GP0_BASE, 1 << regmap.AXIL_ADDR_BITS)
        self._dma = _Dma(self._mmio)
        self._dma_max_bytes = None  # DMA_SRC_BYTES/DMA_DST_BYTES are 32 bits

    def _set_clock(self, manifest: Manifest) -> None:
        want = manifest.clock_hz
        if not want:
            raise HostError(f"the manifest {str(manifest.path)!r} names no clock "
                            f"(build.clock_mhz): rebuild with hw.build --flow open")
        clocks = self._pynq.ps.Clocks
        clocks.fclk0_mhz = want / 1e6
        got = float(clocks.fclk0_mhz) * 1e6
        if got > want * CLOCK_TOLERANCE:
            raise HostError(f"PYNQ set FCLK0 to {got / 1e6:.2f} MHz, above the "
                            f"{want / 1e6:g} MHz the bitstream was timed at: rebuild at a "
                            f"clock PYNQ can make (100, 50, ... MHz)")
        self._clock_hz = got

    def _recover(self) -> None:
        self._dma.abort()
        self._write("CONTROL", regmap.CONTROL_SOFT_RESET | regmap.CONTROL_CLEAR_ERRORS)
