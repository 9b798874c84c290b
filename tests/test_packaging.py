"""The wheel carries what the base install runs: PyAV, the models, the ``gamir`` command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["gamir", "spec", "accel", "hw", "host", "sim", "training"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built from a copy of the tree (the build leaves build/ and egg-info behind)."""
    src = tmp_path_factory.mktemp("src")
    for name in ["pyproject.toml", "setup.py", "README.md", "LICENSE"]:
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES + ["models"]:
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
