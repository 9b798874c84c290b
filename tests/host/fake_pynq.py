"""A fake of the small part of the pynq API the board backend uses, with a fake accelerator.

It behaves like the real thing where the driver could get it wrong: ``Overlay`` needs the
``.hwh`` beside the bitstream, a DMA channel refuses a transfer while busy, the receive channel
completes only when a whole frame came out, size registers are refused while a frame is in
flight. The accelerator computes frames with the spec from the model whose parameters were
*loaded through the registers* (it checks them word for word against
:func:`accel.regmap.param_writes` of the model it was built for). Every register access and DMA
call is logged in ``LOG`` for the tests to check the sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import spec
from accel import regmap

LOG: list[tuple] = []
STATE: dict = {}


def install(model, fold=None, devices=("fake-pynq-z2",), hang=False, dma_width=26,
            frame_status=0, interrupt_at=None):
    """Reset the fake: a board whose bitstream was built for ``model``'s shape.

    ``hang``: no frame ever comes out; ``frame_status``: STATUS bits set by every frame;
    ``interrupt_at``: Ctrl-C while waiting for that output frame (0-based).
    """
    LOG.clear()
    STATE.clear()
    STATE.update(model=model, fold=fold, hang=hang, dma_width=dma_width,
                 frame_status=frame_status, interrupt_at=interrupt_at)
    Device.devices = list(devices)


class Device:
    devices: list = []


class PynqBuffer(np.ndarray):
    def freebuffer(self):
        LOG.append(("free", self.shape))

    def flush(self):
        pass

    def invalidate(self):
        pass

    physical_address = 0x1000_0000


def allocate(shape, dtype):
    LOG.append(("allocate", tuple(shape)))
    return np.zeros(shape, dtype).view(PynqBuffer)


class _Accelerator:
    def __init__(self):
        model = STATE["model"]
        self.regs = {"ID": regmap.ID_VALUE, "SHAPE": regmap.shape_id(model), "STATUS": 0,
                     "WIDTH": 0, "HEIGHT": 0, "FRAMES": 0, "CYCLES": 0, "PARAM_ADDR": 0,
                     "MAX_WIDTH": 4096}
        self.params: dict[int, int] = {}
        self.inputs: list[np.ndarray] = []
        self.outputs: list[np.ndarray] = []

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


class MMIO:
    def __init__(self, base, length):
        self.acc = STATE["accelerator"]

    def read(self, offset):
        name = {a: n for n, a in regmap.REG.items()}[offset]
        value = self.acc.regs.get(name, 0)
        LOG.append(("read", name, value))
        return value

    def write(self, offset, value):
        name = {a: n for n, a in regmap.REG.items()}[offset]
        LOG.append(("write", name, value))
        acc = self.acc
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


class Overlay:
    def __init__(self, bitfile):
        if not Path(bitfile).with_suffix(".hwh").is_file():
            raise ValueError("Cannot find HWH file")
        LOG.append(("overlay", Path(bitfile).name))
        STATE["accelerator"] = _Accelerator()
        self.ip_dict = {
            # The cell names and types of hw/vivado's block design.
            "gam": {"type": "xilinx.com:module_ref:gam_pynq:1.0", "phys_addr": 0x4000_0000,
                    "addr_range": 0x1000},
            "dma": {"type": "xilinx.com:ip:axi_dma:7.1", "phys_addr": 0x4040_0000,
                    "addr_range": 0x10000,
                    "parameters": {"c_sg_length_width": str(STATE["dma_width"])}},
        }
        self.dma = _DMA()
