"""The boards gamir builds for, with the resources of their FPGAs.

One table, read by :mod:`hw.build` (which flow a board takes: ``ecp5``/``ice40`` through Yosys +
nextpnr, ``xc7`` through Yosys + nextpnr-himbaechel-xilinx or a Yosys utilization estimate and a
generated Vivado project; which amaranth platform describes its pins; the clock nextpnr is asked
to meet; which two pins carry the measurement harness's serial in/out, see :mod:`hw.harness`)
and by :mod:`training.search` (what the device holds, for the shapes that fit it). Resource
counts are the vendors' data sheet figures; for the Lattice parts the build also reads
nextpnr's own "available" counts into its report, and a test checks they agree with this table.

Plain data (no Amaranth), so the contract package holds it: training and ``python -m hw.build
--help`` read it without loading the HDL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Board", "BOARDS", "RESOURCES", "DSP_SHARE", "get_board", "BoardError"]

#: The resource classes every report lists, in this order. BRAM is counted in the device's own
#: block (ECP5 EBR = 18 Kbit DP16KD, iCE40 EBR = 4 Kbit SB_RAM40_4K, Xilinx 7 = 36 Kbit RAMB36,
#: two RAMB18 counting as one); DSP in its multiplier block (MULT18X18D, SB_MAC16, DSP48E1).
RESOURCES = ("LUT", "FF", "BRAM", "DSP")
#: Share of the device's multiplier blocks a build gives the accelerator by default
#: (:attr:`Board.dsp_budget`); the margin is for multiplications elsewhere in the design that
#: synthesis also maps to them.
DSP_SHARE = 0.9


class BoardError(ValueError):
    """An unknown board name; the message lists the known ones."""


@dataclass(frozen=True)
class Board:
    """One build target.

    Parameters
    ----------
    name : str
        The ``--board`` value.
    family : str
        ``"ecp5"``, ``"ice40"`` (open place and route here) or ``"xc7"`` (open place and route,
        or estimate + Vivado: ``hw.build --flow``).
    device : str
        Part name as the vendor writes it.
    resources : dict
        Available ``LUT`` (LUT4 for Lattice, LUT6 for Xilinx), ``FF``, ``BRAM``, ``DSP``.
    bram_bits : int
        Bits in one BRAM unit of ``resources["BRAM"]``.
    platform : str
        ``module:Class`` of the amaranth platform (the Lattice flows; the Zynq's open flow builds
        :mod:`hw.zynq_top`, which has no pins of its own).
    clock_hz : float
        Clock frequency nextpnr is asked to meet (timing-driven placement aims at it; the
        reported Fmax is what it reached). For ``xc7``: the PYNQ FCLK the Vivado project uses.
    serial_in, serial_out : tuple
        ``(resource, number[, subsignal])`` of the harness's two pins (the Lattice flows).
    """

    name: str
    family: str
    device: str
    resources: dict = field(default_factory=dict)
    bram_bits: int = 0
    platform: str | None = None
    clock_hz: float = 100e6
    serial_in: tuple = ()
    serial_out: tuple = ()
    note: str = ""

    @property
    def lut_inputs(self) -> int:
        """Inputs of the family's LUT (4 on Lattice, 6 on Xilinx 7): the generator shapes the
        binary PE array's first logic level to it (:class:`hw.xnor_engine.XnorEngine`)."""
        return 6 if self.family == "xc7" else 4

    @property
    def dsp_budget(self) -> int:
        """Hard multipliers a build lets the accelerator use by default (``hw.build --dsp``)."""
        return int(DSP_SHARE * self.resources["DSP"])


# Resource figures: Lattice FPGA-DS-02012 (ECP5 family: LFE5U-85F 83,640 LUT4, 208 EBR,
# 156 18x18 multipliers), FPGA-DS-02008 (iCE40 UltraPlus: UP5K 5,280 LUT4, 30 EBR of 4 Kbit,
# 8 DSP, plus 4 SPRAM of 256 Kbit that gamir does not use), Xilinx DS190 (XC7Z020: 53,200 LUT,
# 106,400 FF, 140 BRAM36, 220 DSP48E1).
_ECP5_85F = {"LUT": 83640, "FF": 83640, "BRAM": 208, "DSP": 156}

BOARDS: dict[str, Board] = {
    b.name: b
    for b in [
        Board(
            "ulx3s-85f", "ecp5", "LFE5U-85F-6BG381C", _ECP5_85F, 18432,
            "amaranth_boards.ulx3s:ULX3S_85F_Platform", 100e6,
            ("uart", 0, "rx"), ("uart", 0, "tx"),
            note="Radiona ULX3S with the 85k-LUT ECP5 (speed grade 6)",
        ),
        Board(
            "orangecrab-85f", "ecp5", "LFE5U-85F-8MG285C", _ECP5_85F, 18432,
            "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", 100e6,
            ("button", 0), ("rgb_led", 0, "r"),
            note="OrangeCrab r0.2 with the 85k-LUT ECP5 (speed grade 8)",
        ),
        Board(
            "icebreaker", "ice40", "iCE40UP5K-SG48",
            {"LUT": 5280, "FF": 5280, "BRAM": 30, "DSP": 8}, 4096,
            "amaranth_boards.icebreaker:ICEBreakerPlatform", 24e6,
            ("uart", 0, "rx"), ("uart", 0, "tx"),
            note="1BitSquared iCEBreaker, iCE40 UltraPlus 5K: small models only",
        ),
        Board(
            "pynq-z2", "xc7", "XC7Z020-1CLG400C",
            {"LUT": 53200, "FF": 106400, "BRAM": 140, "DSP": 220}, 36864, None, 100e6,
            note="TUL PYNQ-Z2 (Zynq-7020): open flow (nextpnr-himbaechel-xilinx) or Vivado",
        ),
    ]
}


def get_board(name: str) -> Board:
    """The board called ``name``, or :class:`BoardError` listing the known boards."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(
            f"unknown board {name!r}; known boards: {', '.join(BOARDS)}"
        ) from None
