"""Parameter storage: one memory per region of :mod:`accel.regmap`, initialized with the default
model and writable word by word from the register file.

Why memories and not constants: one bitstream must run every model of the same shape, so the
weights cannot be folded into the logic. A region with few deep entries (folded layers) maps to
block or distributed RAM; a fully unfolded layer's single wide entry becomes flip-flops.
Synthesis picks block RAM for a wide region however shallow; ``distributed`` asks for LUT RAM
instead, for designs whose block RAM runs out (:class:`hw.pipeline.Pipeline`'s ``lutram_depth``).
"""

from amaranth.hdl import Const, Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from accel import regmap

__all__ = ["ParamBus", "ParamMemory"]


class ParamBus(wiring.Signature):
    """One parameter word write: ``addr`` (a :mod:`accel.regmap` parameter address), ``data``, ``en``
    (one cycle per word). Driven by the register file, listened to by every memory."""

    def __init__(self):
        super().__init__({"addr": Out(32), "data": Out(32), "en": Out(1)})


class ParamMemory(wiring.Component):
    """One parameter region: ``entries`` rows of ``entry_bits`` bits.

    Writes: a bus word whose address lies in this region is stored in 32-bit lane ``word`` of
    row ``entry`` (write-port granularity 32, so no wide staging register is needed); ``hit`` is
    high in that cycle. Reads: ``sync`` ports return ``data`` for ``addr`` one cycle after a
    cycle with ``en`` high (block-RAM timing); ``comb`` ports return it at once (LUT RAM or
    registers, for the small per-channel constant regions).

    Parameters
    ----------
    region : regmap.Region
        The region's geometry.
    init : list of int
        Initial rows (:func:`accel.regmap.region_entries` of the default model).
    read_domain : str
        ``"sync"`` or ``"comb"``.
    distributed : bool
        Ask synthesis for LUT RAM (``ram_style = "distributed"``) instead of its own choice.

    Members
    -------
    bus : In(ParamBus())
    hit : Out(1)
    addr : In(range(entries))
    en : In(1) (sync ports only)
    data : Out(entry_bits)
    """

    def __init__(self, region: regmap.Region, init, read_domain: str = "sync", *,
                 distributed: bool = False):
        if read_domain not in ("sync", "comb"):
            raise ValueError(f"read_domain={read_domain!r} must be 'sync' or 'comb'")
        if len(init) != region.entries:
            raise ValueError(f"init has {len(init)} rows, region {region.name!r} has {region.entries}")
        self.region, self.read_domain, self.distributed = region, read_domain, distributed
        self._init = list(init)
        members = {"bus": In(ParamBus()), "hit": Out(1),
                   "addr": In(range(max(2, region.entries))),
                   "data": Out(region.entry_bits)}
        if read_domain == "sync":
            members["en"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        r = self.region
        width = r.words * 32
        attrs = {"ram_style": "distributed"} if self.distributed else None
        m.submodules.mem = mem = memory.Memory(shape=unsigned(width), depth=r.entries,
                                               init=self._init, attrs=attrs)
        wr = mem.write_port(granularity=32)
        # Not transparent: parameters are written while idle (docs/hw.md), so a read never
        # meets a write to its row; a transparent port took ~2k more LUT4 per binary layer.
        rd = mem.read_port(domain=self.read_domain)
        word_bits = (r.stride - 1).bit_length()
        offset = self.bus.addr[:regmap.REGION_SHIFT]
        entry = offset[word_bits:]
        word = offset[:word_bits] if word_bits else Const(0, 1)
        # Padding words of an entry's stride hit (so a region loads as one run) but store nothing.
        in_region = (self.bus.addr[regmap.REGION_SHIFT:] == r.index) & (entry < r.entries)
        m.d.comb += [
            self.hit.eq(self.bus.en & in_region),
            wr.addr.eq(entry),
            wr.data.eq(self.bus.data.replicate(r.words)),
            # One 32-bit lane of the row: a one-hot write enable.
            wr.en.eq((self.hit << word)[:r.words]),
            rd.addr.eq(self.addr),
            self.data.eq(rd.data[:r.entry_bits]),
        ]
        if self.read_domain == "sync":
            m.d.comb += rd.en.eq(self.en)
        return m

