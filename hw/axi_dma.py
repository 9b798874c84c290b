"""The open-flow design's DMA: an AXI3 master that reads frames from DDR into the accelerator
and writes its results back, in place of Xilinx's AXI DMA IP.

Registers (:data:`accel.regmap.DMA_REGISTERS`): source and destination physical addresses and
lengths in bytes, a control register (start read, start write, abort, clear errors) and a
status register (busy bits, sticky errors). A start copies the address and length into the
channel, so the host may write the next frame's while a channel runs. DDR layout: the packed
pixels of :func:`accel.regmap.pack_pixels`, ``stream_bytes`` per pixel (module doc of
:mod:`accel.regmap`).

Bus (the PS7's S_AXI_HP0 in 64-bit mode): INCR bursts of 8-byte beats, at most 16 beats (AXI3),
never across a 4 KiB boundary (AXI forbids it: the slave may map pages apart). The reader
issues a burst only when its FIFO has room for every beat in flight, so ``rready`` stays high
and a stalled accelerator never blocks the port; the writer issues a burst only when its FIFO
already holds all of the burst's beats (or the frame has ended), so ``wvalid`` never waits on
the accelerator. Beats are packed two 4-byte pixels per beat or split into ``stream_bytes / 8``
beats per pixel (both powers of two); a frame of an odd number of 4-byte pixels ends with a
half-used beat, read whole (the 8 bytes lie in the buffer's last bus word) and written with
the unused half's strobes low.

The writer ends a frame at the accelerator's TLAST: earlier than ``DMA_DST_BYTES`` sets
``DMA_ERR_SHORT`` (the burst under way is completed with strobes low, the rest is not issued);
pixels beyond the buffer are dropped until TLAST and set ``DMA_ERR_LONG``. An abort stops
issuing bursts, lets the bursts already issued complete (read data discarded, write beats with
no byte enabled, responses collected: the bus sees only whole, legal bursts), drains the
accelerator's output meanwhile, then clears both channels; the host then soft-resets the
accelerator (``CONTROL``) for the pixels still inside it.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from accel import regmap

from .top import AXI3Signature, AXIStreamSignature

__all__ = ["RegisterPortSignature", "AxiDma", "BEAT_BYTES", "MAX_BURST"]

BEAT_BYTES = regmap.DMA_BEAT_BYTES
#: AXI3's longest burst (4-bit ``len``).
MAX_BURST = 16
#: Beats of one 4 KiB page.
_PAGE_BEATS = 4096 // BEAT_BYTES
#: Read FIFO depth in beats: two bursts in flight hide the DDR latency.
_FIFO_BEATS = 2 * MAX_BURST
#: AXI ``cache``: normal non-cacheable bufferable (what Xilinx's DMA uses on HP ports).
_CACHE = 0b0011
_INCR = 0b01
_SIZE = BEAT_BYTES.bit_length() - 1


class RegisterPortSignature(wiring.Signature):
    """A plain register port, the bus side's view: ``addr`` (word index), ``wdata`` and a
    one-cycle ``we``; ``rdata`` is the word at ``addr`` in the same cycle."""

    def __init__(self, addr_bits: int):
        super().__init__({"addr": Out(addr_bits), "wdata": Out(32), "we": Out(1),
                          "rdata": In(32)})


def _burst_beats(m, addr, beats_left):
    """Beats of the next burst from byte address ``addr`` (beat-aligned) with ``beats_left`` to
    go: at most :data:`MAX_BURST` and never past the next 4 KiB boundary. Registered (off the
    issue path): it follows ``addr``/``beats_left`` one cycle late, so a channel issues only
    once they have stood still for a cycle (``_settled``)."""
    to_page = Signal(range(_PAGE_BEATS + 1))
    n = Signal(range(MAX_BURST + 1))
    m.d.comb += to_page.eq(_PAGE_BEATS - addr[_SIZE:12])
    m.d.sync += n.eq(MAX_BURST)
    with m.If((beats_left < MAX_BURST) & (beats_left <= to_page)):
        m.d.sync += n.eq(beats_left)
    with m.Elif(to_page < MAX_BURST):
        m.d.sync += n.eq(to_page)
    return n


def _settled(m, *changes):
    """High from the second cycle after the last of ``changes`` (conditions under which a
    channel's address and beat count change)."""
    settled = Signal()
    m.d.sync += settled.eq(1)
    for change in changes:
        with m.If(change):
            m.d.sync += settled.eq(0)
    return settled


class AxiDma(wiring.Component):
    """Reader (DDR -> ``m_axis``) and writer (``s_axis`` -> DDR) on one AXI3 master.

    Parameters
    ----------
    in_bytes, out_bytes : int
        ``stream_bytes`` of the accelerator's input and output pixels (powers of two >= 4).

    Members
    -------
    m_axi : Out(AXI3Signature(data_bits=64, id_bits=6))
    m_axis : Out(AXIStreamSignature(8 * in_bytes))
        To the accelerator's ``s_axis``; TLAST on the frame's last pixel.
    s_axis : In(AXIStreamSignature(8 * out_bytes))
        From the accelerator's ``m_axis``.
    regs : In(RegisterPortSignature(3))
        :data:`accel.regmap.DMA_REGISTERS` by word index from ``DMA_BASE``.
    """

    def __init__(self, in_bytes: int, out_bytes: int):
        for b in (in_bytes, out_bytes):
            if b < 4 or b & (b - 1):
                raise ValueError(f"stream bytes {b} must be a power of two >= 4")
        self.in_bytes, self.out_bytes = in_bytes, out_bytes
        super().__init__({
            "m_axi": Out(AXI3Signature(data_bits=8 * BEAT_BYTES, id_bits=6)),
            "m_axis": Out(AXIStreamSignature(8 * in_bytes)),
            "s_axis": In(AXIStreamSignature(8 * out_bytes)),
            "regs": In(RegisterPortSignature(3)),
        })

    def elaborate(self, platform):
        m = Module()
        s = _State()
        bus = self.m_axi
        for a in ("ar", "aw"):
            m.d.comb += [getattr(bus, f"{a}size").eq(_SIZE), getattr(bus, f"{a}burst").eq(_INCR),
                         getattr(bus, f"{a}cache").eq(_CACHE)]
        # FIFOs (distributed RAM: 32 beats) cleared when an abort has drained the bus.
        m.submodules.rfifo = rfifo = ResetInserter(s.clear)(
            fifo.SyncFIFO(width=8 * BEAT_BYTES, depth=_FIFO_BEATS))
        m.submodules.wfifo = wfifo = ResetInserter(s.clear)(
            fifo.SyncFIFO(width=9 * BEAT_BYTES, depth=_FIFO_BEATS))
        self._registers(m, s)
        self._reader(m, s, rfifo)
        self._unpack(m, s, rfifo)
        self._pack(m, s, wfifo)
        self._writer(m, s, wfifo)
        self._abort(m, s)
        return m

    # ------------------------------------------------------------------ registers
    def _registers(self, m, s):
        """The register file; a start checks its arguments and loads the channel."""
        p = self.regs
        words = {name: (addr - regmap.DMA_BASE) >> 2 for name, addr in regmap.DMA_REG.items()}
        status = Cat(s.r_busy, s.w_busy, s.err_read, s.err_write, s.err_start, s.err_short,
                     s.err_long)
        with m.Switch(p.addr):
            for name, value in (("DMA_SRC", s.src), ("DMA_SRC_BYTES", s.src_bytes),
                                ("DMA_DST", s.dst), ("DMA_DST_BYTES", s.dst_bytes),
                                ("DMA_STATUS", status)):
                with m.Case(words[name]):
                    m.d.comb += p.rdata.eq(value)
        m.d.sync += s.start_abort.eq(0)
        with m.If(p.we):
            with m.Switch(p.addr):
                for name in ("DMA_SRC", "DMA_SRC_BYTES", "DMA_DST", "DMA_DST_BYTES"):
                    with m.Case(words[name]):
                        m.d.sync += getattr(s, name[4:].lower()).eq(p.wdata)
                with m.Case(words["DMA_CONTROL"]):
                    self._control(m, s, p.wdata)

    def _control(self, m, s, value):
        if_bits = lambda bit: value & bit != 0  # noqa: E731
        with m.If(if_bits(regmap.DMA_CLEAR_ERRORS)):
            m.d.sync += [s.err_read.eq(0), s.err_write.eq(0), s.err_start.eq(0),
                         s.err_short.eq(0), s.err_long.eq(0)]
        for bit, busy, addr, nbytes, unit, start in (
                (regmap.DMA_START_READ, s.r_busy, s.src, s.src_bytes, self.in_bytes,
                 self._start_read),
                (regmap.DMA_START_WRITE, s.w_busy, s.dst, s.dst_bytes, self.out_bytes,
                 self._start_write)):
            with m.If(if_bits(bit)):
                bad = (busy | s.aborting | (addr[:_SIZE] != 0) | (nbytes == 0)
                       | (nbytes[:unit.bit_length() - 1] != 0))
                with m.If(bad):
                    m.d.sync += s.err_start.eq(1)
                with m.Else():
                    start(m, s)
        with m.If(if_bits(regmap.DMA_ABORT)):
            m.d.sync += s.start_abort.eq(1)

    def _start_read(self, m, s):
        pixels = s.src_bytes >> (self.in_bytes.bit_length() - 1)
        m.d.comb += s.r_start.eq(1)
        m.d.sync += [s.r_busy.eq(1), s.r_addr.eq(s.src),
                     s.r_beats.eq((s.src_bytes + BEAT_BYTES - 1) >> _SIZE),
                     s.r_pixels.eq(pixels), s.r_last.eq(pixels == 1)]

    def _start_write(self, m, s):
        pixels = s.dst_bytes >> (self.out_bytes.bit_length() - 1)
        m.d.comb += s.w_start.eq(1)
        m.d.sync += [s.w_busy.eq(1), s.w_addr.eq(s.dst), s.ended.eq(0),
                     s.w_beats.eq((s.dst_bytes + BEAT_BYTES - 1) >> _SIZE),
                     s.w_room.eq(pixels), s.w_full.eq(0), s.w_one.eq(pixels == 1)]

    # ------------------------------------------------------------------ MM2S
    def _reader(self, m, s, rfifo):
        """AR bursts while the FIFO has room for every beat in flight; R beats into the FIFO
        (discarded while aborting)."""
        bus = self.m_axi
        n = _burst_beats(m, s.r_addr, s.r_beats)
        issue = Signal()
        settled = _settled(m, s.r_start, issue)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += bus.arvalid.eq(0)
        with m.Elif(s.r_busy & ~s.aborting & (s.r_beats != 0) & ~bus.arvalid & settled
                    & (n <= s.r_room)):
            m.d.comb += issue.eq(1)
            m.d.sync += [bus.arvalid.eq(1), bus.araddr.eq(s.r_addr), bus.arlen.eq(n - 1),
                         s.r_addr.eq(s.r_addr + (n << _SIZE)), s.r_beats.eq(s.r_beats - n)]
        got = bus.rvalid & bus.rready
        m.d.comb += [bus.rready.eq(1), rfifo.w_data.eq(bus.rdata),
                     rfifo.w_en.eq(got & ~s.aborting)]
        asked = Mux(issue, n, 0)
        m.d.sync += s.r_flight.eq(s.r_flight + asked - got)
        # r_room: FIFO places neither filled nor promised to a burst in flight.
        m.d.sync += s.r_room.eq(s.r_room - asked + rfifo.r_en + (got & s.aborting))
        with m.If(got & (bus.rresp != 0)):
            m.d.sync += s.err_read.eq(1)

    def _unpack(self, m, s, rfifo):
        """FIFO beats -> pixels on ``m_axis`` (several per beat, or several beats per pixel);
        TLAST on the last pixel, the rest of its beat dropped."""
        out, bits = self.m_axis, 8 * self.in_bytes
        last = s.r_last
        fire = out.tvalid & out.tready
        m.d.comb += out.tlast.eq(last)
        with m.If(fire):
            m.d.sync += [s.r_pixels.eq(s.r_pixels - 1), s.r_last.eq(s.r_pixels == 2)]
            with m.If(last):
                m.d.sync += s.r_busy.eq(0)
        if self.in_bytes <= BEAT_BYTES:
            k = BEAT_BYTES // self.in_bytes
            lane = Signal(range(k))
            pop = (lane == k - 1) | last
            m.d.comb += [out.tdata.eq(rfifo.r_data.word_select(lane, bits)),
                         out.tvalid.eq(rfifo.r_rdy & s.r_busy & ~s.aborting)]
            with m.If(fire):
                m.d.comb += rfifo.r_en.eq(pop)
                m.d.sync += lane.eq(Mux(pop, 0, lane + 1))
            s.positions.append(lane)
        else:
            k = self.in_bytes // BEAT_BYTES
            have = Signal(range(k + 1))  # beats of the pixel in ``tdata``
            take = rfifo.r_rdy & ((have != k) | fire)
            m.d.comb += [out.tvalid.eq((have == k) & ~s.aborting), rfifo.r_en.eq(take)]
            with m.If(take):
                at = Mux(have == k, 0, have)
                m.d.sync += [out.tdata.word_select(at, 8 * BEAT_BYTES).eq(rfifo.r_data),
                             have.eq(at + 1)]
            with m.Elif(fire):
                m.d.sync += have.eq(0)
            s.positions.append(have)

    # ------------------------------------------------------------------ S2MM
    def _pack(self, m, s, wfifo):
        """Pixels from ``s_axis`` -> FIFO beats (data, strobes). TLAST ends the frame; pixels
        beyond the buffer are dropped; everything is drained while aborting."""
        inp, bits, beat = self.s_axis, 8 * self.out_bytes, 8 * BEAT_BYTES
        fire = inp.tvalid & inp.tready
        counted = fire & ~s.aborting
        drop = s.w_full
        keep = counted & ~drop
        accept = s.w_busy & ~s.ended
        with m.If(counted & drop):
            m.d.sync += s.err_long.eq(1)
        with m.If(keep):
            m.d.sync += [s.w_room.eq(s.w_room - 1), s.w_full.eq(s.w_one),
                         s.w_one.eq(s.w_room == 2)]
        with m.If(counted & inp.tlast & ~s.w_full & ~s.w_one):
            m.d.sync += s.err_short.eq(1)
        ended = counted & drop & inp.tlast  # a dropped pixel's TLAST
        if self.out_bytes <= BEAT_BYTES:
            k = BEAT_BYTES // self.out_bytes
            lane = Signal(range(k))
            acc = Signal(beat)
            data = [Mux(lane == j, inp.tdata, acc.word_select(j, bits)) for j in range(k)]
            # A beat always fills from lane 0: lanes up to ``lane`` hold pixels.
            strobes = [(lane >= j).replicate(self.out_bytes) for j in range(k)]
            push = (lane == k - 1) | inp.tlast | s.w_one
            m.d.comb += [inp.tready.eq(s.aborting | (accept & (drop | wfifo.w_rdy))),
                         wfifo.w_data.eq(Cat(*data, *strobes))]
            with m.If(keep):
                m.d.sync += acc.word_select(lane, bits).eq(inp.tdata)
                m.d.sync += lane.eq(Mux(push, 0, lane + 1))
                m.d.comb += wfifo.w_en.eq(push)
            ended |= keep & inp.tlast
            s.positions.append(lane)
        else:
            k = self.out_bytes // BEAT_BYTES
            pix = Signal(bits)
            pix_last = Signal()
            left = Signal(range(k + 1))  # beats of ``pix`` still to push
            push = (left != 0) & wfifo.w_rdy
            part = Signal(range(k))
            m.d.comb += part.eq(k - left)
            m.d.comb += [wfifo.w_data.eq(Cat(pix.word_select(part, beat),
                                             Const((1 << BEAT_BYTES) - 1, BEAT_BYTES))),
                         wfifo.w_en.eq(push),
                         # The next pixel may come with the held one's last beat, unless the
                         # held one ends the frame (the next belongs to the next write).
                         inp.tready.eq(s.aborting
                                       | (accept & ((left == 0)
                                                    | (push & (left == 1) & ~pix_last))))]
            with m.If(push):
                m.d.sync += left.eq(left - 1)
            with m.If(keep):
                m.d.sync += [pix.eq(inp.tdata), left.eq(k), pix_last.eq(inp.tlast)]
            ended |= push & (left == 1) & pix_last
            s.positions.append(left)
        # The frame has ended once its last pixel's beats are all in the FIFO.
        with m.If(ended):
            m.d.sync += s.ended.eq(1)

    def _writer(self, m, s, wfifo):
        """AW + W bursts of beats already in the FIFO; padding beats (no strobe) finish a
        burst when the frame ended short or an abort came; B responses counted."""
        bus = self.m_axi
        n = _burst_beats(m, s.w_addr, s.w_beats)
        issue = Signal()
        settled = _settled(m, s.w_start, issue)
        with m.If(~s.bursting & s.w_busy & ~s.aborting & settled):
            with m.If((s.w_beats != 0)
                      & ((wfifo.level >= n) | (s.ended & (wfifo.level != 0)))):
                m.d.comb += issue.eq(1)
                m.d.sync += [s.bursting.eq(1), bus.awvalid.eq(1), bus.awaddr.eq(s.w_addr),
                             bus.awlen.eq(n - 1), s.w_left.eq(n),
                             s.w_addr.eq(s.w_addr + (n << _SIZE)), s.w_beats.eq(s.w_beats - n)]
            with m.Elif(s.ended & (wfifo.level == 0)):
                m.d.sync += s.w_beats.eq(0)  # the frame ended short: no more bursts
        # A burst starts only with all its beats in the FIFO, unless the frame has ended.
        pad = s.aborting | (s.ended & ~wfifo.r_rdy)
        m.d.comb += [bus.wvalid.eq(s.bursting & (s.w_left != 0) & (wfifo.r_rdy | pad)),
                     bus.wdata.eq(Mux(pad, 0, wfifo.r_data[:8 * BEAT_BYTES])),
                     bus.wstrb.eq(Mux(pad, 0, wfifo.r_data[8 * BEAT_BYTES:])),
                     bus.wlast.eq(s.w_left == 1)]
        wfire = bus.wvalid & bus.wready
        m.d.comb += wfifo.r_en.eq(wfire & ~pad)
        with m.If(wfire):
            m.d.sync += s.w_left.eq(s.w_left - 1)
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += bus.awvalid.eq(0)
        aw_done = ~bus.awvalid | bus.awready
        w_done = (s.w_left == 0) | (wfire & (s.w_left == 1))
        with m.If(s.bursting & aw_done & w_done):
            m.d.sync += s.bursting.eq(0)
        # b_flight: bursts accepted whose response has not come.
        m.d.comb += bus.bready.eq(1)
        bgot = bus.bvalid & bus.bready
        m.d.sync += s.b_flight.eq(s.b_flight + (bus.awvalid & bus.awready) - bgot)
        with m.If(bgot & (bus.bresp != 0)):
            m.d.sync += s.err_write.eq(1)
        with m.If(s.w_busy & s.ended & ~s.bursting & (s.w_beats == 0) & (s.b_flight == 0)
                  & ~s.aborting):
            m.d.sync += s.w_busy.eq(0)

    # ------------------------------------------------------------------ abort
    def _abort(self, m, s):
        """Abort: no new bursts; once every issued burst has completed, clear both channels."""
        bus = self.m_axi
        with m.If(s.start_abort & (s.r_busy | s.w_busy)):
            m.d.sync += s.aborting.eq(1)
        with m.If(s.aborting):
            m.d.sync += s.w_beats.eq(0)
        quiet = (~bus.arvalid & (s.r_flight == 0) & ~s.bursting & ~bus.awvalid
                 & (s.b_flight == 0))
        m.d.comb += s.clear.eq(s.aborting & quiet)
        with m.If(s.clear):
            m.d.sync += ([s.aborting.eq(0), s.r_busy.eq(0), s.w_busy.eq(0), s.r_beats.eq(0),
                          s.r_room.eq(_FIFO_BEATS),
                         s.ended.eq(0)] + [v.eq(0) for v in s.positions])


class _State:
    """The DMA's registers and channel state."""

    def __init__(self):
        self.src, self.src_bytes, self.dst, self.dst_bytes = (Signal(32, name=n) for n in (
            "src", "src_bytes", "dst", "dst_bytes"))
        self.err_read, self.err_write, self.err_start = Signal(), Signal(), Signal()
        self.err_short, self.err_long = Signal(), Signal()
        self.start_abort = Signal()
        self.aborting = Signal()
        self.clear = Signal()
        # reader
        self.r_busy = Signal()
        self.r_addr = Signal(32)
        self.r_beats = Signal(30)  # beats not yet asked for
        self.r_pixels = Signal(32)  # pixels not yet sent
        self.r_last = Signal()  # the next pixel is the frame's last
        self.r_start = Signal()
        self.r_flight = Signal(range(_FIFO_BEATS + 1))
        self.r_room = Signal(range(_FIFO_BEATS + 1), init=_FIFO_BEATS)
        # writer
        self.w_busy = Signal()
        self.w_addr = Signal(32)
        self.w_beats = Signal(30)  # beats of the buffer not yet in a burst
        self.w_room = Signal(32)  # pixels the buffer still takes
        self.w_full = Signal()  # w_room == 0
        self.w_one = Signal()  # w_room == 1
        self.w_start = Signal()
        self.ended = Signal()  # the frame's last pixel is in the FIFO
        self.bursting = Signal()
        self.w_left = Signal(range(MAX_BURST + 1))  # W beats of the current burst to go
        self.b_flight = Signal(16)
        self.positions: list = []  # packing positions, cleared by an abort
