"""The cost counter against counts worked out by hand on small layers and networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.binary import BinaryConv2d, binarize
from training.complex import ComplexBinaryConv2d
from training.cost import PAPER_SIZES, build, count, main, paper_ffdnet
from training.paper_nets import FFDNetRes, PRNr


def test_single_layers():
    x = torch.empty(1, 3, 5, 6)
    # 3 -> 4, 3x3, same padding: 5*6 outputs x 4 channels x 3*9 MACs; 4*3*9 + 4 params
    c = count(nn.Conv2d(3, 4, 3, padding=1), x)
    assert (c.fp_macs, c.binary_macs, c.fp_params, c.binary_params) == (30 * 4 * 27, 0, 112, 0)
    assert c.flops == 2 * 3240 and c.size_bits == 112 * 32
    # stride 2, no padding: 2 x 2 outputs; depthwise: 3 x 3 outputs per channel, 9 MACs each
    assert count(nn.Conv2d(3, 4, 3, stride=2), x).fp_macs == 2 * 2 * 4 * 27
    assert count(nn.Conv2d(3, 3, 3, groups=3), x).fp_macs == 3 * 4 * 3 * 9
    # binary: same MACs, counted as binary ops, 1 bit per weight
    b = count(BinaryConv2d(3, 4, 3, padding=1, bias=False), x)
    assert (b.fp_macs, b.binary_macs, b.binary_params, b.flops, b.binary_ops) == (0, 3240, 108, 0, 6480)
    assert b.size_bits == 108
    # the count is the deployed form's, whatever the GAM stage
    assert count(BinaryConv2d(3, 4, 3, padding=1, bias=False, weight_quant="fp",
                              input_quant="tanh"), x).binary_macs == 3240
    # complex: four real binary convs, two weight tensors
    z = torch.empty(1, 3, 5, 6, dtype=torch.complex64)
    k = count(ComplexBinaryConv2d(3, 4, 3, padding=1), z)
    assert (k.binary_macs, k.binary_params, k.fp_macs) == (4 * 3240, 216, 0)


def test_small_network_with_norm_shortcut_and_recursion():
    # conv 3->4 (FP), binary 4->4 + BN in a close-loop shortcut, conv 4->3 (FP), 4x4 image.
    net = binarize(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(4, 3, 3, padding=1)), stage=1)
    c = count(net, torch.empty(1, 3, 4, 4))
    assert c.fp_macs == 16 * 4 * 27 + 16 * 3 * 36
    assert c.binary_macs == 16 * 4 * 36
    assert c.binary_params == 4 * 4 * 9
    assert c.fp_params == (4 * 27 + 4) + (3 * 36 + 3) + 2 * 4  # + BN gamma, beta
    assert [k for _, k, _ in c.layers] == ["fp", "binary", "fp"]
    # PRN_r: 2 stages x (head + 3 recursions x 2 res convs + tail), every call counted
    p = count(PRNr(width=4, stages=2, recursions=3), torch.empty(1, 3, 4, 4))
    per_stage = 16 * 4 * 6 * 9 + 3 * 2 * 16 * 4 * 4 * 9 + 16 * 3 * 4 * 9
    assert p.fp_macs == 2 * per_stage and len(p.layers) == 2 * 8


def test_ffdnet_per_pixel_and_paper_reconciliation():
    # Colour FFDNet, 15 inputs, 96 channels, 12 layers, on a 2x2 image (one body pixel):
    # head 15*96*9, 10 binary 96*96*9, tail 96*12*9 MACs.
    x = torch.empty(1, 3, 2, 2)
    fp = count(FFDNetRes(noise_channels=3), x, 25.0)
    b = count(build("ffdnet", "binary", noise_channels=3), x, 25.0)
    assert fp.fp_macs == 15 * 96 * 9 + 10 * 96 * 96 * 9 + 96 * 12 * 9 == 852768
    assert (b.fp_macs, b.binary_macs) == (15 * 96 * 9 + 96 * 12 * 9, 10 * 96 * 96 * 9)
    # The paper: 101.25 G binary ops; 2 ops per MAC at 256x256 body pixels, G = 2^30
    assert 2 * b.binary_macs * 256 * 256 / 2**30 == 101.25
    text = paper_ffdnet()
    assert "| binary: binary ops | 101.25 | 101.25 |" in text
    assert "| binary: FLOPs | 2.84 | 2.85 |" in text


def test_complex_network_costs_four_times_the_binary_ops():
    x = torch.empty(1, 3, 8, 8)
    b = count(build("ffdnet", "binary", width=8, layers=4), x, 25.0)
    c = count(build("ffdnet", "complex", width=8, layers=4), x, 25.0)
    assert c.binary_macs == 4 * b.binary_macs and c.binary_params == 2 * b.binary_params
    # + the imaginary-input block (depthwise 3x3 and 1x1 on 8 channels, 4x4 body pixels)
    assert c.fp_macs == b.fp_macs + 16 * (8 * 9 + 8 * 8)


def test_count_errors_and_cli(capsys):
    with pytest.raises(ValueError, match=r"^count needs one image, got a batch of 2$"):
        count(nn.Conv2d(3, 3, 1), torch.empty(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"^network='unet' must be one of zerodce, prnr, srresnet, ffdnet$"):
        build("unet")
    assert set(PAPER_SIZES) == {"zerodce", "prnr", "srresnet", "ffdnet"}
    assert main(["--network", "ffdnet"]) == 0
    out = capsys.readouterr().out
    assert "| ffdnet | binary | 512x512 | 2.83 | 108.72 |" in out
