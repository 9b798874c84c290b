"""The open-flow design's register port: the PS7's M_AXI_GP0 (an AXI3 manager) in front of the
accelerator's AXI4-Lite registers and the DMA's.

Without Xilinx's AXI interconnect nobody converts GP0's AXI3 to AXI4-Lite, so this slave does:
one transaction at a time (writes first), each beat of a burst one register access at the next
word (INCR and WRAP step by 4 bytes, FIXED stays), ``id`` echoed, ``rlast`` on the last beat.
The 4 KiB window repeats over GP0's whole range (only address bits 0..11 are decoded); bit 11
picks the DMA's registers (:data:`accel.regmap.DMA_BASE`), below it the accelerator's.
Registers are written whole (``wstrb`` is passed to the accelerator, which ignores it, as the
Vivado design's interconnect would); GP0 never interleaves write data of different IDs.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel import regmap

from .axi_dma import RegisterPortSignature
from .top import AXI3Signature, AXILiteSignature

__all__ = ["RegisterPort", "GP_ID_BITS"]

#: ID width of the PS7's M_AXI_GP0.
GP_ID_BITS = 12


class RegisterPort(wiring.Component):
    """AXI3 slave (32-bit, GP0's 12-bit IDs) -> AXI4-Lite manager + the DMA's register port.

    Members
    -------
    s_axi : In(AXI3Signature(data_bits=32, id_bits=12))
    m_axil : Out(AXILiteSignature())
        To :class:`hw.top.Top`'s ``s_axil``.
    m_dma : Out(RegisterPortSignature(3))
        To :class:`hw.axi_dma.AxiDma`'s ``regs``.
    """

    def __init__(self):
        super().__init__({
            "s_axi": In(AXI3Signature(data_bits=32, id_bits=GP_ID_BITS)),
            "m_axil": Out(AXILiteSignature()),
            "m_dma": Out(RegisterPortSignature(3)),
        })

    def elaborate(self, platform):
        m = Module()
        s, lite, dma = self.s_axi, self.m_axil, self.m_dma
        tid = Signal(GP_ID_BITS)
        addr = Signal(regmap.AXIL_ADDR_BITS)
        left = Signal(4)  # beats after this one
        fixed = Signal()
        data = Signal(32)
        resp = Signal(2)
        to_dma = addr[regmap.DMA_BASE.bit_length() - 1]
        m.d.comb += [lite.awaddr.eq(addr), lite.araddr.eq(addr), lite.wdata.eq(s.wdata),
                     lite.wstrb.eq(s.wstrb), dma.addr.eq(addr[2:5]), dma.wdata.eq(s.wdata),
                     s.bid.eq(tid), s.rid.eq(tid), s.bresp.eq(resp), s.rresp.eq(resp),
                     s.rdata.eq(data), s.rlast.eq(left == 0)]

        def step(done_state, more_state):
            """After a beat: the response, or the next beat at the next word."""
            with m.If(left == 0):
                m.next = done_state
            with m.Else():
                m.d.sync += [left.eq(left - 1), addr.eq(addr + (~fixed << 2))]
                m.next = more_state

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [s.awready.eq(1), s.arready.eq(~s.awvalid)]
                m.d.sync += resp.eq(0)
                for a, state in (("ar", "READ"), ("aw", "WRITE")):  # the later If wins: writes
                    with m.If(getattr(s, f"{a}valid")):
                        m.d.sync += [tid.eq(getattr(s, f"{a}id")),
                                     addr.eq(getattr(s, f"{a}addr")),
                                     left.eq(getattr(s, f"{a}len")),
                                     fixed.eq(getattr(s, f"{a}burst") == 0)]
                        m.next = state
            with m.State("WRITE"):
                with m.If(to_dma):
                    m.d.comb += [s.wready.eq(1), dma.we.eq(s.wvalid)]
                    with m.If(s.wvalid):
                        step("BRESP", "WRITE")
                with m.Else():
                    m.d.comb += [lite.awvalid.eq(s.wvalid), lite.wvalid.eq(s.wvalid),
                                 s.wready.eq(lite.awready)]
                    with m.If(s.wvalid & lite.awready):
                        m.next = "WRITE_B"
            with m.State("WRITE_B"):
                m.d.comb += lite.bready.eq(1)
                with m.If(lite.bvalid):
                    m.d.sync += resp.eq(resp | lite.bresp)
                    step("BRESP", "WRITE")
            with m.State("BRESP"):
                m.d.comb += s.bvalid.eq(1)
                with m.If(s.bready):
                    m.next = "IDLE"
            with m.State("READ"):
                with m.If(to_dma):
                    m.d.sync += [data.eq(dma.rdata), resp.eq(0)]
                    m.next = "RDATA"
                with m.Else():
                    m.d.comb += lite.arvalid.eq(1)
                    with m.If(lite.arready):
                        m.next = "READ_R"
            with m.State("READ_R"):
                m.d.comb += lite.rready.eq(1)
                with m.If(lite.rvalid):
                    m.d.sync += [data.eq(lite.rdata), resp.eq(lite.rresp)]
                    m.next = "RDATA"
            with m.State("RDATA"):
                m.d.comb += s.rvalid.eq(1)
                with m.If(s.rready):
                    step("IDLE", "READ")
        return m
