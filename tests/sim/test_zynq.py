"""The open-flow fabric (``hw.zynq_top.ZynqCore``: accelerator + its own DMA + the GP0 register
port) in Verilator, frames through an AXI3 memory, bit-exact against the spec.

Two random model shapes cover the DMA's packings: 4-byte pixels (two per 64-bit beat, a
half-used last beat on odd frames) and 16-byte pixels (two beats each). The memory stalls
every channel at random and fails the run on any broken AXI rule (4 KiB crossings, WLAST,
IDs, held valids, reads or writes outside the frame buffers); buffers start a few beats before
a page boundary, and the tests require bursts to have been split there.
"""

import numpy as np
import pytest

import spec
from accel import regmap
from sim.runner import SimFailure
from sim.zynq import ZynqSim
from spec.random_model import random_same_shape

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)

MAX_WIDTH = 16

DESIGNS = {
    # name: random_model arguments (stream bytes in/out)
    "4-byte": dict(seed=31, channels=3, n_binary=2, image_channels=1, unshuffle=1,
                   noise_channel=True, kernels=(1, 3)),  # 2 -> 1 channels: 4 / 4 bytes
    "16-byte": dict(seed=33, channels=2, n_binary=1, image_channels=3, unshuffle=2,
                    noise_channel=True),  # 13 -> 12 channels: 16 / 16 bytes
}


@pytest.fixture(scope="module", params=sorted(DESIGNS))
def design(request):
    return ZynqSim(spec.random_model(**DESIGNS[request.param]), max_width=MAX_WIDTH)


def frame(sim, seed, h, w):
    return spec.random_image(seed, h, w, sim.model.input_channels)


def test_frames_back_to_back_through_ddr(design):
    """Edge sizes (1x1, odd pixel counts, full width), three frames each back to back, the
    memory stalling every channel; bursts split at 4 KiB boundaries on both channels."""
    sizes = [(1, 1), (3, 5), (5, MAX_WIDTH), (2, 7)]
    sc = design.scenario(seed=1)
    for k, (h, w) in enumerate(sizes):
        sc.frames([frame(design, 10 * k + j, h, w) for j in range(3)], stall=0.3)
    res = sc.run()
    assert res["mismatched_pixels"] == 0
    assert res["pixels_checked"] == sum(3 * h * w for h, w in sizes)
    assert res["page_splits"]["ar"] > 0 and res["page_splits"]["aw"] > 0, res["page_splits"]


def test_registers_reload_and_bursts(design):
    """Another model of the same shape loaded through GP0, its frames right; ID and SHAPE read
    in one GP0 burst; the DMA's address registers read back."""
    m = design.model
    other = random_same_shape(m, 3)
    x = frame(design, 40, 4, 6)
    assert not np.array_equal(spec.run_tensor(m, x), spec.run_tensor(other, x))
    sc = design.scenario(seed=2)
    sc.burst(regmap.REG["ID"], [regmap.ID_VALUE, regmap.shape_id(m)])
    sc.load(other).frames([x, frame(design, 41, 4, 6)], stall=0.2)
    sc.load(m).frames([x])
    sc.regs(FRAMES=3)
    sc.run()


def test_abort_mid_frame_then_correct_frames(design):
    """A DMA abort in the middle of a frame (early, later, with stalls) completes the bursts
    under way and leaves nothing behind: after the accelerator's soft reset the next frames,
    of another size, are right."""
    big = frame(design, 50, 6, MAX_WIDTH)
    sc = design.scenario(seed=3)
    sc.abort(big, beats=1)
    sc.frames([frame(design, 51, 3, 5)], stall=0.2)
    sc.abort(big, beats=40, stall=0.3)
    sc.frames([big, frame(design, 52, 6, MAX_WIDTH)], stall=0.3)
    sc.run()


@pytest.fixture(scope="module")
def small():
    """The 4-byte design again (the same Verilog: its build is shared)."""
    return ZynqSim(spec.random_model(**DESIGNS["4-byte"]), max_width=MAX_WIDTH)


def test_memory_model_catches_boundary_crossings(small):
    """The memory's 4 KiB check fires: policing 64-byte boundaries instead, the DMA's 16-beat
    bursts (128 bytes) cross them and the run fails with the burst named (one design only: a
    failing run is repeated on a traced build for its waveform)."""
    sc = small.scenario(seed=4).frames([frame(small, 60, 5, MAX_WIDTH)])
    with pytest.raises(SimFailure, match=r"burst at 0x[0-9a-f]+ \(\d+ beats\) crosses a "
                                         r"64-byte boundary"):
        sc.run(memory_page=64)
