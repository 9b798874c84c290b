"""The wheel carries what the base install runs: PyAV, the models, the ``gamir`` command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # minutes: left out of the fast loop (README: the fast loop)

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["gamir", "spec", "accel", "hw", "host", "sim", "training"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built from a copy of the tree (the build leaves build/ and egg-info behind)."""
    src = tmp_path_factory.mktemp("src")
    for name in ["pyproject.toml", "setup.py", "README.md", "LICENSE"]:
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES + ["models", "tests"]:
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    pytest.importorskip("setuptools", minversion="77")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (path,) = out.glob("gamir-*.whl")
    return zipfile.ZipFile(path)


def _dist_info(wheel, name: str) -> str:
    (entry,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(entry).decode()


def test_base_install_runs_host_run(wheel):
    requires = [ln.split(":", 1)[1].strip() for ln in _dist_info(wheel, "METADATA").splitlines()
                if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    assert sorted(r.split(">")[0].split("=")[0] for r in requires) == ["av", "numpy"]


def test_sim_registers_the_verilator_backend(wheel):
    """host.run finds the Verilator backend through the entry point, never by importing sim."""
    text = _dist_info(wheel, "entry_points.txt")
    assert "[gamir.backends]\nverilator = sim.verilator_backend:VerilatorBackend" in text


def test_the_wheel_carries_no_tests(wheel):
    """The tests stay in the checkout: ``tests`` is no package of the wheel, and ``sim`` ships
    without the tests of it (tests/sim, which ``pytest sim/`` runs)."""
    modules = [n for n in wheel.namelist() if n.endswith(".py")]
    assert "sim/runner.py" in modules
    assert [n for n in modules if n.startswith("tests/") or Path(n).name.startswith("test_")] == []


def test_models_are_package_data(wheel):
    shipped = sorted(p.name for p in (ROOT / "models").glob("*.gamir"))
    assert shipped
    for name in shipped:
        assert wheel.read(f"gamir/models/{name}") == (ROOT / "models" / name).read_bytes()


def test_console_command_and_license(wheel):
    assert "gamir = gamir.__main__:main" in _dist_info(wheel, "entry_points.txt")
    meta = _dist_info(wheel, "METADATA")
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    assert "MIT License" in _dist_info(wheel, "licenses/LICENSE")


def test_models_dir_finds_the_shipped_models():
    from gamir import models_dir

    assert (models_dir() / "denoise.gamir").is_file()


def _base(wheel, tmp_path, *argv):
    """``python argv`` in the base install (tests/data/base_install): (status, stderr lines)."""
    requires = [ln.split(":", 1)[1].strip() for ln in _dist_info(wheel, "METADATA").splitlines()
                if ln.startswith("Requires-Dist:") and "extra ==" not in ln]
    modules = ",".join(r.split(">")[0].split("=")[0].strip() for r in requires)
    env = {**os.environ, "GAMIR_BASE_MODULES": modules,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "data" / "base_install"), str(ROOT)])}
    r = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    return r.returncode, r.stderr.splitlines()


EXTRA = (r'which is not installed here \(pip install "gamir\[dev\]": the base install has numpy '
         r'and PyAV only\)')

# (argv, the module named): each a command the base install lacks a dependency for.
BASE_MISSING = [
    (["-m", "gamir", "generate", "--model", "MODELS/denoise.gamir", "-o", "gen"],
     "gamir generate needs 'amaranth'"),
    (["-m", "gamir", "build", "--board", "ulx3s-85f", "--model", "MODELS/denoise.gamir", "-o", "b"],
     "gamir build needs 'amaranth'"),
    (["-m", "gamir", "check", "--model", "MODELS/sr.gamir", "photo.png"],
     "gamir check needs 'imageio'"),
    (["-m", "gamir", "train", "--help"], "gamir train needs 'torch'"),
    (["-m", "gamir", "gather-data", "--out", "photos"], "gamir gather-data needs 'skimage'"),
    (["-m", "training.train", "--help"], r"python -m training.train needs 'torch'"),  # at import
]


@pytest.mark.parametrize("argv,named", BASE_MISSING,
                         ids=[" ".join(a[1:3]) for a, _ in BASE_MISSING])
def test_base_install_names_the_extra(wheel, tmp_path, argv, named):
    """One ``error:`` line naming the module and the extra, status 1, nothing written."""
    _write_photo(tmp_path / "photo.png")
    before = sorted(tmp_path.iterdir())
    status, err = _base(wheel, tmp_path, *[a.replace("MODELS", str(ROOT / "models")) for a in argv])
    assert err and re.fullmatch(f"error: {named}, {EXTRA}", err[-1]), err
    assert len(err) == 1 and status == 1, err
    assert sorted(tmp_path.iterdir()) == before


def test_base_install_build_names_boards_without_amaranth(wheel, tmp_path):
    """hw.build loads Amaranth only to generate: its help and a bad board need none."""
    status, err = _base(wheel, tmp_path, "-m", "hw.build", "--board", "nope", "--model", "m.gamir",
                        "-o", "b")
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith("error: unknown board 'nope'; known boards: ulx3s-85f, "), err
    assert not (tmp_path / "b").exists()


def test_base_install_runs_and_refuses_a_bad_sigma(wheel, tmp_path):
    """The base install restores an image with a shipped model, and a bad --sigma is exit 2."""
    _write_photo(tmp_path / "photo.png")
    status, err = _base(wheel, tmp_path, "-m", "gamir", "run", "--task", "sr", "photo.png")
    assert status == 0 and (tmp_path / "photo_restored.png").is_file(), err
    status, err = _base(wheel, tmp_path, "-m", "gamir", "run", "--sigma", "51", "photo.png",
                        "-o", "x.png")
    assert status == 2 and err[-1].startswith("error: argument --sigma: 51 is outside"), err


def _write_photo(path: Path) -> None:
    import av
    import numpy as np

    pixels = np.arange(16 * 24 * 3, dtype=np.uint8).reshape(16, 24, 3)
    with av.open(str(path), "w", format="image2") as out:
        s = out.add_stream("png")
        s.width, s.height, s.pix_fmt = 24, 16, "rgb24"
        out.mux(s.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(s.encode(None))


def test_benchmarks_write_where_git_ignores():
    """``python -m bench.X`` writes under bench/results/local/ unless told: the checkout stays
    clean (the recorded results in bench/results/ change only with --out)."""
    from bench import LOCAL_RESULTS

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "check-ignore", "-q", str(LOCAL_RESULTS / "host_emulate.json")],
                       cwd=ROOT)
    assert r.returncode == 0
    for script in (ROOT / "bench").glob("*.py"):
        text = script.read_text()
        assert 'default=Path("bench/results' not in text, script
        assert '"bench" / "results"' not in text, script
