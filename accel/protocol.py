"""The board's register sequence as data: one list of operations that every driver replays.

The PYNQ driver executes these operations through ``pynq.MMIO``, the Verilator backend and the
simulation benches through an AXI4-Lite manager in Verilator, the Amaranth tests through
theirs. All of them therefore program the accelerator in exactly the same order with the same
values (the registers are :mod:`accel.regmap`'s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spec.model import Model

from . import regmap

__all__ = ["Op", "identify_ops", "reset_ops", "load_ops", "setup_ops", "size_ops",
           "dma_read_ops", "dma_write_ops", "dma_abort_ops", "dma_status_text",
           "status_text", "to_array", "from_array", "FRAME_ERRORS"]

#: Every register name -> byte address: the accelerator's and the open-flow DMA's.
_ADDRESS = {**regmap.REG, **regmap.DMA_REG}

#: STATUS bits that mean a frame went wrong on the stream.
FRAME_ERRORS = regmap.STATUS_ERR_TLAST_EARLY | regmap.STATUS_ERR_TLAST_LATE


@dataclass(frozen=True)
class Op:
    """One register access: a write of ``value``, or a read whose ``got & mask`` must equal
    ``value`` (``message`` says what a mismatch means; ``{got}`` is the value read,
    ``{status}`` it spelled out as STATUS bits)."""

    kind: str  # "write" or "read"
    reg: str
    value: int
    mask: int = 0xFFFFFFFF
    message: str = ""

    @property
    def address(self) -> int:
        return _ADDRESS[self.reg]

    def mismatch(self, got: int) -> str | None:
        """What is wrong if a read returned ``got`` (``None`` for a write or a right value)."""
        if self.kind != "read" or (int(got) & self.mask) == self.value:
            return None
        message = self.message or (f"register {self.reg}: read 0x{{got:x}}, expected "
                                   f"0x{self.value:x} under mask 0x{self.mask:x}")
        return message.format(got=int(got), status=status_text(int(got)))


def status_text(status: int) -> str:
    """``STATUS`` spelled out for messages."""
    names = [n for n, bit in (("busy", regmap.STATUS_BUSY),
                              ("TLAST before the frame's last pixel", regmap.STATUS_ERR_TLAST_EARLY),
                              ("no TLAST on the frame's last pixel", regmap.STATUS_ERR_TLAST_LATE),
                              ("parameter address out of range", regmap.STATUS_ERR_PARAM_ADDR),
                              ("frame size out of range", regmap.STATUS_ERR_FRAME_SIZE))
             if status & bit]
    return f"STATUS=0x{status:x}" + (f" ({', '.join(names)})" if names else "")


def identify_ops(model: Model) -> list[Op]:
    """Check that the bitstream is a gamir accelerator built for ``model``'s shape."""
    sid = regmap.shape_id(model)
    return [
        Op("read", "ID", regmap.ID_VALUE,
           message="the bitstream's accelerator answers ID=0x{got:08x}, not a gamir "
                   f"accelerator (0x{regmap.ID_VALUE:08x}): wrong bitstream?"),
        Op("read", "SHAPE", sid,
           message="the accelerator was built for another model shape (SHAPE=0x{got:08x}, "
                   f"the model's is 0x{sid:08x}): regenerate the bitstream for this model"),
    ]


def reset_ops() -> list[Op]:
    """Soft-reset the pixel pipeline and clear the sticky errors."""
    return [Op("write", "CONTROL", regmap.CONTROL_SOFT_RESET | regmap.CONTROL_CLEAR_ERRORS)]


def load_ops(model: Model, fold=None) -> list[Op]:
    """Load ``model``'s parameters (:func:`accel.regmap.param_writes`), then check that every
    word hit a parameter region."""
    ops = []
    for addr, words in regmap.param_writes(model, fold):
        ops.append(Op("write", "PARAM_ADDR", int(addr)))
        ops += [Op("write", "PARAM_DATA", int(w)) for w in words]
    ops.append(Op("read", "STATUS", 0, mask=regmap.STATUS_ERR_PARAM_ADDR,
                  message="loading the model's parameters failed ({status}): the bitstream's "
                          "folding differs from its manifest's"))
    return ops


def setup_ops(model: Model, fold=None) -> list[Op]:
    """Identify the accelerator, reset its pipeline and load ``model``'s parameters."""
    return identify_ops(model) + reset_ops() + load_ops(model, fold)


def size_ops(height: int, width: int) -> list[Op]:
    """Frame size for the following frames (write only while no frame is in flight)."""
    return [Op("write", "WIDTH", width), Op("write", "HEIGHT", height),
            Op("read", "STATUS", 0, mask=regmap.STATUS_ERR_FRAME_SIZE,
               message=f"the accelerator refused the frame size {width}x{height} ({{status}}): "
                       f"the bitstream's limits differ from its manifest's")]


def dma_read_ops(address: int, nbytes: int) -> list[Op]:
    """Start the open-flow DMA's reader: ``nbytes`` from physical ``address`` into the
    accelerator (:data:`accel.regmap.DMA_REGISTERS`)."""
    return [Op("write", "DMA_SRC", address), Op("write", "DMA_SRC_BYTES", nbytes),
            Op("write", "DMA_CONTROL", regmap.DMA_START_READ)]


def dma_write_ops(address: int, nbytes: int) -> list[Op]:
    """Start the open-flow DMA's writer: the accelerator's next frame into ``nbytes`` at
    physical ``address``."""
    return [Op("write", "DMA_DST", address), Op("write", "DMA_DST_BYTES", nbytes),
            Op("write", "DMA_CONTROL", regmap.DMA_START_WRITE)]


def dma_abort_ops() -> list[Op]:
    """Stop both DMA channels (wait for ``DMA_STATUS``'s busy bits to clear) and clear its
    errors; the accelerator's soft reset (:func:`reset_ops`) follows."""
    return [Op("write", "DMA_CONTROL", regmap.DMA_ABORT | regmap.DMA_CLEAR_ERRORS)]


def dma_status_text(status: int) -> str:
    """``DMA_STATUS`` spelled out for messages."""
    names = [n for n, bit in (("read busy", regmap.DMA_READ_BUSY),
                              ("write busy", regmap.DMA_WRITE_BUSY),
                              ("read error response", regmap.DMA_ERR_READ),
                              ("write error response", regmap.DMA_ERR_WRITE),
                              ("start refused", regmap.DMA_ERR_START),
                              ("output frame shorter than its buffer", regmap.DMA_ERR_SHORT),
                              ("output frame longer than its buffer", regmap.DMA_ERR_LONG))
             if status & bit]
    return f"DMA_STATUS=0x{status:x}" + (f" ({', '.join(names)})" if names else "")


_REG_AT = {addr: name for name, addr in _ADDRESS.items()}


def to_array(ops: list[Op]) -> np.ndarray:
    """``ops`` as an (n, 4) int64 array (read?, address, value, mask), to pass to a simulator
    process; messages are not kept (:meth:`Op.mismatch` then names the register)."""
    return np.array([[op.kind == "read", op.address, op.value, op.mask] for op in ops],
                    dtype=np.int64).reshape(-1, 4)


def from_array(a: np.ndarray) -> list[Op]:
    """The inverse of :func:`to_array`."""
    return [Op("read" if r else "write", _REG_AT[int(addr)], int(v), int(m))
            for r, addr, v, m in np.asarray(a).tolist()]
