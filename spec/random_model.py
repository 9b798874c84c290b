"""Seeded random models and images of the streamable family, for every bit-exact test.

The hardware, simulation and export tests all draw from here, so "random model" means the
same thing everywhere. Parameters are drawn so that outputs are not degenerate: thresholds sit
near the popcount's middle, affine scales keep values inside the fixed range most of the time
(saturation still happens and is tested), and ``flip`` channels occur.
"""

from __future__ import annotations

import numpy as np

from . import arith
from .model import Layer, Model, PixelSteps

__all__ = ["random_model", "random_image", "random_layer_params"]


def random_layer_params(rng: np.random.Generator, layer: Layer, acc_lo: int, acc_hi: int) -> None:
    """Fill ``layer``'s weights and output-stage arrays in place (shape fields already set)."""
    shape = (layer.c_out, layer.kernel, layer.kernel, layer.c_in)
    if layer.kind == "binary":
        layer.weights = rng.integers(0, 2, shape, dtype=np.uint8)
        acc_lo, acc_hi = 0, layer.taps
    else:
        lo, hi = arith.signed_range(layer.w_bits)
        layer.weights = rng.integers(lo, hi + 1, shape)
        acc_lo, acc_hi = arith.conv_acc_range(layer.weights, acc_lo, acc_hi)
    c = layer.c_out
    mid = (acc_lo + acc_hi) / 2
    spread = max(1.0, (acc_hi - acc_lo) / 12)
    if layer.output == "threshold":
        layer.threshold = np.round(rng.normal(mid, spread, c)).astype(np.int64)
        layer.flip = rng.random(c) < 0.3
        return
    out_hi = 127 if layer.output == "pixel" else arith.signed_range(layer.out_bits)[1]
    # Choose A so that (acc - mid) * A >> shift spans about +/- out_hi.
    smax = arith.signed_range(layer.scale_bits)[1]
    gain = out_hi / max(spread * 3, 1.0)
    for shift in range(arith.MAX_SHIFT + 1):
        if gain * (1 << shift) >= smax / 4 or shift == arith.MAX_SHIFT:
            break
    layer.shift = shift
    a = gain * (1 << shift) * rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c)
    layer.scale = np.clip(np.round(a), -smax - 1, smax).astype(np.int64)
    has_global = layer.output == "pixel" and layer.residual_map is not None
    centre = 128 if layer.output == "pixel" and not has_global else 0
    b = -layer.scale * mid + (centre + rng.normal(0, out_hi / 8, c)) * (1 << shift)
    lo, hi = arith.signed_range(arith.CONST_BITS)
    layer.bias = np.clip(np.round(b), lo, hi).astype(np.int64)


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
) -> Model:
    """A valid random model of the streamable family: fixed head, binary body, fixed tail.

    Any argument left ``None`` is drawn from ``seed``. ``mix_layers`` adds a fixed layer with
    an affine output after the head and another before the tail (training's bottlenecks). Residuals connect an affine layer to a
    fixed tensor at most ``max_residual_span`` layers back (hardware delays that stream).
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

    layers: list[Layer] = []
    out_kinds: list[str] = []  # "bit"/"fixed" per tensor 1..
    frac: list[int] = []
    head_out = "affine" if (n_binary == 0 or rng.random() < 0.5) else "threshold"
    ob, fb = fixed_bits()
    layers.append(Layer("fixed", kern(), c0, c, head_out, None, w_bits=int(rng.integers(2, 9)),
                        out_bits=ob, frac_bits=min(fb, ob - 1)))

    def mix_layer():
        ob, fb = fixed_bits()
        return Layer("fixed", kern(), c, c, "affine", None, w_bits=int(rng.integers(2, 9)),
                     out_bits=ob, frac_bits=min(fb, ob - 1))

    if mix_layers:
        layers.append(mix_layer())
    for i in range(len(layers) + 1, len(layers) + n_binary + 1):
        out = "affine" if rng.random() < 0.5 else "threshold"
        layer = Layer("binary", kern(), c, c, out, None)
        if out == "affine":
            candidates = [j for j in range(max(1, i - max_residual_span), i)
                          if layers[j - 1].output == "affine"]
            if candidates and rng.random() < residual_prob:
                j = int(candidates[rng.integers(len(candidates))])
                layer.residual = j
                layer.out_bits, layer.frac_bits = layers[j - 1].out_bits, layers[j - 1].frac_bits
            else:
                ob, fb = fixed_bits()
                layer.out_bits, layer.frac_bits = ob, min(fb, ob - 1)
        layers.append(layer)
    if mix_layers:
        layers.append(mix_layer())
    c_last = image_channels * shuffle**2
    tail = Layer("fixed", kern(), c, c_last, "pixel", None, w_bits=int(rng.integers(2, 9)))
    if rng.random() < 0.7:
        # Global residual: output channel k adds input channel k // (shuffle/unshuffle)^2.
        ratio = (shuffle // unshuffle) ** 2 if shuffle >= unshuffle else 1
        tail.residual_map = np.arange(c_last) // ratio
    layers.append(tail)

    model = Model(layers=layers, image_channels=image_channels, steps=steps, task="test",
                  name=f"random-{seed}", provenance={"generator": "spec.random_model", "seed": seed})
    t_ranges = [(0, arith.PIXEL_MAX)]
    for layer in layers:
        lo, hi = t_ranges[-1]
        layer.scale_bits = int(rng.integers(8, arith.MAX_SCALE_BITS + 1))
        random_layer_params(rng, layer, lo, hi)
        if layer.output == "threshold":
            t_ranges.append((-1, 1))
        elif layer.output == "affine":
            t_ranges.append(arith.signed_range(layer.out_bits))
        else:
            t_ranges.append((0, arith.PIXEL_MAX))
    return model.validate()


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
