"""Quantizers, BinaryConv2d, binarize() on the paper's four networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.binary import (BinaryConv2d, SoftSign, binarize, conv_macs, set_stage, soft_sign,
                             ste_sign)
from training.paper_nets import FFDNetRes, PRNr, SRResNet, ZeroDCEpp

torch.set_num_threads(1)


def test_ste_sign_forward_and_clip_gradient():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y = ste_sign(x)
    assert y.tolist() == [-1, -1, 1, 1, 1]  # sign(0) = +1, as the spec
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 0]  # straight through where |x| <= 1


def test_soft_sign_is_tanh_10x():
    x = torch.linspace(-1, 1, 11)
    assert torch.allclose(soft_sign(x), torch.tanh(10 * x))
    assert torch.allclose(SoftSign()(x), soft_sign(x))


def test_binary_conv_without_quantizers_equals_float_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3, padding=1)
    b = BinaryConv2d(4, 5, 3, padding=1, weight_quant="fp", input_quant="identity")
    b.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(b(x), conv(x))


def _check(net, x, *args, expect_shortcut):
    n_conv = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    binarize(net, stage=4)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == n_conv
    assert not isinstance(convs[0], BinaryConv2d) and not isinstance(convs[-1], BinaryConv2d)
    assert all(isinstance(m, BinaryConv2d) for m in convs[1:-1])
    assert not any(isinstance(m, (nn.ReLU, nn.PReLU)) for m in net.modules())
    shortcuts = [m for m in net.modules() if type(m).__name__ == "_Shortcut"]
    assert bool(shortcuts) == expect_shortcut
    y = net(x, *args)
    assert torch.isfinite(y).all()
    fp, binary = conv_macs(net, x, *args)
    assert binary > 0 and fp > 0
    return y


@pytest.mark.parametrize("make,x,out,shortcut", [
    (lambda: ZeroDCEpp(width=8), torch.rand(1, 3, 16, 16) * 255, (1, 3, 16, 16), False),
    (lambda: PRNr(width=8, stages=2, recursions=2), torch.rand(1, 3, 16, 16) * 255, (1, 3, 16, 16), False),
    (lambda: SRResNet(width=8, blocks=2), torch.rand(1, 3, 8, 8) * 255, (1, 3, 32, 32), False),
    (lambda: FFDNetRes(width=8, layers=4), torch.rand(1, 3, 16, 16) * 255, (1, 3, 16, 16), False),
])
def test_paper_networks_binarize_and_run(make, x, out, shortcut):
    torch.manual_seed(0)
    net = make()
    assert net(x, 25.0).shape == out  # the full-precision network runs
    assert _check(net.train(), x, 25.0, expect_shortcut=shortcut).shape == out


def test_close_loop_added_where_the_network_has_no_shortcut():
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    _check(plain, torch.rand(1, 3, 8, 8), expect_shortcut=True)


def test_stages_switch_quantizers_and_errors():
    net = binarize(FFDNetRes(width=8, layers=4), norm="instance")
    b = next(m for m in net.modules() if isinstance(m, BinaryConv2d))
    for stage, quant in ((1, ("fp", "tanh")), (3, ("sign", "soft")), (4, ("sign", "sign"))):
        set_stage(net, stage)
        assert (b.weight_quant, b.input_quant) == quant
    assert any(isinstance(m, nn.InstanceNorm2d) for m in net.modules())
    with pytest.raises(ValueError, match=r"^stage=5 must be 1, 2, 3 or 4$"):
        set_stage(net, 5)
    with pytest.raises(ValueError, match=r"^norm='layer' must be 'batch' or 'instance'$"):
        binarize(net, norm="layer")
