"""The native kernel built for aarch64 (PYNQ/ARM boards) equals the reference, under qemu-user.

Cross-compiles ``spec/_native/kernel.c`` (the ``neon`` and ``generic`` variants, with the
install's flags) together with ``native_harness.c``, runs random models' plans (with and
without the affine activation and depthwise layers) and the probes of ``test_native`` dumped by
``spec.native`` under ``qemu-aarch64`` and compares with ``spec.reference``. Skipped where
the cross compiler or qemu-user is missing (Debian: gcc-aarch64-linux-gnu, qemu-user).
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import spec
from spec import native, reference
from spec._native import build
from test_native import act_probe, depthwise_probe

CC, QEMU = "aarch64-linux-gnu-gcc", "qemu-aarch64"
pytestmark = pytest.mark.skipif(not (shutil.which(CC) and shutil.which(QEMU)),
                                reason=f"needs {CC} and {QEMU}")
HARNESS = Path(__file__).with_name("native_harness.c")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    out = {}
    for variant in ("neon", "generic"):
        exe = tmp_path_factory.mktemp(variant) / "harness"
        subprocess.run([CC, *build.COMMON_FLAGS, *build.variant_flags(variant), "-static",
                        str(HARNESS), str(build.SOURCE), "-o", str(exe), "-lm"], check=True)
        out[variant] = exe
    return out


def _check(harness, tmp_path, variant, model, x0, strips):
    h, w = x0.shape[:2]
    plan, out = tmp_path / "plan", tmp_path / "out"
    plan.write_bytes(native._Plan(model).dump(x0))
    subprocess.run([QEMU, str(harness[variant]), str(plan), str(out), str(strips)], check=True)
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(h, w, model.layers[-1].c_out)
    np.testing.assert_array_equal(got, reference.run_layers(model, x0)[-1])


@pytest.mark.parametrize("variant", ["neon", "generic"])
@pytest.mark.parametrize("seed", range(32))
def test_aarch64_equals_reference(harness, tmp_path, variant, seed):
    """Random models; from seed 16 on with the affine activation on most affine stages, from
    seed 24 on with depthwise-separable heads and tails."""
    model = spec.random_model(seed, mix_layers=seed % 4 == 3, kernels=(1, 3) if seed % 3 == 2 else (3,),
                              act_prob=0.7 if seed >= 16 else 0.0,
                              depthwise_prob=1.0 if seed >= 24 else 0.0,
                              channels=[2, 3, 5, 8][seed % 4] if seed >= 24 else None)
    r = model.steps.unshuffle
    h, w = [(1, 1), (7, 11), (20, 37), (3, 70)][seed % 4]
    x0 = spec.model_input(model, spec.random_image(seed, h * r, w * r, model.image_channels))
    _check(harness, tmp_path, variant, model, x0, 1 + seed % 3)


@pytest.mark.parametrize("variant", ["neon", "generic"])
@pytest.mark.parametrize("kind", ["binary", "fixed"])
@pytest.mark.parametrize("residual", [False, True])
def test_aarch64_activation_extremes(harness, tmp_path, variant, kind, residual):
    """The activation's whole output at its edges (test_native.act_probe)."""
    model, x0 = act_probe(kind, residual, 0, 19, 37)
    _check(harness, tmp_path, variant, model, x0, 3)


@pytest.mark.parametrize("variant", ["neon", "generic"])
@pytest.mark.parametrize("r", [2, 3])
def test_aarch64_depthwise_extremes(harness, tmp_path, variant, r):
    """A depthwise layer at its widest (test_native.depthwise_probe)."""
    model, x0 = depthwise_probe(r, r, 35, 29)
    _check(harness, tmp_path, variant, model, x0, 2)
