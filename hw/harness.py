"""The measurement harness that puts the accelerator on a Lattice board.

A Lattice board has no AXI master: no processor drives ``s_axil``, no DMA feeds ``s_axis`` or
drains ``m_axis``. Left unconnected, those ports would be constants and Yosys would remove
nearly all of the accelerator (constant register writes fold the weights, an undriven stream
removes the datapath), so the utilization and Fmax would be meaningless.

The harness keeps every port alive with two pins and shift registers:

- ``serial_in``: a shift register as wide as all of ``gam_top``'s inputs (AXI-Stream data,
  valid, last, the output stream's ready and every AXI4-Lite input) takes one bit from the pin
  each clock, and its bits drive those inputs directly;
- ``serial_out``: a shift register as wide as all of ``gam_top``'s outputs loads them in
  parallel once every ``len(outputs)`` clocks (a counter from reset frames the words) and
  shifts them out on the pin in between.

So every input bit is controllable from the pin and every output bit observable on the pin,
and nothing can be optimized away. The cost is one flip-flop per input bit and per output
bit, plus a counter: a few hundred FFs and LUTs, counted in the board reports. This is a
measurement interface, not a usable video path: it exists so that Yosys and nextpnr place and
time exactly the accelerator that the PYNQ build places, with its register file and weight
loading intact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amaranth import C, Cat, ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io

__all__ = ["Port", "verilog_ports", "SerialHarness", "ecp5_pll"]

#: Ports of ``gam_top`` the harness does not serialize: the clock and reset come from the
#: board's clock domain.
CLOCK_RESET = ("clk", "rst")


@dataclass(frozen=True)
class Port:
    """One port of the accelerator's Verilog module."""

    name: str
    direction: str  # "input" or "output"
    width: int


def verilog_ports(verilog: str, module: str = "gam_top") -> list[Port]:
    """The ports of ``module`` in ``verilog``, in declaration order.

    Reads the declarations Yosys writes for Amaranth designs (``input [31:0] s_axis__tdata;``),
    so the build works from the same ``gam_top.v`` the PYNQ project and the simulator use.
    """
    match = re.search(rf"^module\s+{re.escape(module)}\b(.*?)^endmodule", verilog, re.S | re.M)
    if match is None:
        raise ValueError(f"no module {module!r} in the Verilog")
    ports = []
    # Both styles: Yosys's ``input [31:0] a;`` and ANSI ``input wire [31:0] a,`` headers.
    decl = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?"
                      r"(\\?[^\s;,]+)\s*[;,]?\s*$", re.M)
    for direction, msb, lsb, name in decl.findall(match.group(1)):
        width = abs(int(msb) - int(lsb)) + 1 if msb else 1
        ports.append(Port(name, direction, width))
    if not ports:
        raise ValueError(f"module {module!r} has no ports")
    return ports


def ecp5_pll(f_in: float, f_out: float) -> dict:
    """EHXPLLL dividers for ``f_out`` from ``f_in`` (Hz), feedback from CLKOP; the closest
    output the ECP5 PLL's ranges allow (input divider 1..128, phase detector 3.125..400 MHz,
    feedback divider 1..80, VCO 400..800 MHz, output divider 1..128), as ``ecppll`` finds it.

    Returns ``{"CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "f_out"}``; ``ValueError`` when none comes
    within 2 % of ``f_out``.
    """
    best = None
    for clki_div in range(1, 129):
        pfd = f_in / clki_div
        if not 3.125e6 <= pfd <= 400e6:
            continue
        for fb_div in range(1, 81):
            out = pfd * fb_div
            for op_div in range(1, 129):
                if not 400e6 <= out * op_div <= 800e6:
                    continue
                err = abs(out - f_out)
                if best is None or err < best[0]:
                    best = (err, {"CLKI_DIV": clki_div, "CLKFB_DIV": fb_div, "CLKOP_DIV": op_div,
                                  "f_out": out})
                break  # every output divider in range gives the same output frequency
    if best is None or best[0] > 0.02 * f_out:
        raise ValueError(f"no ECP5 PLL setting makes {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    return best[1]


class SerialHarness(Elaboratable):
    """Top level of a Lattice build: the board clock, ``gam_top`` and two serial pins.

    Parameters
    ----------
    ports : list of Port
        ``gam_top``'s ports (from :func:`verilog_ports`); ``clk`` is the board clock, ``rst``
        a power-on reset, all others go through the shift registers.
    serial_in, serial_out : tuple
        ``(resource, number[, subsignal])`` naming the two pins in the board's platform.
    pll_hz : float or None
        ECP5 only: clock everything from an EHXPLLL at this frequency (the closest the PLL
        makes, :attr:`clock_hz`) fed by the board oscillator (nextpnr derives the output clock's
        constraint from the PLL's dividers); ``gam_top`` stays in reset until the PLL locks.
        ``None``: the platform's own
        clock domain (the oscillator).
    """

    def __init__(self, ports: list[Port], serial_in: tuple, serial_out: tuple,
                 pll_hz: float | None = None):
        self.inputs = [p for p in ports if p.direction == "input" and p.name not in CLOCK_RESET]
        self.outputs = [p for p in ports if p.direction == "output"]
        if not self.inputs or not self.outputs:
            raise ValueError("gam_top needs at least one input and one output besides clk/rst")
        self.serial_in = serial_in
        self.serial_out = serial_out
        self.pll_hz = pll_hz
        self.clock_hz = None  # the PLL's output, known once elaborated on a platform

    @property
    def input_bits(self) -> int:
        return sum(p.width for p in self.inputs)

    @property
    def output_bits(self) -> int:
        return sum(p.width for p in self.outputs)

    def elaborate(self, platform):
        m = Module()
        requested = {}  # both pins may be subsignals of one resource (a UART's rx and tx)

        def pin(spec, direction):
            if spec[:2] not in requested:
                requested[spec[:2]] = platform.request(*spec[:2], dir="-")
            res = requested[spec[:2]]
            for sub in spec[2:]:
                res = getattr(res, sub)
            return io.Buffer(direction, res)

        locked = self._pll(m, platform) if self.pll_hz else C(1, 1)  # 1 bit: ~locked is 0
        m.submodules.sin = sin = pin(self.serial_in, "i")
        m.submodules.sout = sout = pin(self.serial_out, "o")

        shift_in = Signal(self.input_bits)
        m.d.sync += shift_in.eq(Cat(sin.i[0], shift_in[:-1]))

        outs = {p.name: Signal(p.width, name=f"out_{p.name}") for p in self.outputs}
        shift_out = Signal(self.output_bits)
        count = Signal(range(self.output_bits))
        with m.If(count == self.output_bits - 1):
            m.d.sync += [count.eq(0), shift_out.eq(Cat(*outs.values()))]
        with m.Else():
            m.d.sync += [count.eq(count + 1), shift_out.eq(shift_out >> 1)]
        m.d.comb += sout.o[0].eq(shift_out[0])

        # gam_top's reset: held for the first clocks after configuration. The platforms' own
        # sync domains are not all resettable (ECP5's is reset-less), so the harness counts up
        # from the all-zero state every FPGA family configures flip-flops to.
        # The reset leaves a flip-flop (two: LOCK is asynchronous to the clock): driven by
        # logic, it was the ECP5 denoiser's routed critical path (16.9 ns from the counter
        # through the lock gate to the far layers' reset inputs).
        por = Signal(4)
        with m.If(~por.all()):
            m.d.sync += por.eq(por + 1)
        rst_sync = Signal(2, init=0b11)
        m.d.sync += rst_sync.eq(Cat(~por.all() | ~locked, rst_sync[0]))

        kwargs = {"i_clk": ClockSignal(), "i_rst": rst_sync[1]}
        offset = 0
        for p in self.inputs:
            kwargs[f"i_{p.name}"] = shift_in[offset:offset + p.width]
            offset += p.width
        for p in self.outputs:
            kwargs[f"o_{p.name}"] = outs[p.name]
        m.submodules.gam = Instance("gam_top", **kwargs)
        return m

    def _pll(self, m, platform):
        """The ``sync`` domain from an EHXPLLL on the board oscillator; returns its LOCK."""
        osc = platform.request(platform.default_clk, dir="-")
        m.submodules.osc = osc_buf = io.Buffer("i", osc)
        f_in = platform.default_clk_frequency
        cfg = ecp5_pll(f_in, self.pll_hz)
        self.clock_hz = cfg["f_out"]
        clk, locked = Signal(), Signal()
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{self.clock_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=cfg["CLKI_DIV"], p_CLKFB_DIV=cfg["CLKFB_DIV"],
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=cfg["CLKOP_DIV"],
            p_CLKOP_CPHASE=cfg["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0,
            i_CLKI=osc_buf.i, i_CLKFB=clk, o_CLKOP=clk, o_LOCK=locked,
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0)
        return locked
