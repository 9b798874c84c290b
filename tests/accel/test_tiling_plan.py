"""The tiling plan: equal tiles whose cores partition the axis, each interior edge with a full
halo (``tests/host/test_tiling.py`` holds tiled restores to whole-frame ones)."""

import pytest

from accel.tiling import TilingError, plan_1d


@pytest.mark.parametrize("size,limit,halo", [(10, None, 2), (10, 10, 2), (11, 10, 2),
                                             (37, 7, 3), (100, 9, 4), (5, 3, 1), (64, 16, 0),
                                             (320, 227, 10), (640, 227, 10), (33, 16, 0)])
def test_plan_1d_partitions_the_axis(size, limit, halo):
    wins = plan_1d(size, limit, halo)
    assert wins[0][2] == 0 and wins[-1][3] == size
    length = wins[0][1] - wins[0][0]
    assert length <= (limit or size)
    if len(wins) > 1:  # one tile fewer would not cover the axis, nor would shorter tiles
        assert (len(wins) - 1) * limit - 2 * (len(wins) - 2) * halo < size
        assert len(wins) * (length - 1) - 2 * (len(wins) - 1) * halo < size
    for (a, b, lo, hi), nxt in zip(wins, wins[1:] + [None]):
        assert b - a == length  # every tile the same size
        assert 0 <= a <= lo < hi <= b <= size
        assert lo == 0 or lo - a >= halo  # interior edges keep a full halo
        assert hi == size or b - hi >= halo
        if nxt is not None:
            assert nxt[2] == hi  # cores partition the axis


def test_plan_1d_rejects_a_width_smaller_than_the_halo():
    with pytest.raises(TilingError, match=r"maximum of 6 pixels leaves no room .* halo of 3"):
        plan_1d(20, 6, 3)
