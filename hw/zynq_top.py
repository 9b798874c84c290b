"""The open-flow Zynq design: the accelerator, its own DMA and the PS7, no Xilinx IP.

:class:`ZynqCore` is everything in the fabric: the accelerator, the DMA
(:class:`hw.axi_dma.AxiDma`) between its streams and an AXI3 master, and the register port
(:class:`hw.register_port.RegisterPort`) that turns GP0's AXI3 into the registers. Its ports are
the two PS buses. The simulations (tests/sim/test_zynq.py) test it with :class:`hw.top.Top` inside.
In the open flow it holds :class:`GamTop` instead, an instance of ``gam_top.v``'s module: a
build elaborates and converts the accelerator once (:func:`hw.generate.generate`'s
``gam_top.v``, the file the other flows and the simulator take too) and Yosys reads that file
beside this top.

:class:`ZynqTop` adds the PS7 as a plain ``Instance("PS7")`` (Yosys ``synth_xilinx`` and
nextpnr-himbaechel-xilinx place it at its one site): FCLK_CLK0 through a BUFG is the clock,
FCLK_RESET0_N (synchronized) the reset, M_AXI_GP0 drives the register port, the DMA masters
S_AXI_HP0. The PS7's MIO/DDR pins stay unconnected: they are dedicated pins, configured by the
board's boot loader (ps7_init), not by the fabric bitstream, and PYNQ sets FCLK_CLK0's
frequency at run time. :func:`zynq_verilog` writes it with top module ``gam_zynq`` and no ports.
"""

import os

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from accel import regmap

from .axi_dma import AxiDma
from .register_port import GP_ID_BITS, RegisterPort
from .top import AXI3Signature, Top, TopSignature

__all__ = ["GamTop", "ZynqCore", "ZynqTop", "zynq_verilog", "TOP_NAME", "HP_ID_BITS",
           "CLOCK_NET"]

#: Module name of :func:`zynq_verilog`'s top.
TOP_NAME = "gam_zynq"
#: ID width of the PS7's S_AXI_HP0.
HP_ID_BITS = 6
#: The fabric clock's net (FCLK_CLK0 after its BUFG): what the open flow's XDC constrains.
CLOCK_NET = "clk"


class GamTop(wiring.Component):
    """``gam_top`` of :func:`hw.generate.generate`'s ``gam_top.v`` as a black box: an instance
    with :class:`hw.top.Top`'s ports for ``model``'s channels, named as Amaranth's Verilog
    names them (members joined by ``__``, the ``sync`` domain's ``clk`` and ``rst``). Synthesis
    reads ``gam_top.v`` beside the design that holds it."""

    def __init__(self, model):
        self.c_in, self.c_out = model.input_channels, model.layers[-1].c_out
        super().__init__(TopSignature(self.c_in, self.c_out))

    def elaborate(self, platform):
        ports = {("i_" if member.flow == In else "o_") + "__".join(map(str, path)): value
                 for path, member, value in self.signature.flatten(self)}
        return Instance("gam_top", i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"), **ports)


class ZynqCore(wiring.Component):
    """The fabric side: the accelerator + DMA + register port.

    The accelerator is ``top(model, **top_args)``: :class:`hw.top.Top` (the simulations) or
    :class:`GamTop` (the open flow; its ports depend on the channels alone, so it takes no
    keyword arguments).

    Members
    -------
    s_axi_gp : In(AXI3Signature(data_bits=32, id_bits=12))
        From the PS7's M_AXI_GP0: the registers (:data:`accel.regmap.REGISTERS` and
        :data:`accel.regmap.DMA_REGISTERS`).
    m_axi_hp : Out(AXI3Signature(data_bits=64, id_bits=6))
        To the PS7's S_AXI_HP0: the frames in DDR.
    """

    def __init__(self, model, *, top=Top, **top_args):
        self.top = top(model, **top_args)
        self.dma = AxiDma(regmap.stream_bytes(self.top.c_in), regmap.stream_bytes(self.top.c_out))
        super().__init__({
            "s_axi_gp": In(AXI3Signature(data_bits=32, id_bits=GP_ID_BITS)),
            "m_axi_hp": Out(AXI3Signature(data_bits=64, id_bits=HP_ID_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        m.submodules.dma = dma = self.dma
        m.submodules.regs = regs = RegisterPort()
        wiring.connect(m, wiring.flipped(self.s_axi_gp), regs.s_axi)
        wiring.connect(m, regs.m_axil, top.s_axil)
        wiring.connect(m, regs.m_dma, dma.regs)
        wiring.connect(m, dma.m_axis, top.s_axis)
        wiring.connect(m, top.m_axis, dma.s_axis)
        wiring.connect(m, dma.m_axi, wiring.flipped(self.m_axi_hp))
        return m


def _ps7_ports(prefix: str, bus, manager: bool) -> dict:
    """Instance keyword arguments binding ``bus`` (an AXI3 interface, manager's view) to the
    PS7's ``prefix`` port (``MAXIGP0``: the PS7 is the manager; ``SAXIHP0``: the slave). The
    PS7's ``size`` fields are 2 bits (at most 8-byte beats)."""
    ports = {}
    for name, member in bus.signature.members.items():
        value = getattr(bus, name)
        if name.endswith("size"):
            value = value[:2]
        # The PS7 drives what the manager drives when it is the manager, and the rest otherwise.
        ps7_drives = (member.flow == Out) == manager
        ports[("o_" if ps7_drives else "i_") + prefix + name.upper()] = value
    return ports


class ZynqTop(wiring.Component):
    """:class:`ZynqCore` (with :class:`GamTop` inside) and the PS7, its clock and reset: with
    ``gam_top.v``, a whole design without ports."""

    def __init__(self, model):
        self.core = ZynqCore(model, top=GamTop)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        fclk, fclk_resetn, clk = Signal(4), Signal(4), Signal(name=CLOCK_NET)
        m.submodules.core = core = self.core
        # Both buses as the manager sees them; the PS7 drives gp0's manager side, hp0's slave side.
        gp = AXI3Signature(data_bits=32, id_bits=GP_ID_BITS).create(path=("gp0",))
        hp = AXI3Signature(data_bits=64, id_bits=HP_ID_BITS).create(path=("hp0",))
        wiring.connect(m, gp, core.s_axi_gp)
        wiring.connect(m, core.m_axi_hp, wiring.flipped(hp))
        m.submodules.ps7 = Instance(
            "PS7", o_FCLKCLK=fclk, o_FCLKRESETN=fclk_resetn,
            i_MAXIGP0ACLK=clk, i_SAXIHP0ACLK=clk,
            **_ps7_ports("MAXIGP0", gp, manager=True), **_ps7_ports("SAXIHP0", hp, manager=False))
        m.submodules.fclk_buf = Instance("BUFG", i_I=fclk[0], o_O=clk)
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.reset_sync = ResetSynchronizer(~fclk_resetn[0], domain="sync")
        return m


def zynq_verilog(model) -> str:
    """Verilog of :class:`ZynqTop` for ``model`` (top module :data:`TOP_NAME`, no ports): what
    the open flow synthesizes, read with ``gam_top.v`` of the same model (any fold, width or
    DSP budget: the accelerator's ports follow from its channels)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    return verilog.convert(ZynqTop(model.validate()), name=TOP_NAME, emit_src=False)
