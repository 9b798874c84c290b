"""Seeded random models and images of the streamable family, for every bit-exact test.

The hardware, simulation and export tests all draw from here, so "random model" means the
same thing everywhere. Parameters are drawn so that outputs are not degenerate: thresholds sit
near the popcount's middle, affine scales keep values inside the fixed range most of the time
(saturation still happens and is tested), and ``flip`` channels occur.
"""

from __future__ import annotations

import numpy as np

import dataclasses

from . import arith
from .model import Affine, Layer, Model, PixelOutput, PixelSteps, Threshold

__all__ = ["random_model", "random_image", "random_layer_params", "random_same_shape"]


def random_layer_params(rng: np.random.Generator, layer: Layer, acc_lo: int, acc_hi: int) -> Layer:
    """``layer`` with random weights and stage arrays (its shape kept); ``acc_lo..acc_hi`` is
    the range of the values it reads."""
    layer = dataclasses.replace(layer, weights=layer.conv.random_weights(rng, layer))
    acc_lo, acc_hi = layer.conv.acc_range(layer, acc_lo, acc_hi)
    stage = layer.stage.randomized(rng, acc_lo, acc_hi, layer.c_out)
    return dataclasses.replace(layer, stage=stage)


def random_model(
    seed: int,
    *,
    image_channels: int | None = None,
    channels: int | None = None,
    n_binary: int | None = None,
    unshuffle: int | None = None,
    shuffle: int | None = None,
    noise_channel: bool | None = None,
    residual_prob: float = 0.5,
    max_residual_span: int = 2,
    kernels=(3,),
    mix_layers: bool = False,
    act_prob: float = 0.0,
    depthwise_prob: float = 0.0,
) -> Model:
    """A valid random model of the streamable family: fixed head, binary body, fixed tail.

    Any argument left ``None`` is drawn from ``seed``. ``mix_layers`` adds a fixed layer with
    an affine output after the head and another before the tail (training's bottlenecks). Residuals
    connect an affine layer to a
    fixed tensor at most ``max_residual_span`` layers back (hardware delays that stream).
    ``act_prob`` is the chance that an affine stage gets the per-channel activation (``act``);
    at 0 nothing more is drawn, so every seed keeps the model it had before the option.
    ``depthwise_prob`` is the chance that the head, and separately the tail, is made
    depthwise-separable (training's cheap ends): head = 1x1 fixed conv then a depthwise conv
    with the head's output stage; tail = a depthwise conv (affine) then the 1x1 pixel layer,
    or, where the body is as wide as the output, one depthwise pixel layer. At 0 nothing is
    drawn (seeds keep their models).
    """
    rng = np.random.default_rng(seed)
    pick = lambda v, choices: v if v is not None else choices[rng.integers(len(choices))]  # noqa: E731
    image_channels = pick(image_channels, [1, 3, 3])
    c = pick(channels, [1, 2, 3, 5, 8, 16, 32])
    n_binary = pick(n_binary, [0, 1, 2, 3, 4])
    unshuffle = pick(unshuffle, [1, 1, 2])
    shuffle = pick(shuffle, [1, 1, 2]) if unshuffle == 1 else unshuffle
    noise_channel = pick(noise_channel, [False, True])
    steps = PixelSteps(unshuffle=unshuffle, noise_channel=bool(noise_channel),
                       noise_level=int(rng.integers(0, 76)), shuffle=shuffle)
    c0 = image_channels * unshuffle**2 + int(noise_channel)
    kern = lambda: int(kernels[rng.integers(len(kernels))])  # noqa: E731

    def fixed_bits():
        return int(rng.integers(4, 11)), int(rng.integers(0, 4))

    def fixed_affine(c_in, kernel, ob, fb):
        return Layer("fixed", kernel, c_in, c, None, Affine(scale=None, bias=None, out_bits=ob,
                                                             frac_bits=min(fb, ob - 1)),
                     w_bits=int(rng.integers(2, 9)))

    # Shapes first (the stage arrays follow once every scale width is drawn).
    layers: list[Layer] = []
    if n_binary == 0 or rng.random() < 0.5:
        ob, fb = fixed_bits()
        layers.append(fixed_affine(c0, kern(), ob, fb))
    else:
        fixed_bits()  # drawn for the head either way, so seeds keep their models
        layers.append(Layer("fixed", kern(), c0, c, None, Threshold(threshold=None, flip=None),
                            w_bits=int(rng.integers(2, 9))))

    def mix_layer():
        ob, fb = fixed_bits()
        return fixed_affine(c, kern(), ob, fb)

    if mix_layers:
        layers.append(mix_layer())
    for i in range(len(layers) + 1, len(layers) + n_binary + 1):
        affine = rng.random() < 0.5
        k = kern()
        if not affine:
            layers.append(Layer("binary", k, c, c, None, Threshold(threshold=None, flip=None)))
            continue
        candidates = [j for j in range(max(1, i - max_residual_span), i)
                      if isinstance(layers[j - 1].stage, Affine)]
        if candidates and rng.random() < residual_prob:
            j = int(candidates[rng.integers(len(candidates))])
            src = layers[j - 1].stage
            stage = Affine(scale=None, bias=None, out_bits=src.out_bits,
                           frac_bits=src.frac_bits, residual=j)
        else:
            ob, fb = fixed_bits()
            stage = Affine(scale=None, bias=None, out_bits=ob, frac_bits=min(fb, ob - 1))
        layers.append(Layer("binary", k, c, c, None, stage))
    if mix_layers:
        layers.append(mix_layer())
    c_last = image_channels * shuffle**2
    k, w_bits = kern(), int(rng.integers(2, 9))
    rmap = None
    if rng.random() < 0.7:
        # Global residual: output channel k adds input channel k // (shuffle/unshuffle)^2.
        ratio = (shuffle // unshuffle) ** 2 if shuffle >= unshuffle else 1
        rmap = np.arange(c_last) // ratio
    layers.append(Layer("fixed", k, c, c_last, None,
                        PixelOutput(scale=None, bias=None, residual_map=rmap), w_bits=w_bits))

    if depthwise_prob > 0:
        layers = _depthwise_ends(rng, layers, depthwise_prob, fixed_bits, kern)

    t_range = (0, arith.PIXEL_MAX)
    for n, layer in enumerate(layers):
        # Every layer draws a scale width (threshold layers too, so seeds keep their models).
        scale_bits = int(rng.integers(8, arith.MAX_SCALE_BITS + 1))
        if hasattr(layer.stage, "scale_bits"):
            layer = dataclasses.replace(layer, stage=dataclasses.replace(layer.stage,
                                                                         scale_bits=scale_bits))
        if act_prob > 0 and isinstance(layer.stage, Affine) and rng.random() < act_prob:
            layer = dataclasses.replace(layer, stage=dataclasses.replace(layer.stage, act="prelu"))
        layers[n] = layer = random_layer_params(rng, layer, *t_range)
        t_range = layer.out_type().value_range()

    model = Model(layers=layers, image_channels=image_channels, steps=steps, task="test",
                  name=f"random-{seed}", provenance={"generator": "spec.random_model", "seed": seed})
    return model.validate()


def _depthwise_ends(rng, layers: list[Layer], prob: float, fixed_bits, kern) -> list[Layer]:
    """``layers`` (shapes, no arrays yet) with a depthwise-separable head and/or tail."""
    layers = list(layers)
    head, tail = layers[0], layers[-1]
    c = head.c_out

    def affine():
        ob, fb = fixed_bits()
        return Affine(scale=None, bias=None, out_bits=ob, frac_bits=min(fb, ob - 1))

    def w_bits():
        return int(rng.integers(2, 9))

    if rng.random() < prob:
        if tail.c_in == tail.c_out and rng.random() < 0.3:
            layers[-1] = dataclasses.replace(tail, kernel=kern(), groups=tail.c_in)
        else:
            layers[-1:] = [Layer("fixed", kern(), c, c, None, affine(), w_bits=w_bits(), groups=c),
                           dataclasses.replace(tail, kernel=1)]
    if rng.random() < prob:
        # Tensor j becomes tensor j+1 (the depthwise layer keeps the head's stage).
        layers[1:] = [dataclasses.replace(layer, stage=dataclasses.replace(layer.stage,
                                                                           residual=layer.stage.residual + 1))
                      if isinstance(layer.stage, Affine) and layer.stage.residual else layer
                      for layer in layers[1:]]
        layers[:1] = [Layer("fixed", 1, head.c_in, c, None, affine(), w_bits=w_bits()),
                      dataclasses.replace(head, kernel=kern(), c_in=c, groups=c)]
    return layers


def random_same_shape(model: Model, seed: int) -> Model:
    """Another model of ``model``'s shape, as a reload would bring: new weights and stage
    arrays, new global residual channels. The generator draws a rounding shift with the
    constants, but the shift is part of the shape: the old one is kept and ``A``/``B`` are
    rescaled to it."""
    rng = np.random.default_rng(seed)
    layers = []
    lo, hi = 0, arith.PIXEL_MAX
    for layer in model.layers:
        new = random_layer_params(rng, layer, lo, hi)
        stage = new.stage
        if hasattr(stage, "with_shift"):
            stage = stage.with_shift(layer.stage.shift)
        if isinstance(stage, PixelOutput):
            stage = dataclasses.replace(
                stage, residual_map=rng.integers(-1, model.input_channels, layer.c_out))
        layers.append(dataclasses.replace(new, stage=stage))
        lo, hi = layer.out_type().value_range()
    other = dataclasses.replace(model, layers=layers).validate()
    if other.shape_hash() != model.shape_hash():
        raise AssertionError("random_same_shape changed the shape")
    return other


def random_image(seed: int, height: int, width: int, channels: int) -> np.ndarray:
    """A uint8 image mixing smooth areas, edges and noise (not just uniform noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(xx[..., None] / (3 + rng.random(channels) * 10)) * np.cos(
        yy[..., None] / (3 + rng.random(channels) * 10))
    base = base + rng.normal(0, 30, (height, width, channels))
    if rng.random() < 0.3:
        base[rng.random((height, width)) < 0.05] = rng.choice([0, 255])
    return np.clip(base, 0, 255).astype(np.uint8)
