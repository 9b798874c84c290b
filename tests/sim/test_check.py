"""``python -m sim.check``: bit-exact runs exit 0 with the numbers, a mismatch exits 1 naming
the first bad pixel, bad inputs exit 2 with one message."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

import spec
from sim import check
from tests.sim.test_top import DESIGNS

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The "small" design's model (its build is shared with test_top) and a folder with a PNG
    and a one-row .npy image."""
    d = tmp_path_factory.mktemp("check")
    model = spec.random_model(**DESIGNS["small"][0])
    spec.save(model, d / "m.gamir")
    (d / "imgs").mkdir()
    iio.imwrite(d / "imgs" / "a.png", spec.random_image(1, 5, 9, 1)[:, :, 0])
    np.save(d / "imgs" / "b.npy", spec.random_image(2, 1, 16, 1))
    return d


def test_bit_exact(files, capsys):
    rc = check.main(["--model", str(files / "m.gamir"), str(files / "imgs"), "--frames", "2",
                     "--quick-build", "--fold", "full",
                     "--json", str(files / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "pixels checked: 122" in out and "mismatches: 0 pixels" in out
    assert "bit-exact" in out and "cycles/s" in out
    report = json.loads((files / "r.json").read_text())
    assert report["bit_exact"] and len(report["frames"]) == 4
    assert all(f["cycles"] == f["predicted_cycles"] for f in report["frames"])


def test_mismatch_exits_1(files, capsys, monkeypatch):
    """A spec that disagrees with the hardware (one channel off by one) must be reported."""
    real = spec.run_tensor

    def off_by_one(model, x):
        y = real(model, x).copy()
        y[-1, -1, 0] ^= 1
        return y

    monkeypatch.setattr(spec, "run_tensor", off_by_one)
    rc = check.main(["--model", str(files / "m.gamir"), str(files / "imgs" / "a.png"),
                     "--quick-build", "--fold", "full"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "mismatches: 1 pixels" in out and "first mismatch at x=8, y=4, channel 0" in out
    assert "NOT bit-exact" in out


@pytest.mark.parametrize("args,message", [
    (["nowhere.png"], "no such file or folder"),
    (["imgs", "--fold", "[1]"], "fold has 1 entries"),
])
def test_usage_errors(files, capsys, args, message):
    args = [str(files / args[0])] + args[1:]
    assert check.main(["--model", str(files / "m.gamir"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
