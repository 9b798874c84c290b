"""A fake of the small part of the pynq API the board backends use, with a fake accelerator.

It behaves like the real thing where the driver could get it wrong: ``Overlay`` needs the
``.hwh`` beside the bitstream, a DMA channel refuses a transfer while busy, the receive channel
completes only when a whole frame came out, size registers are refused while a frame is in
flight. The accelerator computes frames with the spec from the model whose parameters were
*loaded through the registers* (it checks them word for word against
:func:`accel.regmap.param_writes` of the model it was built for). Every register access and DMA
call is logged in ``LOG`` for the tests to check the sequence.

The open-flow bitstream (``install(..., flow="open")``): ``Bitstream(...).download()`` without
metadata, ``ps.Clocks.fclk0_mhz`` (it must be set before the download), the HP0 AFI registers
(left in 32-bit mode, as a boot image may: the DMA refuses to start until they are 64-bit), and
the accelerator's own DMA registers at GP0 (:data:`accel.regmap.DMA_REGISTERS`): a start must
name an allocated buffer by its physical address, flushed (reads) or invalidated since its
last result (writes), and a length of exactly the frame's bytes; a start while that channel is
busy sets the error bit as the hardware does. An output frame is written into the buffer when
``DMA_STATUS`` is polled with a write started and an input frame taken.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import spec
from accel import regmap

LOG: list[tuple] = []
STATE: dict = {}


#: Where the open-flow design's registers are (M_AXI_GP0) and S_AXI_HP0's AFI registers.
GP0_BASE = regmap.GP0_BASE
AFI_BASE = 0xF800_8000


def install(model, fold=None, devices=("fake-pynq-z2",), hang=False, dma_width=26,
            frame_status=0, interrupt_at=None, dma_status=0):
    """Reset the fake: a board whose bitstream was built for ``model``'s shape.

    ``hang``: no frame ever comes out; ``frame_status``: STATUS bits set by every frame;
    ``interrupt_at``: Ctrl-C while waiting for that output frame (0-based); ``dma_status``:
    DMA_STATUS error bits set by every open-flow frame.
    """
    LOG.clear()
    STATE.clear()
    STATE.update(model=model, fold=fold, hang=hang, dma_width=dma_width,
                 frame_status=frame_status, interrupt_at=interrupt_at, dma_status=dma_status,
                 buffers={}, next_address=0x1000_0000, fclk0=None,
                 afi={0x00: 1, 0x14: 1})  # 32BitEn set: the DMA must switch HP0 to 64 bits
    Device.devices = list(devices)


class Device:
    devices: list = []


class PynqBuffer(np.ndarray):
    def freebuffer(self):
        LOG.append(("free", self.shape))
        STATE["buffers"].pop(getattr(self, "physical_address", None), None)

    def flush(self):
        self.flushed = True

    def invalidate(self):
        self.stale = False


def allocate(shape, dtype):
    """A zeroed buffer at the next free page-aligned physical address."""
    LOG.append(("allocate", tuple(shape)))
    buf = np.zeros(shape, dtype).view(PynqBuffer)
    buf.physical_address = STATE["next_address"]
    buf.flushed, buf.stale = False, False
    STATE["next_address"] += -(-buf.nbytes // 4096) * 4096
    STATE["buffers"][buf.physical_address] = buf
    return buf


class _Accelerator:
    def __init__(self, open_flow=False):
        model = STATE["model"]
        self.regs = {"ID": regmap.ID_VALUE, "SHAPE": regmap.shape_id(model), "STATUS": 0,
                     "WIDTH": 0, "HEIGHT": 0, "FRAMES": 0, "CYCLES": 0, "PARAM_ADDR": 0,
                     "MAX_WIDTH": 4096, "DMA_STATUS": 0}
        self.params: dict[int, int] = {}
        self.inputs: list[np.ndarray] = []
        self.outputs: list[np.ndarray] = []
        self.open_flow = open_flow
        self.write_buffer = None  # the output buffer of the write under way
        # A read completes once a write is under way for its frame: the pipeline holds a few
        # rows, so a frame whose output has nowhere to go stalls its read (as on the board).
        self.reads = self.reads_done = self.writes = self.polls = 0
        self.read_done_at: list = []  # the poll at which each frame's read completed

    # ------------------------------------------------------------ the open flow's DMA
    def _buffer(self, what, addr_reg, bytes_reg, channels):
        """The allocated buffer a start names; its length must be exactly the frame's."""
        addr, nbytes = self.regs.get(addr_reg, 0), self.regs.get(bytes_reg, 0)
        buf = STATE["buffers"].get(addr)
        assert buf is not None, f"{what} started at 0x{addr:x}: no allocated buffer there"
        want = regmap.dma_bytes(self.regs["WIDTH"] * self.regs["HEIGHT"], channels)
        assert nbytes == want == buf.nbytes, (
            f"{what} of {nbytes} bytes into a {buf.nbytes}-byte buffer: the "
            f"{self.regs['WIDTH']}x{self.regs['HEIGHT']} frame has {want}")
        assert all(STATE["afi"][r] & 1 == 0 for r in STATE["afi"]), \
            f"{what} started with S_AXI_HP0 in 32-bit mode"
        return buf

    def dma_write(self, name, value):
        status = self.regs["DMA_STATUS"]
        if name != "DMA_CONTROL":
            self.regs[name] = value
            return
        if value & regmap.DMA_CLEAR_ERRORS:
            status &= ~regmap.DMA_ERRORS
        if value & regmap.DMA_ABORT:
            self.write_buffer = None
            self.inputs.clear()
            self.reads = self.reads_done = self.writes = 0
            self.read_done_at = [None] * self.regs["FRAMES"]
            status &= ~(regmap.DMA_READ_BUSY | regmap.DMA_WRITE_BUSY)
            STATE["interrupt_at"] = None
            LOG.append(("dma_abort",))
        model = STATE["model"]
        if value & regmap.DMA_START_WRITE:
            if status & regmap.DMA_WRITE_BUSY:
                status |= regmap.DMA_ERR_START
            else:
                buf = self._buffer("write", "DMA_DST", "DMA_DST_BYTES", model.layers[-1].c_out)
                assert not buf.stale, "output buffer reused without invalidate() after its frame"
                self.write_buffer = buf
                self.writes += 1
                status |= regmap.DMA_WRITE_BUSY
        if value & regmap.DMA_START_READ:
            if status & regmap.DMA_READ_BUSY:
                status |= regmap.DMA_ERR_START
            else:
                buf = self._buffer("read", "DMA_SRC", "DMA_SRC_BYTES", model.input_channels)
                assert buf.flushed, "input buffer sent without flush(): DDR holds stale pixels"
                buf.flushed = False
                self.push(np.array(buf).reshape(-1, regmap.stream_bytes(model.input_channels)))
                self.reads += 1
                status |= regmap.DMA_READ_BUSY
        self.regs["DMA_STATUS"] = status

    def dma_poll(self):
        """A read completes once its frame has a write; a write under way completes when the
        accelerator has a frame for it."""
        self.polls += 1
        if self.reads_done < min(self.reads, self.writes):
            self.reads_done += 1
            self.read_done_at.append(self.polls)
            self.regs["DMA_STATUS"] &= ~regmap.DMA_READ_BUSY
        # The result takes time after its input: ready OUTPUT_POLLS polls after its read.
        if (self.write_buffer is None or len(self.read_done_at) <= self.regs["FRAMES"]
                or self.polls < self.read_done_at[self.regs["FRAMES"]] + OUTPUT_POLLS):
            return
        if STATE["interrupt_at"] == self.regs["FRAMES"]:
            raise KeyboardInterrupt
        out = self.pop()
        if out is not None:
            self.write_buffer[:] = out.reshape(self.write_buffer.shape)
            self.write_buffer.stale = True
            self.write_buffer = None
            self.regs["DMA_STATUS"] &= ~regmap.DMA_WRITE_BUSY
            self.regs["DMA_STATUS"] |= STATE["dma_status"]
            LOG.append(("dma_written",))

    def check_params(self):
        """The loaded words must be exactly the model's (else the hardware computes garbage)."""
        want = {}
        for addr, words in regmap.param_writes(STATE["model"], STATE["fold"]):
            want.update({addr + k: int(w) for k, w in enumerate(words)})
        assert self.params == want, "parameter memory differs from the model's"

    def push(self, beats: np.ndarray):
        h, w = self.regs["HEIGHT"], self.regs["WIDTH"]
        x0 = regmap.unpack_pixels(beats, h, w, STATE["model"].input_channels)
        self.check_params()
        self.inputs.append(x0)

    def pop(self) -> np.ndarray | None:
        if STATE["hang"] or not self.inputs:
            return None
        model = STATE["model"]
        y = spec.run_tensor(model, self.inputs.pop(0))
        self.regs["FRAMES"] += 1
        self.regs["STATUS"] |= STATE["frame_status"]
        self.regs["CYCLES"] = y.shape[0] * y.shape[1] + 7
        return regmap.pack_pixels(y)


#: DMA_STATUS polls between a frame's read completing and its result being written.
OUTPUT_POLLS = 3

_NAMES = {a: n for n, a in {**regmap.REG, **regmap.DMA_REG}.items()}


class MMIO:
    def __init__(self, base, length):
        self.acc = STATE["accelerator"]
        self.base = base
        if STATE["accelerator"].open_flow:
            assert base in (GP0_BASE, AFI_BASE), f"MMIO at 0x{base:x}: nothing there"
            if base == GP0_BASE:
                assert length >= 1 << regmap.AXIL_ADDR_BITS, "the register window is 4 KiB"

    def read(self, offset):
        if self.base == AFI_BASE:
            return STATE["afi"][offset]
        name = _NAMES[offset]
        if name == "DMA_STATUS":
            self.acc.dma_poll()
        value = self.acc.regs.get(name, 0)
        LOG.append(("read", name, value))
        return value

    def write(self, offset, value):
        if self.base == AFI_BASE:
            LOG.append(("afi", offset, value))
            STATE["afi"][offset] = value
            return
        name = _NAMES[offset]
        LOG.append(("write", name, value))
        acc = self.acc
        if name.startswith("DMA_"):
            acc.dma_write(name, value)
            return
        if name == "PARAM_DATA":
            acc.params[acc.regs["PARAM_ADDR"]] = value
            acc.regs["PARAM_ADDR"] += 1
        elif name == "CONTROL":
            if value & regmap.CONTROL_SOFT_RESET:
                acc.inputs.clear()
            if value & regmap.CONTROL_CLEAR_ERRORS:
                acc.regs["STATUS"] = 0
        elif name in ("WIDTH", "HEIGHT"):
            assert not acc.inputs, "frame size written while a frame is in flight"
            acc.regs[name] = value
        else:
            acc.regs[name] = value


class _Channel:
    def __init__(self, kind):
        self.kind, self.buf, self.done = kind, None, True

    def transfer(self, buf):
        if not self.idle:
            raise RuntimeError("DMA channel not idle")
        LOG.append((self.kind, len(buf)))
        self.buf, self.done = buf, False
        if self.kind == "send":
            STATE["accelerator"].push(np.array(buf))
            self.done = True

    @property
    def idle(self):
        if not self.done and self.kind == "recv":
            if STATE["interrupt_at"] == STATE["accelerator"].regs["FRAMES"]:
                raise KeyboardInterrupt
            out = STATE["accelerator"].pop()
            if out is not None:
                assert out.shape == self.buf.shape, "receive buffer does not fit the frame"
                self.buf[:] = out
                self.done = True
                LOG.append(("recv_done",))
        return self.done

    def wait(self):
        assert self.done, "wait() on a busy channel blocks forever without a timeout"

    def stop(self):
        LOG.append((self.kind + "_stop",))
        self.done = True
        STATE["interrupt_at"] = None

    def start(self):
        pass


class _DMA:
    def __init__(self):
        self.sendchannel, self.recvchannel = _Channel("send"), _Channel("recv")
        self.buffer_max_size = (1 << STATE["dma_width"]) - 1  # as pynq's AxiDMA computes it


class Bitstream:
    """pynq.Bitstream: downloads any .bit (no metadata needed)."""

    def __init__(self, bitfile):
        assert Path(bitfile).is_file(), f"Bitstream file {bitfile} does not exist."
        self.name = Path(bitfile).name

    def download(self):
        assert STATE["fclk0"] is not None, "bitstream downloaded before FCLK0 was set"
        LOG.append(("download", self.name))
        STATE["accelerator"] = _Accelerator(open_flow=True)


class _Clocks:
    """pynq.ps.Clocks.fclk0_mhz: the PS makes 1000 MHz / (d0 * d1), d0, d1 in 1..63."""

    @property
    def fclk0_mhz(self):
        return STATE["fclk0"]

    @fclk0_mhz.setter
    def fclk0_mhz(self, mhz):
        best = min((abs(1000 / (a * b) - mhz), 1000 / (a * b))
                   for a in range(1, 64) for b in range(1, 64))
        STATE["fclk0"] = best[1]
        LOG.append(("fclk0", mhz))


class ps:  # noqa: N801 - the module's name in pynq
    Clocks = _Clocks()


class Overlay:
    def __init__(self, bitfile):
        if not Path(bitfile).with_suffix(".hwh").is_file():
            raise ValueError("Cannot find HWH file")
        LOG.append(("overlay", Path(bitfile).name))
        STATE["accelerator"] = _Accelerator()
        self.ip_dict = {
            # The cell names and types of hw/build/vivado.py's block design.
            "gam": {"type": "xilinx.com:module_ref:gam_pynq:1.0", "phys_addr": 0x4000_0000,
                    "addr_range": 0x1000},
            "dma": {"type": "xilinx.com:ip:axi_dma:7.1", "phys_addr": 0x4040_0000,
                    "addr_range": 0x10000,
                    "parameters": {"c_sg_length_width": str(STATE["dma_width"])}},
        }
        self.dma = _DMA()
