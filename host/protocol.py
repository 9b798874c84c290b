"""The accelerator's register sequence as data, so the board and Verilator backends share it.

The board backend executes these operations through ``pynq.MMIO``; the Verilator backend
through an AXI4-Lite manager in the simulator. Both therefore program the accelerator in
exactly the same order with the same values (the contract is :mod:`hw.regmap`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hw import regmap
from spec import Model

from .errors import HostError

__all__ = ["Op", "setup_ops", "size_ops", "status_text", "FRAME_ERRORS"]

#: STATUS bits that mean a frame went wrong on the stream.
FRAME_ERRORS = regmap.STATUS_ERR_TLAST_EARLY | regmap.STATUS_ERR_TLAST_LATE


@dataclass(frozen=True)
class Op:
    """One register access: a write of ``value``, or a read whose ``got & mask`` must equal
    ``value`` (``message`` says what a mismatch means; ``{got}`` is the value read)."""

    kind: str  # "write" or "read"
    reg: str
    value: int
    mask: int = 0xFFFFFFFF
    message: str = ""

    @property
    def address(self) -> int:
        return regmap.REG[self.reg]

    def check(self, got: int) -> None:
        """Raise :class:`HostError` if a read returned the wrong value."""
        if self.kind == "read" and (int(got) & self.mask) != self.value:
            raise HostError(self.message.format(got=int(got), status=status_text(int(got))))


def status_text(status: int) -> str:
    """``STATUS`` spelled out for messages."""
    names = [n for n, bit in (("busy", regmap.STATUS_BUSY),
                              ("TLAST before the frame's last pixel", regmap.STATUS_ERR_TLAST_EARLY),
                              ("no TLAST on the frame's last pixel", regmap.STATUS_ERR_TLAST_LATE),
                              ("parameter address out of range", regmap.STATUS_ERR_PARAM_ADDR),
                              ("frame size out of range", regmap.STATUS_ERR_FRAME_SIZE))
             if status & bit]
    return f"STATUS=0x{status:x}" + (f" ({', '.join(names)})" if names else "")


def setup_ops(model: Model, fold=None) -> list[Op]:
    """Identify the accelerator, reset its pipeline and load ``model``'s parameters."""
    sid = regmap.shape_id(model)
    ops = [
        Op("read", "ID", regmap.ID_VALUE,
           message="the bitstream's accelerator answers ID=0x{got:08x}, not a gamir "
                   f"accelerator (0x{regmap.ID_VALUE:08x}): wrong bitstream?"),
        Op("read", "SHAPE", sid,
           message="the accelerator was built for another model shape (SHAPE=0x{got:08x}, "
                   f"the model's is 0x{sid:08x}): regenerate the bitstream for this model"),
        Op("write", "CONTROL", regmap.CONTROL_SOFT_RESET | regmap.CONTROL_CLEAR_ERRORS),
    ]
    for addr, words in regmap.param_writes(model, fold):
        ops.append(Op("write", "PARAM_ADDR", addr))
        ops += [Op("write", "PARAM_DATA", int(w)) for w in words]
    ops.append(Op("read", "STATUS", 0, mask=regmap.STATUS_ERR_PARAM_ADDR,
                  message="loading the model's parameters failed ({status}): the bitstream's "
                          "folding differs from its manifest's"))
    return ops


def size_ops(height: int, width: int) -> list[Op]:
    """Frame size for the following frames (write only while no frame is in flight)."""
    return [Op("write", "WIDTH", width), Op("write", "HEIGHT", height),
            Op("read", "STATUS", 0, mask=regmap.STATUS_ERR_FRAME_SIZE,
               message=f"the accelerator refused the frame size {width}x{height} ({{status}}): "
                       f"the bitstream's limits differ from its manifest's")]
