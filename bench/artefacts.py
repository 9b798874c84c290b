"""The denoiser's artefacts, measured: the 2-pixel grid, lost saturation, video flicker, PSNR.

    python -m bench.artefacts [--model models/denoise.gamir] [--data DIR] [--sigma 25]
                              [--clip samples/clip.mp4 --noisy samples/clip_noisy.mp4]
                              [--clip-sigma 25] [--out FILE]

The model runs through the bit-exact emulation exactly as ``host.run --backend emulate`` runs
it (``host.backend.EmulateBackend``: the native kernel where it builds, else the NumPy spec;
the same tiling), at a fixed noise level.

**Photos.** The validation photos of ``--data`` (``DIR/val``, or ``DIR`` itself when it holds
the photos), degraded as training validates them (:func:`noisy_pairs`: the noisy inputs of
``training.tasks.validation_pairs`` at ``--sigma``). Without ``--data``: scikit-image's three
validation photos (astronaut, coffee, chelsea), noise drawn the same way for that set of three. On
each photo, for the clean photo, the noisy input and the
output:

* **grid energy** (:func:`grid_energy`): the mean power of the 2-pixel-period patterns at the
  frequencies (pi, 0), (0, pi) and (pi, pi), phase-locked to the pixel grid (the pixel
  shuffle's period), measured in 32 x 32 windows on the smooth areas (:func:`smooth_mask`).
  A checkerboard of amplitude A (+-A on alternate pixels) on a smooth photo adds A**2. The
  noisy input's energy there is its noise's (about 3 sigma^2 / 32^2), so the grid is judged
  against the clean photo's: output / clean (output / input is reported too).
* **chroma** (:func:`mean_chroma`): the mean CIELAB chroma sqrt(a*^2 + b*^2) of the whole
  photo: saturation, reported as output / clean.
* **PSNR** against the clean photo (RGB, whole image).

**Clip.** ``--clip`` (clean footage) and ``--noisy`` (the same frames with camera noise,
``samples/make_noisy_clip.py``), the noisy frames restored at ``--clip-sigma`` (the README's
25). **Flicker** (:func:`flicker`): the temporal standard deviation (over the frames, ddof 1)
of each pixel and channel, averaged over the static pixels (:func:`static_mask`: those whose
clean footage varies by at most ``--static-std`` levels over the clip), for the clean, noisy
and restored clips; and the restored clip's PSNR against the clean one.

Prints a table and writes JSON (default: ``gamir_artefacts_<model>.json`` in the system's
temporary folder; ``--out`` names another place).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parent.parent
#: Side of the windows (pixels) that the grid energy and the smooth mask average over. White
#: noise of standard deviation s leaves about 3 * s**2 / WINDOW**2 there (the noisy input's
#: floor, 1.8 levels^2 at sigma 25); a grid locked to the pixels keeps its energy.
WINDOW = 32
#: Smooth areas: the clean photo's mean absolute luma gradient over a window, at most this
#: (levels per pixel).
SMOOTH_GRADIENT = 2.0
#: Static pixels: the clean clip's temporal standard deviation at most this (levels).
STATIC_STD = 2.0

__all__ = ["grid_energy", "smooth_mask", "mean_chroma", "flicker", "static_mask", "noisy_pairs",
           "measure", "main"]


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def smooth_mask(clean: np.ndarray, window: int = WINDOW, threshold: float = SMOOTH_GRADIENT) -> np.ndarray:
    """(H, W) bool: where the clean photo is smooth, i.e. the mean of its luma's gradient
    magnitude (central differences, levels per pixel) over a ``window`` x ``window`` box is
    at most ``threshold``."""
    y = _luma(clean)
    gy, gx = np.gradient(y)
    return ndimage.uniform_filter(np.hypot(gx, gy), window, mode="nearest") <= threshold


def grid_energy(img: np.ndarray, mask: np.ndarray, window: int = WINDOW) -> float:
    """Mean power (levels^2) of the 2-pixel-period patterns of ``img`` over ``mask``.

    Per channel, three filters pick the Nyquist frequencies and reject linear ramps: the
    second difference ``[-1, 2, -1] / 4`` (gain 1 at pi, 0 at 0) across the pattern's axis and
    the smoothing ``[1, 2, 1] / 4`` (gain 1 at 0, 0 at pi) along the other: (0, pi)
    column stripes; (pi, 0) row stripes; both second differences: (pi, pi) checkerboards.
    Each result is demodulated by the pixel grid's sign ((-1)**x, (-1)**y, (-1)**(x+y)) and
    averaged over a ``window`` box: the local amplitude of a pattern locked to the grid (what
    a pixel shuffle leaves), while noise and texture average away. The energy is the sum of
    the three squared amplitudes, averaged over the masked pixels and the channels:
    ``A**2`` for a checkerboard of amplitude ``A`` (and for stripes of amplitude ``A``).
    NaN where the mask is empty.
    """
    if not mask.any():
        return float("nan")
    hp = np.array([-1.0, 2.0, -1.0]) / 4
    lp = np.array([1.0, 2.0, 1.0]) / 4
    h, w = img.shape[:2]
    sy = np.where(np.arange(h) % 2, -1.0, 1.0)[:, None]
    sx = np.where(np.arange(w) % 2, -1.0, 1.0)[None, :]
    total = np.zeros((h, w))
    for c in range(img.shape[2]):
        x = img[:, :, c].astype(np.float64)
        for fy, fx, sign in ((lp, hp, sx), (hp, lp, sy), (hp, hp, sx * sy)):
            f = ndimage.correlate1d(ndimage.correlate1d(x, fy, 0, mode="mirror"), fx, 1, mode="mirror")
            total += ndimage.uniform_filter(f * sign, window, mode="reflect") ** 2
    return float(total[mask].mean() / img.shape[2])


def mean_chroma(img: np.ndarray) -> float:
    """Mean CIELAB chroma ``sqrt(a*^2 + b*^2)`` of an RGB uint8 image (its saturation)."""
    from skimage.color import rgb2lab

    lab = rgb2lab(img)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def static_mask(clean: np.ndarray, threshold: float = STATIC_STD) -> np.ndarray:
    """(H, W) bool: pixels of a clean clip (T, H, W, C) whose temporal standard deviation
    (ddof 1; the largest over the channels) is at most ``threshold`` levels."""
    return clean.astype(np.float64).std(axis=0, ddof=1).max(axis=-1) <= threshold


def flicker(frames: np.ndarray, mask: np.ndarray) -> float:
    """Temporal standard deviation (levels, ddof 1) of the clip (T, H, W, C), per pixel and
    channel, averaged over the pixels of ``mask``: ``sigma`` for a still scene with iid
    noise of standard deviation ``sigma`` (up to rounding). NaN where the mask is empty."""
    if not mask.any():
        return float("nan")
    return float(frames.astype(np.float64).std(axis=0, ddof=1)[mask].mean())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(b, a, data_range=255))


#: scikit-image's photos among the validation photos (``training.gather_data``'s list).
SKIMAGE_VALIDATION = ("astronaut", "coffee", "chelsea")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")


def noisy_pairs(images: dict, sigma: int) -> list:
    """[(name, noisy, clean)]: the photos (sorted by name, cropped to multiples of 4) with
    Gaussian noise of ``sigma`` drawn as ``training.tasks.validation_pairs`` draws it (the
    i-th photo from ``default_rng(i)``), so these are training's validation inputs; bench may
    not import ``training`` (docs/architecture.md), and a test keeps the two equal."""
    out = []
    for i, (name, img) in enumerate(sorted(images.items())):
        img = img[:img.shape[0] // 4 * 4, :img.shape[1] // 4 * 4]
        noise = np.random.default_rng(i).normal(0.0, sigma, img.shape)
        out.append((name, np.clip(np.floor(img + noise + 0.5), 0, 255).astype(np.uint8), img))
    return out


def _read(path: Path) -> np.ndarray:
    from skimage import io

    try:
        img = io.imread(path)
    except Exception as e:  # imageio/PIL raise many types for a damaged file
        raise cli.CliError(f"image {path} cannot be read ({type(e).__name__}: {e})") from None
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise cli.CliError(f"image {path} is not an 8-bit photo ({img.dtype} {img.shape})")
    img = img[:, :, None] if img.ndim == 2 else img
    return np.repeat(img[:, :, :1], 3, axis=2) if img.shape[2] < 3 else img[:, :, :3]  # gray, alpha


def _photos(data: Path | None, sigma: int) -> tuple[str, list]:
    """(where they came from, [(name, noisy, clean)])."""
    if data is None:
        from skimage import data as skdata

        images = {f"skimage_{n}": getattr(skdata, n)() for n in SKIMAGE_VALIDATION}
        return "scikit-image's " + ", ".join(SKIMAGE_VALIDATION) + " (no --data)", noisy_pairs(images, sigma)
    folder = data / "val" if (data / "val").is_dir() else data
    if not folder.is_dir():
        raise cli.CliError(f"--data: image folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise cli.CliError(f"--data: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return str(folder), noisy_pairs({p.stem: _read(p) for p in paths}, sigma)


def _frames(path: Path) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise cli.CliError(f"video {path} cannot be read ({e})") from None


def measure(restore, photos: list, sigma: int, clean_clip: np.ndarray, noisy_clip: np.ndarray,
            clip_sigma: int, static_std: float = STATIC_STD, post=None) -> dict:
    """Every number of the benchmark for ``restore(frames, level)`` (uint8 frames -> restored
    frames at a noise level), on ``photos`` [(name, noisy, clean)] at ``sigma`` and the clip
    pair (T, H, W, 3) at ``clip_sigma``. With ``post(frames, level, video)`` (the filters
    after the accelerator) the same numbers for its output too, as ``filtered``."""
    outputs = {"output": list(restore([n for _, n, _ in photos], sigma))}
    if post is not None:
        outputs["filtered"] = list(post(outputs["output"], sigma, False))
    rows = []
    for i, (name, noisy, clean) in enumerate(photos):
        mask = smooth_mask(clean)
        imgs = {"clean": clean, "input": noisy, **{k: v[i] for k, v in outputs.items()}}
        e = {k: grid_energy(img, mask) for k, img in imgs.items()}
        chroma = {k: mean_chroma(img) for k, img in imgs.items()}
        row = {"photo": name, "smooth_fraction": float(mask.mean()), "grid_energy": e,
               "chroma": chroma, "psnr_input": _psnr(noisy, clean)}
        for k in outputs:
            row.update({f"grid_{k}_over_clean": e[k] / e["clean"],
                        f"grid_{k}_over_input": e[k] / e["input"],
                        f"chroma_{k}_over_clean": chroma[k] / chroma["clean"],
                        f"psnr_{k}": _psnr(imgs[k], clean)})
        rows.append(row)
    clips = {"output": np.stack(list(restore(list(noisy_clip), clip_sigma)))}
    if post is not None:
        clips["filtered"] = np.stack(list(post(list(clips["output"]), clip_sigma, True)))
    still = static_mask(clean_clip, static_std)
    clip = {"frames": int(len(clean_clip)), "static_fraction": float(still.mean()),
            "flicker": {k: flicker(v, still) for k, v in
                        (("clean", clean_clip), ("input", noisy_clip), *clips.items())},
            "psnr_input": float(np.mean([_psnr(n, c) for n, c in zip(noisy_clip, clean_clip)]))}
    for k, v in clips.items():
        clip[f"psnr_{k}"] = float(np.mean([_psnr(r, c) for r, c in zip(v, clean_clip)]))
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k, v in rows[0].items()
            if isinstance(v, float) and k != "smooth_fraction"}
    return {"photos": rows, "photos_mean": mean, "clip": clip}


def _table(result: dict) -> str:
    """Markdown rows per photo, then a line per output (``output``: the accelerator's;
    ``filtered``: after the host's filters, where measured) and the clip's line."""
    kinds = [k for k in ("output", "filtered") if f"psnr_{k}" in result["photos_mean"]]
    psnr = [f"psnr_{k}" for k in kinds]
    lines = ["| photo | smooth | grid clean / input / " + " / ".join(kinds) + " (levels^2) | "
             + " | ".join(f"{k}/clean" for k in kinds) + " | chroma clean / input / output | "
             "PSNR input / " + " / ".join(kinds) + " (dB) |",
             "| --- " * (5 + len(kinds)) + "|"]
    for r in result["photos"]:
        g, c = r["grid_energy"], r["chroma"]
        lines.append(f"| {r['photo']} | {r['smooth_fraction']:.0%} | "
                     + " / ".join(f"{g[k]:.3f}" for k in ("clean", "input", *kinds)) + " | "
                     + " | ".join(f"{r[f'grid_{k}_over_clean']:.1f}x" for k in kinds) + " | "
                     f"{c['clean']:.2f} / {c['input']:.2f} / {c['output']:.2f} | "
                     + " / ".join(f"{r[k]:.2f}" for k in ("psnr_input", *psnr))
                     + " |")
    m, clip = result["photos_mean"], result["clip"]
    f = clip["flicker"]
    for k in kinds:
        lines.append(f"mean {k}: grid {k}/clean {m[f'grid_{k}_over_clean']:.2f}x ({k}/input "
                     f"{m[f'grid_{k}_over_input']:.3f}x), chroma {k}/clean "
                     f"{m[f'chroma_{k}_over_clean']:.3f}, PSNR {m['psnr_input']:.2f} -> "
                     f"{m[f'psnr_{k}']:.2f} dB")
    lines.append(f"clip ({clip['frames']} frames, {clip['static_fraction']:.0%} static): flicker "
                 f"clean {f['clean']:.2f}, input {f['input']:.2f}, "
                 + ", ".join(f"{k} {f[k]:.2f}" for k in kinds) + f" levels; PSNR "
                 f"{clip['psnr_input']:.2f} -> " + " / ".join(f"{clip[k]:.2f}" for k in psnr)
                 + " dB")
    return "\n".join(lines)


def main(argv=None) -> int:
    from host.run import MODELS_DIR

    ap = cli.ArgumentParser(prog="python -m bench.artefacts", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODELS_DIR / "denoise.gamir",
                    help="denoising model (.gamir) (default: the shipped models/denoise.gamir)")
    ap.add_argument("--data", type=Path, metavar="DIR",
                    help="validation photos (DIR/val or DIR) (default: scikit-image's three)")
    ap.add_argument("--sigma", type=cli.natural_int, default=25,
                    help="noise level of the photos, and the model's (default: 25)")
    ap.add_argument("--clip", type=Path, default=REPO / "samples" / "clip.mp4",
                    help="clean clip (default: samples/clip.mp4)")
    ap.add_argument("--noisy", type=Path, default=REPO / "samples" / "clip_noisy.mp4",
                    help="the clip with camera noise (default: samples/clip_noisy.mp4)")
    ap.add_argument("--clip-sigma", type=cli.natural_int, default=25,
                    help="noise level the model is told for the clip (default: 25, the README's)")
    ap.add_argument("--static-std", type=cli.positive_float, default=STATIC_STD,
                    help=f"static pixels: the clean clip's temporal std at most this (default: {STATIC_STD})")
    ap.add_argument("--out", type=Path,
                    help="JSON file to write (default: gamir_artefacts_<model>.json in the temporary folder)")
    a = ap.parse_args(argv)

    def body() -> int:
        import spec
        from host.backend import EmulateBackend
        from host.pipeline import postprocessed, restore_frames

        try:
            model = spec.load(a.model)
            if model.task != "denoise":
                raise cli.CliError(f"--model {a.model} is a {model.task} model, not a denoiser")
            models = {level: model.with_noise_level(level) for level in (a.sigma, a.clip_sigma)}
        except spec.ModelError as e:
            raise cli.CliError(f"--model {a.model}: {e}") from None
        where, photos = _photos(a.data, a.sigma)
        clean, noisy = _frames(a.clip), _frames(a.noisy)
        if clean.shape != noisy.shape:
            raise cli.CliError(f"--clip {a.clip} {clean.shape} and --noisy {a.noisy} {noisy.shape} "
                               "are not the same frames (give the clean clip and its noisy copy)")
        backends = {level: EmulateBackend(m) for level, m in models.items()}

        def restore(frames, level):
            return restore_frames(models[level], backends[level], frames)

        def post(frames, level, video):
            return postprocessed(models[level], frames, temporal=video)

        result = measure(restore, photos, a.sigma, clean, noisy, a.clip_sigma, a.static_std, post)
        result.update(model=str(a.model), model_name=model.name, photos_from=where, sigma=a.sigma,
                      clip=dict(result["clip"], clean=str(a.clip), noisy=str(a.noisy), sigma=a.clip_sigma),
                      emulation=next(iter(backends.values())).name,
                      definitions={"window": WINDOW, "smooth_gradient": SMOOTH_GRADIENT,
                                   "static_std": a.static_std})
        print(f"{a.model} ({result['emulation']}) on {where}, sigma {a.sigma}:")
        print(_table(result))
        out = a.out or Path(tempfile.gettempdir()) / f"gamir_artefacts_{a.model.stem}.json"
        tmp = out.with_name(out.name + ".part")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            os.replace(tmp, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise cli.CliError(f"--out {out}: cannot write ({e.strerror or e})") from None
        print(f"wrote {out}")
        return 0

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
