"""Host-side pixel steps around the accelerator: unshuffle, noise channel, shuffle.

These only move pixels (and append one constant channel); they run on the host CPU before and
after the accelerator's stream. Channel order follows torch's ``pixel_unshuffle`` /
``pixel_shuffle``: block offset (i, j) of channel c lands in channel ``c*r*r + i*r + j``.
"""

from __future__ import annotations

import numpy as np

from .model import Model, ModelError

__all__ = ["pixel_unshuffle", "pixel_shuffle", "model_input", "model_output", "check_image"]

#: Let :func:`model_input` / :func:`model_output` use the native kernel's copies (tests turn
#: it off to compare the two).
native_enabled = True


def pixel_unshuffle(img: np.ndarray, r: int) -> np.ndarray:
    """(H, W, C) -> (H/r, W/r, C*r*r)."""
    if r == 1:
        return img
    h, w, c = img.shape
    x = img.reshape(h // r, r, w // r, r, c).transpose(0, 2, 4, 1, 3)
    return x.reshape(h // r, w // r, c * r * r)


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """(H, W, C*r*r) -> (H*r, W*r, C)."""
    if r == 1:
        return x
    h, w, crr = x.shape
    c = crr // (r * r)
    y = x.reshape(h, w, c, r, r).transpose(0, 3, 1, 4, 2)
    return y.reshape(h * r, w * r, c)


def check_image(model: Model, image: np.ndarray) -> None:
    """Raise :class:`ModelError` unless ``image`` is (H, W, C) uint8 the model can take."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ModelError("image must be a uint8 array of shape (height, width, channels)")
    h, w, c = image.shape
    if c != model.image_channels:
        raise ModelError(f"image has {c} channels, model {model.name!r} takes {model.image_channels}")
    r = model.steps.unshuffle
    if h < r or w < r or h % r or w % r:
        raise ModelError(
            f"image size {w}x{h} must be a positive multiple of {r} (the model unshuffles by {r})"
        )


def model_input(model: Model, image: np.ndarray) -> np.ndarray:
    """Tensor 0 (the accelerator's input stream) for an (H, W, C) uint8 image.

    The same copy runs in C where the native kernel is loaded (numpy's strided copies are
    a large share of a video frame's time); tests/spec/test_native.py checks they agree.
    """
    check_image(model, image)
    if native_enabled:
        from . import native

        x = native.model_input(model, image)
        if x is not None:
            return x
    x = pixel_unshuffle(image, model.steps.unshuffle)
    if model.steps.noise_channel:
        level = np.full(x.shape[:2] + (1,), model.steps.noise_level, dtype=np.uint8)
        x = np.concatenate([x, level], axis=2)
    return np.ascontiguousarray(x, dtype=np.uint8)


def model_output(model: Model, y: np.ndarray) -> np.ndarray:
    """The restored image from the accelerator's output stream (H, W, c_out) uint8."""
    if native_enabled and model.steps.shuffle > 1:
        from . import native

        x = native.model_output(model, y)
        if x is not None:
            return x
    return np.ascontiguousarray(pixel_shuffle(y, model.steps.shuffle))
