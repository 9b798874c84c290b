"""The PYNQ board backend: the accelerator in the FPGA, fed by AXI DMA.

Sequence (the register contract is :mod:`accel.regmap`):

1. ``pynq.Overlay(gam.bit)`` (it reads ``gam.hwh`` beside it) downloads the bitstream; the
   accelerator's AXI4-Lite window and the AXI DMA are found in its ``ip_dict``.
2. ``ID`` must read :data:`accel.regmap.ID_VALUE` and ``SHAPE`` the model's shape id, else the
   bitstream is not a gamir accelerator for this model's shape.
3. ``CONTROL`` soft-resets the pipeline and clears the error bits; the model's parameters are
   loaded as ``PARAM_ADDR`` + ``PARAM_DATA`` runs (:func:`accel.regmap.param_writes`), so any
   model of the bitstream's shape runs without a rebuild. ``STATUS`` must show no address error.
4. Per tile size: ``WIDTH``/``HEIGHT`` while idle. Per tile: the packed pixels
   (:func:`accel.regmap.pack_pixels`) go out on the DMA's MM2S channel and the result comes back
   on S2MM (the accelerator ends each frame with TLAST). Two buffer pairs alternate: tile n+1
   is packed and sent while tile n is still coming back.
5. After each tile, ``STATUS`` error bits abort with a message and ``CYCLES`` gives the measured
   cycles per frame. A DMA channel that does not finish within the timeout aborts too; the
   channels and the pipeline are reset so the next run starts clean.

``pynq`` is imported lazily: it pins numpy<2 and exists only on the board image (the ``board``
extra). Off the board this module is exercised against a fake of the pynq API
(tests/host/fake_pynq.py) that checks this register and DMA sequence.
"""

from __future__ import annotations

import importlib
import time
from functools import reduce
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from accel import config, regmap
from accel.protocol import FRAME_ERRORS, setup_ops, size_ops, status_text
from spec import Model

from .backend import Backend
from .errors import HostError
from .manifest import Manifest

__all__ = ["board_present", "PynqBackend"]

#: A tile may take this many times its predicted time (plus a second) before it is a timeout.
TIMEOUT_MARGIN = 10


def board_present() -> tuple[bool, str]:
    """Whether a PYNQ board is usable here, and why not."""
    try:
        pynq = importlib.import_module("pynq")
    except ImportError:
        return False, "the pynq package is not installed"
    try:
        devices = list(pynq.Device.devices)
    except Exception as e:  # noqa: BLE001 - pynq raises RuntimeError and others off-board
        return False, f"pynq finds no device: {e}"
    if not devices:
        return False, "pynq finds no device"
    return True, f"pynq device {getattr(devices[0], 'name', devices[0])}"


def _find_ip(ip_dict: dict, name: str, type_part: str, what: str) -> str:
    """``name`` if the overlay has it (hw/vivado names the cells ``gam`` and ``dma``), else
    the one IP whose type contains ``type_part``."""
    if name in ip_dict:
        return name
    names = [n for n, d in ip_dict.items() if type_part in str(d.get("type", ""))]
    if len(names) != 1:
        raise HostError(f"the overlay has no IP named {name!r} and {len(names)} {what} IPs "
                        f"({', '.join(names) or 'none'}): name the right one in the manifest's "
                        f"\"pynq\" section, e.g. {{\"pynq\": {{\"accelerator\": \"gam\", "
                        f"\"dma\": \"dma\"}}}}")
    return names[0]


class PynqBackend(Backend):
    """The accelerator on a PYNQ board (see the module docstring for the sequence)."""

    name = "pynq"

    def __init__(self, model: Model, manifest: Manifest | None, bitstream: Path | None,
                 timeout: float | None = None):
        super().__init__(model, manifest)
        if bitstream is None:
            raise HostError(f"--backend pynq needs --bitstream gam.bit (with {self.beside} "
                            f"beside it)")
        if not bitstream.is_file():
            raise HostError(f"bitstream {str(bitstream)!r} does not exist")
        self._check_files(bitstream)
        if manifest is None:
            raise HostError(f"no manifest beside {str(bitstream)!r}: copy the manifest.json "
                            f"that `python -m hw.generate` (or hw.build) wrote for this "
                            f"bitstream beside it")
        self._pynq = importlib.import_module("pynq")
        # The clock assumed for timeouts when the manifest does not give one (PYNQ-Z2 FCLK0).
        self._clock_hz = manifest.clock_hz or config.DEFAULT_CLOCK_HZ
        self._timeout = timeout
        self._bufs: list = []
        self._shape: tuple[int, int] | None = None
        self._open(bitstream, manifest)
        self._setup()

    #: What must lie beside the bitstream (for messages).
    beside = "gam.hwh and its manifest"

    def _check_files(self, bitstream: Path) -> None:
        hwh = bitstream.with_suffix(".hwh")
        if not hwh.is_file():
            raise HostError(f"{str(hwh)!r} is missing: PYNQ needs the .hwh that Vivado wrote "
                            f"with the bitstream (copy it beside {bitstream.name})")

    def _open(self, bitstream: Path, manifest: Manifest) -> None:
        """Download the bitstream; set ``_mmio`` (the registers), ``_dma`` (pynq's AxiDMA:
        ``sendchannel``/``recvchannel``) and ``_dma_max_bytes`` (``None``: no limit)."""
        try:
            self._overlay = self._pynq.Overlay(str(bitstream))
        except Exception as e:  # noqa: BLE001 - pynq's errors are many and plain
            raise HostError(f"cannot load bitstream {str(bitstream)!r}: {e}") from None
        names = manifest.pynq
        ips = self._overlay.ip_dict
        accel = _find_ip(ips, names.get("accelerator", "gam"), "gam_", "accelerator (gam_pynq)")
        dma = _find_ip(ips, names.get("dma", "dma"), "axi_dma", "AXI DMA")
        self._mmio = self._pynq.MMIO(ips[accel]["phys_addr"], ips[accel]["addr_range"])
        self._dma = reduce(getattr, dma.split("/"), self._overlay)
        # PYNQ's AxiDMA driver: 2**c_sg_length_width - 1 bytes per transfer.
        self._dma_max_bytes = getattr(self._dma, "buffer_max_size", None)

    # ------------------------------------------------------------------ registers
    def _read(self, name: str) -> int:
        return int(self._mmio.read(regmap.REG[name]))

    def _write(self, name: str, value: int) -> None:
        self._mmio.write(regmap.REG[name], int(value))

    def _setup(self) -> None:
        model = self.model
        self._execute(setup_ops(model, self.manifest.fold))
        self.max_width = min(self.max_width, self._read("MAX_WIDTH"))
        self.max_height = min(self.max_height or regmap.MAX_HEIGHT, regmap.MAX_HEIGHT)
        if self._dma_max_bytes is not None:
            # One DMA transfer carries a whole tile: limit tile rows so it fits the length
            # register (AXI DMA's default of 14 bits is only 16 KiB).
            beat = max(regmap.stream_bytes(model.input_channels),
                       regmap.stream_bytes(model.layers[-1].c_out))
            rows = self._dma_max_bytes // (self.max_width * beat)
            if rows < 1:
                raise HostError(f"the AXI DMA moves at most {self._dma_max_bytes} bytes per "
                                f"transfer, less than one {self.max_width}-pixel row: rebuild "
                                f"with a wider buffer length register (c_sg_length_width 26)")
            self.max_height = min(self.max_height, rows)

    def _execute(self, ops) -> None:
        for op in ops:
            if op.kind == "write":
                self._mmio.write(op.address, op.value)
            else:
                problem = op.mismatch(self._mmio.read(op.address))
                if problem:
                    raise HostError(problem)

    # ------------------------------------------------------------------ frames
    def _set_shape(self, h: int, w: int) -> None:
        """Frame size registers (idle only) and two buffer pairs of that size."""
        self._free()
        self._execute(size_ops(h, w))
        cin, cout = self.model.input_channels, self.model.layers[-1].c_out
        alloc = self._pynq.allocate
        self._bufs = [(alloc(shape=(h * w, regmap.stream_bytes(cin)), dtype=np.uint8),
                       alloc(shape=(h * w, regmap.stream_bytes(cout)), dtype=np.uint8))
                      for _ in range(2)]
        self._shape = (h, w)

    def _deadline(self) -> float:
        h, w = self._shape
        if self._timeout is not None:
            return time.monotonic() + self._timeout
        cycles = self.manifest.cycles_per_frame(self.model, h, w)
        return time.monotonic() + 1.0 + TIMEOUT_MARGIN * cycles / self._clock_hz

    def _wait(self, channel, what: str, n: int, deadline: float) -> None:
        while not channel.idle:
            if time.monotonic() > deadline:
                status = self._read("STATUS")
                self._recover()
                raise HostError(
                    f"DMA timeout: the {what} of tile {n} did not finish in time "
                    f"({status_text(status)}). The accelerator or its DMA is stuck: check that "
                    f"the bitstream matches its manifest; the pipeline has been reset")
        channel.wait()  # returns at once; checks DMA errors, invalidates the receive buffer

    def _recover(self) -> None:
        for ch in (self._dma.sendchannel, self._dma.recvchannel):
            ch.stop()
            ch.start()
        self._write("CONTROL", regmap.CONTROL_SOFT_RESET | regmap.CONTROL_CLEAR_ERRORS)

    def _pack(self, slot: int, x0: np.ndarray) -> None:
        self._bufs[slot][0][:] = regmap.pack_pixels(x0)

    def _send(self, slot: int) -> None:
        self._dma.sendchannel.transfer(self._bufs[slot][0])

    def _receive(self, slot: int) -> None:
        self._dma.recvchannel.transfer(self._bufs[slot][1])

    def _finish(self, slot: int, n: int, deadline: float) -> np.ndarray:
        self._wait(self._dma.recvchannel, "output", n, deadline)
        status = self._read("STATUS")
        if status & FRAME_ERRORS:
            self._recover()
            raise HostError(f"the accelerator flagged tile {n}: {status_text(status)}")
        self.measured_cycles[self._shape] = self._read("CYCLES")
        h, w = self._shape
        c = self.model.layers[-1].c_out
        return regmap.unpack_pixels(np.array(self._bufs[slot][1]), h, w, c)

    def run(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        try:
            yield from self._stream(tensors)
        except BaseException:
            # Ctrl-C, an input error or a timeout with transfers in flight: stop the DMA
            # before its buffers are freed, and clear the pipeline for the next run.
            self._recover()
            raise

    def _stream(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        it = iter(tensors)
        x = next(it, None)
        n, pre_sent, deadline = 0, False, 0.0
        while x is not None:
            if x.shape[:2] != self._shape:
                self._set_shape(*x.shape[:2])
            slot = n % 2
            if not pre_sent:
                self._pack(slot, x)
                self._receive(slot)
                self._send(slot)
                deadline = self._deadline()
            nxt = next(it, None)
            # Double buffering: tile n+1 goes out while tile n comes back (same size only:
            # the size registers change only while the pipeline is idle).
            pre_sent = nxt is not None and nxt.shape[:2] == self._shape
            if pre_sent:
                self._pack(1 - slot, nxt)  # on the CPU while tile n is still in flight
                self._wait(self._dma.sendchannel, "input", n, deadline)
                self._send(1 - slot)
            y = self._finish(slot, n, deadline)
            if pre_sent:
                self._receive(1 - slot)
                deadline = self._deadline()
            else:
                self._wait(self._dma.sendchannel, "input", n, deadline)
            yield y
            x, n = nxt, n + 1

    def _free(self) -> None:
        for pair in self._bufs:
            for buf in pair:
                buf.freebuffer()
        self._bufs = []
        self._shape = None

    def close(self) -> None:
        self._free()
