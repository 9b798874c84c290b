"""``pytest sim/`` runs the sim package's tests, which live in tests/sim (the root conftest
rewrites the argument): the same tests under the same ids as ``pytest tests/sim``, one test by
its ``sim/`` path too, from the checkout or from inside ``sim/``, and each test once."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def collected(*args: str, cwd: Path = ROOT) -> tuple[int, list[str], str]:
    """(exit status, collected node ids, output) of ``pytest --collect-only`` with ``args``."""
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", *args],
                       cwd=cwd, capture_output=True, text=True, timeout=600)
    return r.returncode, [ln for ln in r.stdout.splitlines() if "::" in ln], r.stdout + r.stderr


def test_the_folder_is_tests_sim():
    status, ids, out = collected("sim/")
    assert status == 0, out
    assert ids and all(i.startswith("tests/sim/") for i in ids), ids
    assert collected("tests/sim/")[1] == ids
    assert collected("tests/sim/", "sim/")[1] == ids  # once, not twice


@pytest.fixture(scope="module")
def usage_errors() -> list[str]:
    """The ids of test_check's two usage error tests, named by their tests/sim path."""
    return collected("tests/sim/test_check.py::test_usage_errors")[1]


@pytest.mark.parametrize("args, cwd", [
    (["sim/test_check.py::test_usage_errors"], ROOT),
    (["sim/test_check.py", "-k", "usage_errors"], ROOT),
    (["test_check.py::test_usage_errors"], ROOT / "sim"),
])
def test_one_test_by_its_sim_path(args, cwd, usage_errors):
    status, ids, out = collected(*args, cwd=cwd)
    assert status == 0, out
    assert ids == usage_errors
    assert len(ids) == 2 and all(i.startswith("tests/sim/test_check.py::test_usage_errors[")
                                 for i in ids), ids


def test_a_missing_test_file_is_pytests_error():
    status, ids, out = collected("sim/test_nothing.py")
    assert status == 4 and ids == [], out
    assert "file or directory not found: sim/test_nothing.py" in out
