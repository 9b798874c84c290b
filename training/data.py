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

Each degradation is one function of a batch of clean images and its random parameters
(:func:`_apply`), drawn either by a NumPy generator one image at a time (:func:`degrade`: the
fixed validation set, unchanged since the first results) or by a torch generator for a whole
batch on the training device (:class:`PatchSampler`).
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
    "stream_seed",
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


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """Round half up to whole pixels and clip to 0..255 (the uint8 a camera delivers)."""
    return torch.clamp(torch.floor(x + 0.5), 0, 255)


#: Rain streaks: the longest streak (pixels), the step along it, the densest layer (streaks
#: per pixel) and the blur across the streaks.
_STREAK_MAX, _STREAK_STEP, _STREAK_DENSITY = 30.0, 0.5, (0.004, 0.016)


def _rain_layer(n: int, h: int, w: int, p: dict) -> torch.Tensor:
    """Streak layers (n, 1, h, w) in 0..1 from their parameters (see :func:`_draw_numpy`):
    segments from ``y0, x0`` along ``direction`` for ``length`` pixels (the first ``count`` of
    each image's ``y0``/``x0``), drawn at ``intensity``, blurred, times ``strength``, clipped."""
    y0, x0 = p["y0"], p["x0"]
    dt = y0.dtype
    t = torch.arange(0, _STREAK_MAX, _STREAK_STEP, dtype=dt, device=y0.device)
    ys = torch.round(y0[:, :, None] + p["direction"][:, 0, None, None] * t)
    xs = torch.round(x0[:, :, None] + p["direction"][:, 1, None, None] * t)
    streak = torch.arange(y0.shape[1], device=y0.device)
    keep = ((t < p["length"][:, None, None]) & (streak < p["count"][:, None])[:, :, None]
            & (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w))
    image = torch.arange(n, device=y0.device)[:, None, None]
    where = torch.where(keep, (image * h + ys.long()) * w + xs.long(), 0)
    # Streaks of one image share one intensity, so overlaps agree: max is exact and order-free.
    value = torch.where(keep, p["intensity"][:, None, None], 0)
    layer = torch.zeros(n * h * w, dtype=dt, device=y0.device)
    layer = layer.scatter_reduce(0, where.reshape(-1), value.reshape(-1), "amax")
    k = torch.tensor([[0.25, 0.5, 0.25]], dtype=dt, device=y0.device)
    blur = (k.T @ k)[None, None]
    out = F.conv2d(F.pad(layer.reshape(n, 1, h, w), (1, 1, 1, 1), mode="replicate"), blur)
    return torch.clamp(out * p["strength"].reshape(n, 1, 1, 1), 0, 1)


def _apply(task: str, clean: torch.Tensor, p: dict, scale: int) -> torch.Tensor:
    """The degraded batch (pixel units, whole numbers) of clean ``(n, C, H, W)`` under the
    random parameters ``p`` of :func:`_draw_numpy` / :func:`_draw_torch`; in ``clean``'s dtype
    (SR: float32, as the first results were made)."""
    n = clean.shape[0]
    col = (n, 1, 1, 1)
    if task == "denoise":
        return _pixels(clean + p["noise"])
    if task == "sr":
        h, w = clean.shape[2] // scale * scale, clean.shape[3] // scale * scale
        return bicubic(clean[:, :, :h, :w].float(), 1.0 / scale)
    if task == "lowlight":
        y = clean / 255.0
        dark = p["exposure"].reshape(col) * y ** p["gamma"].reshape(col)
        spread = torch.sqrt(dark * p["shot"].reshape(col) + p["read"].reshape(col) ** 2)
        return _pixels((dark + p["z"] * spread) * 255)
    if task == "derain":
        s = _rain_layer(n, clean.shape[2], clean.shape[3], p) * p["opacity"].reshape(col)
        return _pixels((1 - (1 - clean / 255.0) * (1 - s)) * 255)
    raise ValueError(f"task={task!r} must be denoise, sr, lowlight or derain")


def _draw_numpy(task: str, shape: tuple, rng: np.random.Generator, sigma) -> dict:
    """One image's random parameters from a NumPy generator, in the order the validation set
    was first drawn (so it stays the same photos); float64 tensors with a batch axis."""
    h, w, c = shape

    def vec(*v) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float64)

    def pixels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(2, 0, 1)[None]

    if task == "denoise":
        if sigma is None:
            raise ValueError("denoise needs sigma")
        return {"noise": pixels(rng.normal(0.0, sigma, shape))}
    if task == "lowlight":
        exposure, gamma, shot, read = (rng.uniform(0.05, 0.35), rng.uniform(1.0, 2.5),
                                       rng.uniform(0.0002, 0.002), rng.uniform(0.001, 0.006))
        return {"exposure": vec(exposure), "gamma": vec(gamma), "shot": vec(shot),
                "read": vec(read), "z": pixels(rng.normal(0, 1, shape))}
    if task == "derain":
        angle = math.radians(rng.uniform(-30, 30))
        length = rng.uniform(8, _STREAK_MAX)
        count = int(h * w * rng.uniform(*_STREAK_DENSITY))
        y0, x0 = rng.uniform(-length, h, count), rng.uniform(-length, w, count)
        return {"direction": vec((math.cos(angle), math.sin(angle))), "length": vec(length),
                "count": torch.tensor([count]), "y0": torch.from_numpy(y0)[None],
                "x0": torch.from_numpy(x0)[None], "intensity": vec(rng.uniform(0.5, 1.0)),
                "strength": vec(rng.uniform(0.6, 1.0)), "opacity": vec(rng.uniform(0.6, 0.9))}
    return {}


def _draw_torch(task: str, n: int, h: int, w: int, g: torch.Generator, sigma) -> dict:
    """Random parameters of a batch of ``n`` clean ``h x w`` patches, drawn on ``g``'s device
    (float32); ``sigma`` is (n,) noise levels (denoise)."""
    dev = g.device

    def uniform(lo: float, hi: float, *size) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(size or (n,), generator=g, device=dev)

    def normal() -> torch.Tensor:
        return torch.randn(n, 3, h, w, generator=g, device=dev)

    if task == "denoise":
        return {"noise": normal() * sigma.reshape(n, 1, 1, 1)}
    if task == "lowlight":
        return {"exposure": uniform(0.05, 0.35), "gamma": uniform(1.0, 2.5),
                "shot": uniform(0.0002, 0.002), "read": uniform(0.001, 0.006), "z": normal()}
    if task == "derain":
        angle = torch.deg2rad(uniform(-30, 30))
        length = uniform(8, _STREAK_MAX)
        count = (h * w * uniform(*_STREAK_DENSITY)).long()
        most = int(h * w * _STREAK_DENSITY[1]) + 1
        return {"direction": torch.stack([torch.cos(angle), torch.sin(angle)], 1),
                "length": length, "count": count,
                "y0": -length[:, None] + (h + length[:, None]) * uniform(0, 1, n, most),
                "x0": -length[:, None] + (w + length[:, None]) * uniform(0, 1, n, most),
                "intensity": uniform(0.5, 1.0), "strength": uniform(0.6, 1.0),
                "opacity": uniform(0.6, 0.9)}
    return {}


def degrade(task: str, clean: np.ndarray, rng: np.random.Generator, sigma: int | None = None,
            scale: int = 2) -> tuple[np.ndarray, int]:
    """A degraded uint8 image for ``task`` and the noise level it was made with (0 if none).

    ``sigma`` (denoise) is the Gaussian sigma in pixel units; ``scale`` the SR factor (the
    clean image is cropped to a multiple of it).
    """
    if task not in ("denoise", "sr", "lowlight", "derain"):
        raise ValueError(f"task={task!r} must be denoise, sr, lowlight or derain")
    p = _draw_numpy(task, clean.shape, rng, sigma)
    x = torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None].double()
    return to_image(_apply(task, x, p, scale)), int(sigma) if task == "denoise" else 0


def stream_seed(*key: int) -> int:
    """A 64-bit torch seed from a tuple of integers (seed, rank, step), well mixed."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0])


class PatchSampler:
    """Random training batches drawn on ``device``: crops, the 8 flips/rotations, degradations.

    The photos are uploaded once, as uint8, into one flat tensor on ``device``; every batch is
    a few vectorised gathers and elementwise ops there (no per-patch Python), drawn by a torch
    generator on that device. ``patch`` is the clean (target) patch size; for SR the input is
    ``patch // scale``. ``sigma_range`` is the inclusive range of integer noise levels for
    denoising, drawn per patch. ``seed`` is an integer or a tuple of them (``(seed, rank)``
    under torchrun); :meth:`reseed` derives the generator of one training step from it, so a
    batch is a function of (seed, rank, step) and of the device kind (CPU and CUDA generators
    differ), whatever came before it.
    """

    def __init__(self, images: list[np.ndarray], task: str, patch: int, batch: int, seed,
                 sigma_range=(25, 25), scale: int = 2, device: str | torch.device = "cpu"):
        if task not in ("denoise", "sr", "lowlight", "derain"):
            raise ValueError(f"task={task!r} must be denoise, sr, lowlight or derain")
        if task == "sr" and patch % scale:
            raise ValueError(f"patch={patch} must be a multiple of the SR scale {scale}")
        kept = [im for im in images if min(im.shape[:2]) >= patch]
        if not kept:
            largest = max((min(im.shape[:2]) for im in images), default=0)
            raise TrainingError(f"--patch {patch}: no training image is at least {patch}x{patch} "
                                f"(the largest fits {largest}x{largest})")
        self.task, self.patch, self.batch, self.scale = task, patch, batch, scale
        self.sigma_range = tuple(sigma_range)
        self.device = torch.device(device)
        self.seed = tuple(seed) if isinstance(seed, (tuple, list)) else (seed,)
        dev = self.device
        self.pixels = torch.cat([torch.from_numpy(np.ascontiguousarray(im[:, :, :3])).reshape(-1)
                                 for im in kept]).to(dev)
        sizes = torch.tensor([im.shape[0] * im.shape[1] * 3 for im in kept])  # offsets of pixels, x3
        self.offset = (torch.cumsum(sizes, 0) - sizes).to(dev)
        self.height = torch.tensor([im.shape[0] for im in kept], device=dev)
        self.width = torch.tensor([im.shape[1] for im in kept], device=dev)
        # Large photos are sampled more often, in proportion to their area.
        area = (self.height * self.width).double()
        self.p = area / area.sum()
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(stream_seed(*self.seed))

    def reseed(self, step: int) -> None:
        """Draw the batches of training step ``step`` (0-based) from here on."""
        self.generator.manual_seed(stream_seed(*self.seed, step))

    def _crops(self) -> torch.Tensor:
        """``batch`` clean patches (n, 3, P, P) float: random photo (by area), place, and one
        of the 8 flips/rotations, as one gather from the flat photo tensor."""
        n, size, g, dev = self.batch, self.patch, self.generator, self.device
        which = torch.multinomial(self.p, n, replacement=True, generator=g)
        h, w, off = self.height[which], self.width[which], self.offset[which]
        u = torch.rand(n, 2, generator=g, device=dev, dtype=torch.float64)
        y = (u[:, 0] * (h - size + 1)).long()
        x = (u[:, 1] * (w - size + 1)).long()
        turn = torch.randint(0, 8, (n, 1, 1), generator=g, device=dev)
        # The dihedral group: flip the source rows and/or columns, then maybe transpose.
        r = torch.arange(size, device=dev).view(1, -1, 1)
        rows = torch.where((turn & 1) > 0, size - 1 - r, r) + y.view(n, 1, 1)  # (n, P, 1)
        cols = torch.where((turn & 2) > 0, size - 1 - r, r) + x.view(n, 1, 1)
        rows = rows * w.view(n, 1, 1) + off.view(n, 1, 1) // 3
        at = torch.where((turn & 4) > 0, rows.transpose(1, 2) + cols, rows + cols.transpose(1, 2))
        return self.pixels.view(-1, 3)[at].permute(0, 3, 1, 2).float().contiguous()

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(degraded, clean, sigma): float tensors in pixel units on the sampler's device."""
        clean = self._crops()
        lo, hi = self.sigma_range if self.task == "denoise" else (0, 0)
        sigma = torch.randint(lo, hi + 1, (self.batch,), generator=self.generator,
                              device=self.device).float()
        p = _draw_torch(self.task, self.batch, self.patch, self.patch, self.generator, sigma)
        return _apply(self.task, clean, p, self.scale), clean, sigma
