"""Data: readers for the usual dataset layouts and synthetic degradations for the four tasks.

Readers
-------
* :func:`read_folder`: a folder of clean images (DIV2K, BSD, Kodak, Set5 style); degradations
  are synthesized.
* :func:`read_pairs`: paired folders (Rain100H/L ``rain/`` + ``norain/``, LOL ``low/`` +
  ``high/``, SICE-style ``input/`` + ``target/``), matched by file stem.

Degradations, all returning uint8 pixels as the accelerator would see them
-------------------------------------------------------------------------
* ``denoise``: additive Gaussian noise of a known integer sigma, rounded and clipped.
* ``sr``: antialiased bicubic downscaling (Keys a=-0.5 with the kernel stretched by the scale,
  the MATLAB ``imresize`` convention; computed by torch's ``antialias=True`` path, the PIL
  algorithm, whose only difference from MATLAB is border handling).
* ``lowlight``: exposure scaling and gamma, then Poisson-Gaussian (shot + read) noise.
* ``derain``: rendered streaks (random segments at one angle per image, blurred across their
  direction, screen-blended) at random density, length and angle.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import TrainingError

__all__ = [
    "IMAGE_SUFFIXES",
    "PAIR_LAYOUTS",
    "read_image",
    "read_folder",
    "read_pairs",
    "degrade",
    "bicubic",
    "PatchSampler",
    "to_tensor",
    "to_image",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")
#: (degraded folder, clean folder) names tried in order by :func:`read_pairs`.
PAIR_LAYOUTS = (("rain", "norain"), ("low", "high"), ("input", "target"), ("lq", "gt"))


def read_image(path: Path, channels: int = 3) -> np.ndarray:
    """(H, W, channels) uint8; gray images are repeated to 3 channels, alpha dropped.

    An unreadable file raises ``TrainingError`` naming it.
    """
    from skimage import io

    try:
        img = io.imread(path)
    except Exception as e:  # imageio/PIL raise many types for a damaged file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainingError(f"image {path} cannot be read (corrupt or not an image? {reason})") from None
    if img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
        raise TrainingError(f"image {path} has shape {img.shape}, not (height, width[, channels])")
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) / np.iinfo(img.dtype).max * 255 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    img = img[:, :, :3]
    if channels == 1 and img.shape[2] == 3:
        img = np.round(img @ np.array([0.299, 0.587, 0.114]))[:, :, None].astype(np.uint8)
    elif channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def _images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return paths


def read_folder(folder: Path, channels: int = 3) -> dict[str, np.ndarray]:
    """Clean images of a folder, by file stem."""
    return {p.stem: read_image(p, channels) for p in _images(folder)}


def read_pairs(folder: Path, channels: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) pairs from one of :data:`PAIR_LAYOUTS` under ``folder``, by stem."""
    folder = Path(folder)
    for bad, good in PAIR_LAYOUTS:
        if (folder / bad).is_dir() and (folder / good).is_dir():
            clean = {p.stem: p for p in _images(folder / good)}
            pairs = {}
            for p in _images(folder / bad):
                match = clean.get(p.stem) or clean.get(p.stem.replace("rain", "norain"))
                if match is not None:
                    pairs[p.stem] = (read_image(p, channels), read_image(match, channels))
            if not pairs:
                raise FileNotFoundError(f"no file in {folder / bad} has a partner in {folder / good}")
            return pairs
    layouts = ", ".join(f"{a}/+{b}/" for a, b in PAIR_LAYOUTS)
    raise FileNotFoundError(f"{folder} has none of the paired layouts {layouts}")


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (N, H, W, C) uint8 -> float (N, C, H, W) in 0..255."""
    t = torch.from_numpy(np.ascontiguousarray(img)).float()
    return (t[None] if t.ndim == 3 else t).permute(0, 3, 1, 2)


def to_image(t: torch.Tensor) -> np.ndarray:
    """float (1, C, H, W) in 0..255 -> (H, W, C) uint8 (rounded half up, clamped)."""
    return torch.clamp(torch.floor(t[0] + 0.5), 0, 255).permute(1, 2, 0).to(torch.uint8).numpy()


def bicubic(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Antialiased bicubic resize (a=-0.5, MATLAB imresize convention), rounded to pixels."""
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)
    return torch.clamp(torch.floor(y + 0.5), 0, 255)


def _rain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A streak layer (h, w) in 0..1: random segments at one angle, blurred, random density."""
    angle = math.radians(rng.uniform(-30, 30))
    length = rng.uniform(8, 30)
    count = int(h * w * rng.uniform(0.004, 0.016))
    dy, dx = math.cos(angle), math.sin(angle)
    y0 = rng.uniform(-length, h, count)
    x0 = rng.uniform(-length, w, count)
    t = np.arange(0, length, 0.5)
    ys = np.round(y0[:, None] + dy * t).astype(int).ravel()
    xs = np.round(x0[:, None] + dx * t).astype(int).ravel()
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    layer = np.zeros((h, w))
    layer[ys[keep], xs[keep]] = rng.uniform(0.5, 1.0)
    k = torch.tensor([[0.25, 0.5, 0.25]], dtype=torch.float64)
    blur = (k.T @ k)[None, None]
    out = F.conv2d(F.pad(torch.from_numpy(layer)[None, None], (1, 1, 1, 1), mode="replicate"), blur)
    return np.clip(out[0, 0].numpy() * rng.uniform(0.6, 1.0), 0, 1)


def degrade(task: str, clean: np.ndarray, rng: np.random.Generator, sigma: int | None = None,
            scale: int = 2) -> tuple[np.ndarray, int]:
    """A degraded uint8 image for ``task`` and the noise level it was made with (0 if none).

    ``sigma`` (denoise) is the Gaussian sigma in pixel units; ``scale`` the SR factor (the
    clean image is cropped to a multiple of it).
    """
    x = clean.astype(np.float64)
    if task == "denoise":
        if sigma is None:
            raise ValueError("denoise needs sigma")
        noisy = x + rng.normal(0.0, sigma, x.shape)
        return np.clip(np.floor(noisy + 0.5), 0, 255).astype(np.uint8), int(sigma)
    if task == "sr":
        h, w = clean.shape[0] // scale * scale, clean.shape[1] // scale * scale
        lr = bicubic(to_tensor(clean[:h, :w]), 1.0 / scale)
        return to_image(lr), 0
    if task == "lowlight":
        y = x / 255.0
        dark = rng.uniform(0.05, 0.35) * y ** rng.uniform(1.0, 2.5)
        shot = rng.uniform(0.0002, 0.002)
        read = rng.uniform(0.001, 0.006)
        noisy = dark + rng.normal(0, 1, x.shape) * np.sqrt(dark * shot + read**2)
        return np.clip(np.floor(noisy * 255 + 0.5), 0, 255).astype(np.uint8), 0
    if task == "derain":
        s = _rain(*clean.shape[:2], rng)[:, :, None] * rng.uniform(0.6, 0.9)
        y = 1 - (1 - x / 255.0) * (1 - s)
        return np.clip(np.floor(y * 255 + 0.5), 0, 255).astype(np.uint8), 0
    raise ValueError(f"task={task!r} must be denoise, sr, lowlight or derain")


class PatchSampler:
    """Random training batches: crop, flip/rotate, degrade (uint8 throughout, like the hardware).

    ``patch`` is the clean (target) patch size; for SR the input is ``patch // scale``.
    ``sigma_range`` is the inclusive range of integer noise levels for denoising. ``seed`` is
    an integer or a tuple of them (``(seed, rank)`` under torchrun); :meth:`reseed` derives the
    generator of one training step from it, so batches do not depend on where a run resumed.
    """

    def __init__(self, images: list[np.ndarray], task: str, patch: int, batch: int, seed,
                 sigma_range=(25, 25), scale: int = 2):
        self.images = [im for im in images if min(im.shape[:2]) >= patch]
        if not self.images:
            largest = max((min(im.shape[:2]) for im in images), default=0)
            raise TrainingError(f"--patch {patch}: no training image is at least {patch}x{patch} "
                                f"(the largest fits {largest}x{largest})")
        self.task, self.patch, self.batch, self.scale = task, patch, batch, scale
        self.sigma_range = sigma_range
        self.seed = tuple(seed) if isinstance(seed, (tuple, list)) else (seed,)
        self.rng = np.random.default_rng(list(self.seed))
        # Large photos are sampled more often, in proportion to their area.
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.p = area / area.sum()

    def reseed(self, step: int) -> None:
        """Draw the batches of training step ``step`` (0-based) from here on."""
        self.rng = np.random.default_rng([*self.seed, step])

    def one(self) -> tuple[np.ndarray, np.ndarray, int]:
        im = self.images[self.rng.choice(len(self.images), p=self.p)]
        y = self.rng.integers(0, im.shape[0] - self.patch + 1)
        x = self.rng.integers(0, im.shape[1] - self.patch + 1)
        c = np.rot90(im[y:y + self.patch, x:x + self.patch], self.rng.integers(4))
        if self.rng.random() < 0.5:
            c = c[:, ::-1]
        c = np.ascontiguousarray(c)
        sigma = int(self.rng.integers(self.sigma_range[0], self.sigma_range[1] + 1))
        d, level = degrade(self.task, c, self.rng, sigma=sigma, scale=self.scale)
        return d, c, level

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(degraded, clean, sigma): float tensors in pixel units."""
        ds, cs, ls = zip(*(self.one() for _ in range(self.batch)))
        return to_tensor(np.stack(ds)), to_tensor(np.stack(cs)), torch.tensor(ls, dtype=torch.float32)
