"""The paper's four networks in FP, binary and complex-binary (BCNN) form; the complex layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from training.binary import BinaryConv2d, set_stage
from training.complex import ComplexBinaryConv2d, ComplexNorm, ImaginaryInput, RealPart
from training.cost import build
from training.gam import Trainer

torch.set_num_threads(1)

SMALL = {"zerodce": dict(width=8), "prnr": dict(width=8, stages=2, recursions=2),
         "srresnet": dict(width=8, blocks=2), "ffdnet": dict(width=8, layers=4)}
INPUT = {"zerodce": (16, 16), "prnr": (16, 16), "srresnet": (8, 8), "ffdnet": (16, 16)}
# The convs that must stay full precision (the first and the last in module order) and the
# number of binary ones (every other conv) of the SMALL networks.
FP_CONVS = {"zerodce": ("c1.depth", "c7.point"), "prnr": ("head.0", "tail"),
            "srresnet": ("head.0", "tail"), "ffdnet": ("head.0", "tail")}
N_BINARY = {"zerodce": 12, "prnr": 2, "srresnet": 2 * 2 + 1 + 2, "ffdnet": 2}


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("form", ["fp", "binary", "complex"])
def test_network_forms_binarize_exactly_the_body_and_train(name, form):
    torch.manual_seed(0)
    net = build(name, form, **SMALL[name]).train()
    convs = [m for n, m in net.named_modules()
             if isinstance(m, nn.Conv2d) and not any(isinstance(p, ImaginaryInput) for p in _parents(net, n))]
    binary = [m for m in convs if isinstance(m, BinaryConv2d)]
    fp_convs = [m for m in convs if not isinstance(m, BinaryConv2d)]
    if form == "fp":
        assert not binary
    else:
        assert len(binary) == N_BINARY[name] and len(fp_convs) == 2
        assert all(isinstance(m, ComplexBinaryConv2d) == (form == "complex") for m in binary)
        first, last = (net.get_submodule(n) for n in FP_CONVS[name])
        if form == "complex":  # Sequential(conv, ImaginaryInput), Sequential(RealPart, conv)
            first, last = first[0], last[1]
        assert fp_convs == [first, last]
        # deployed form: every binary conv sees +-1 weights and inputs (real and imaginary)
        seen = []
        for m in binary:
            m.register_forward_pre_hook(lambda m, a: seen.append(_binary_inputs(m, a[0])))
    if form == "complex":
        assert sum(isinstance(m, ImaginaryInput) for m in net.modules()) == 1
        assert sum(isinstance(m, RealPart) for m in net.modules()) == 1
        assert not any(isinstance(m, nn.modules.batchnorm._NormBase)
                       for n, m in net.named_modules() if not n.endswith("block.1"))
        kind = "instance" if name == "prnr" else "batch"
        assert {m.kind for m in net.modules() if isinstance(m, ComplexNorm)} == {kind}
    h, w = INPUT[name]
    x = (torch.rand(2, 3, h, w) * 255).requires_grad_()
    y = net(x, torch.tensor([25.0, 25.0]))
    scale = 4 if name == "srresnet" else 1
    assert y.shape == (2, 3, h * scale, w * scale) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(bool(g.abs().sum() > 0) for g in grads) >= len(grads) - 2
    if form != "fp":
        assert seen and all(seen)


def _parents(net, name):
    parts = name.split(".")
    return [net.get_submodule(".".join(parts[:k])) for k in range(1, len(parts))]


def _binary_inputs(m, z):
    w = [m.weight] + ([m.weight_imag] if isinstance(m, ComplexBinaryConv2d) else [])
    parts = [z.real, z.imag] if z.is_complex() else [z]
    from training.binary import stage_quant
    return (all(bool((stage_quant(m.weight_quant, v).abs() == 1).all()) for v in w)
            and all(bool((stage_quant(m.input_quant, v).abs() == 1).all()) for v in parts))


def test_complex_binary_conv_is_four_real_binary_convs():
    torch.manual_seed(1)
    c = ComplexBinaryConv2d(3, 4, 3, padding=1)
    z = torch.complex(torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6))
    sgn = lambda t: torch.where(t < 0, -1.0, 1.0)  # noqa: E731 (the spec's sign)
    wr, wi, xr, xi = sgn(c.weight), sgn(c.weight_imag), sgn(z.real), sgn(z.imag)
    conv = lambda x, w: nn.functional.conv2d(x, w, padding=1)  # noqa: E731
    y = c(z)
    assert torch.equal(y.real, conv(xr, wr) - conv(xi, wi))
    assert torch.equal(y.imag, conv(xr, wi) + conv(xi, wr))
    # complex multiplication of the binarized parts, computed by torch's own complex conv
    ref = nn.functional.conv2d(torch.complex(xr, xi), torch.complex(wr, wi), padding=1)
    assert torch.allclose(y, ref, atol=1e-4)
    # GAM stages drive it like any BinaryConv2d
    set_stage(c, 1)
    assert (c.weight_quant, c.input_quant) == ("fp", "tanh")
    y1 = c(z)
    assert torch.allclose(y1.real, conv(torch.tanh(z.real), c.weight) - conv(torch.tanh(z.imag), c.weight_imag),
                          atol=1e-5)


@pytest.mark.parametrize("kind", ["batch", "instance"])
def test_complex_norm_whitens_each_channel(kind):
    torch.manual_seed(2)
    re = torch.randn(4, 3, 8, 8) * 3 + 1
    im = 0.8 * re + 0.5 * torch.randn(4, 3, 8, 8) - 2  # strongly correlated with re
    n = ComplexNorm(3, kind).train()
    y = n(torch.complex(re, im))
    dims = (0, 2, 3) if kind == "batch" else (2, 3)
    yr, yi = y.real, y.imag
    # gamma = I / sqrt 2, beta = 0 at init: zero mean, variance 1/2 each, uncorrelated
    assert torch.allclose(yr.mean(dims), torch.zeros(1), atol=1e-5)
    assert torch.allclose(yi.mean(dims), torch.zeros(1), atol=1e-5)
    assert torch.allclose((yr * yr).mean(dims), torch.full((1,), 0.5), atol=1e-3)
    assert torch.allclose((yi * yi).mean(dims), torch.full((1,), 0.5), atol=1e-3)
    assert torch.allclose((yr * yi).mean(dims), torch.zeros(1), atol=1e-3)
    if kind == "batch":  # eval uses the running statistics (one step of momentum 0.1 here)
        n.momentum = 1.0
        n(torch.complex(re, im))
        assert torch.allclose(n.eval()(torch.complex(re, im)), y, atol=1e-3)
    with pytest.raises(ValueError, match=r"^kind='layer' must be 'batch' or 'instance'$"):
        ComplexNorm(3, "layer")


def test_imaginary_input_and_real_part():
    torch.manual_seed(3)
    x = torch.randn(2, 4, 6, 6)
    z = ImaginaryInput(4)(x)
    assert z.is_complex() and torch.equal(z.real, x) and not torch.equal(z.imag, torch.zeros_like(x))
    assert torch.equal(RealPart()(z), x) and torch.equal(RealPart()(x), x)


def test_complex_network_trains_with_gam(tmp_path):
    """Four GAM stages on the complex FFDNet: stage transitions, checkpoints, loss goes down."""
    import numpy as np
    from skimage import data

    from training.data import PatchSampler

    torch.manual_seed(0)
    net = build("ffdnet", "complex", width=8, layers=4)
    img = data.astronaut()[:96, :96].copy()
    sampler = PatchSampler([img], "denoise", 16, 4, seed=0, sigma_range=(25, 25))
    val = [("a", *(lambda c: (np.clip(c + np.random.default_rng(0).normal(0, 25, c.shape), 0, 255)
                             .astype(np.uint8), c))(data.astronaut()[200:232, 200:232]), 25)]
    state = Trainer(net, sampler, val, tmp_path, "gam", 8, fracs=(0.25, 0.25, 0.25, 0.25),
                    log_every=100, val_every=100).run()
    assert [s for s, _ in state["plan"]] == [1, 2, 3, 4]
    assert all((tmp_path / f"stage{k}.pt").exists() for k in (1, 2, 3, 4))
    assert math.isfinite(state["val_psnr"])
    conv = next(m for m in net.modules() if isinstance(m, ComplexBinaryConv2d))
    assert (conv.weight_quant, conv.input_quant) == ("sign", "sign")
