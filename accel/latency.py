"""The blocks' latencies in cycles, defined once: the blocks build exactly this many register
stages and :mod:`accel.perf` adds them up (``tests/hw/test_perf.py`` and
``tests/sim/test_top.py`` hold the sum to the simulated design, cycle for cycle within 2 %).
"""

__all__ = ["MVU_LATENCY", "STAGE_LATENCY", "SLICE_LATENCY"]

#: :class:`hw.folded_mvu.FoldedMVU`: a window's last step to its accumulators on ``o``
#: (issue, weight read, weight register, terms, adder trees, accumulate).
MVU_LATENCY = 5
#: :class:`hw.output_stages.LaneStage`: an accumulator group in to its result out (``pre``
#: then ``post``, one register each).
STAGE_LATENCY = 2
#: :class:`hw.stream_util.SkidBuffer`: one register slice (in front of every layer but the first, after the
#: PE array and, in front of an unfolded PE array only, after the window generator);
#: :class:`hw.stream_util.Gather`, each layer's output, is one too.
SLICE_LATENCY = 1
