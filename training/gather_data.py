"""Gather clean training and validation photos offline, from Debian packages and scikit-image.

The standard restoration sets (DIV2K, BSD500, Kodak) come from websites that an offline build
machine cannot reach, so gamir trains on the natural photos that Debian packages ship: a
Debian mirror is the only source the gatherer needs, and the result is the same everywhere. Most are
JPEGs saved at quality 40..80,
so every package photo is downscaled 2x with an area (box) filter, which averages the JPEG
blocking away, before it is used as a clean target.

Validation photos are a fixed list held out of training (``VALIDATION``) plus scikit-image's
astronaut, coffee and chelsea; no validation photo is ever written to the training folder.

Usage::

    python -m training.gather_data --out data/photos [--debs DIR]

``--debs`` is a folder of the ``.deb`` files (those missing are fetched into it with
``apt-get download``, the only step that needs the Debian mirror) that is kept for next time;
without it the packages are fetched into a temporary folder. Either way they are unpacked into
a temporary folder inside ``OUT`` that is removed at the end (about 800 MB while it runs).
Writes ``OUT/train/*.png`` and ``OUT/val/*.png``.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from skimage import data, io  # at the top: missing, it fails before any download

__all__ = ["PACKAGES", "PHOTOS", "VALIDATION", "gather", "area_downscale"]

#: Debian packages holding natural photos (fetched with ``apt-get download``, never installed).
PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds", "opencv-doc", "libjxl-testdata")

_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_MATE = "usr/share/backgrounds/mate/nature/{}.jpg"
_OPENCV = "usr/share/doc/opencv-doc/examples/data/{}"
_JXL = "usr/share/libjxl-testdata/"

#: name -> path inside the extracted packages. Illustrations, logos and charts are left out.
PHOTOS = {
    **{f"plasma_{n}": _PLASMA.format(n) for n in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
        "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")},
    **{f"mate_{n}": _MATE.format(n) for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
        "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")},
    **{f"opencv_{Path(n).stem}": _OPENCV.format(n) for n in (
        "aloeL.jpg", "building.jpg", "graf1.png", "leuvenA.jpg", "baboon.jpg", "fruits.jpg",
        "home.jpg", "messi5.jpg", "orange.jpg", "apple.jpg", "butterfly.jpg", "squirrel_cls.jpg",
        "stuff.jpg", "smarties.png", "basketball1.png", "rubberwhale1.png", "lena.jpg")},
    **{f"opencv_scenetext0{i}": f"usr/share/doc/opencv-doc/examples/text/scenetext0{i}.jpg"
       for i in range(1, 7)},
    "jxl_flower": _JXL + "jxl/flower/flower.png",
    **{f"jxl_{n.split('_')[1]}": _JXL + f"external/wesaturate/500px/{n}_srgb8.png" for n in (
        "cvo9xd_keong_macan", "tmshre_riaphotographs", "u76c0g_bliznaca")},
}

#: Photos held out for validation (never written to train/), plus :data:`SKIMAGE_VALIDATION`.
VALIDATION = ("plasma_Kite", "mate_LadyBird", "opencv_fruits", "opencv_building")
SKIMAGE_VALIDATION = ("astronaut", "coffee", "chelsea")


def area_downscale(img: np.ndarray, factor: int = 2) -> np.ndarray:
    """Box-filter downscale of an (H, W, C) uint8 image; odd edges are cropped."""
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    x = img[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor, -1)
    return np.clip(np.round(x.mean(axis=(1, 3))), 0, 255).astype(np.uint8)


def _read_rgb(path: Path) -> np.ndarray:
    img = io.imread(path)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)


def _extract(debs: Path, root: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        try:
            if not found:
                print(f"fetching {pkg} with apt-get download", flush=True)
                subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
                found = sorted(debs.glob(f"{pkg}_*.deb"))
            subprocess.run(["dpkg", "-x", str(found[-1]), str(root)], check=True)
        except FileNotFoundError as e:
            raise cli.CliError(f"{e.filename} is not installed: gather_data needs apt-get and dpkg "
                               f"(a Debian system), or --debs with the .deb files and dpkg") from None
        except subprocess.CalledProcessError as e:
            raise cli.CliError(f"could not fetch or unpack {pkg} ({' '.join(e.cmd[:2])} exited "
                               f"{e.returncode}; is a Debian mirror reachable?)") from None


def gather(out: Path, debs: Path | None = None) -> dict[str, int]:
    """Write the train/ and val/ folders; returns the photo counts.

    ``debs``: a folder of the packages, kept (fetched into a temporary folder when None).
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".gather-") as tmp:
        _extract(Path(debs) if debs else Path(tmp) / "debs", Path(tmp) / "root")
        return _write(out, Path(tmp) / "root")


def _write(out: Path, root: Path) -> dict[str, int]:
    counts = {"train": 0, "val": 0}
    for split in counts:
        (out / split).mkdir(parents=True, exist_ok=True)
    for name, rel in PHOTOS.items():
        path = root / rel
        if not path.exists():
            print(f"skipping {name}: {rel} is not in this package version", flush=True)
            continue
        split = "val" if name in VALIDATION else "train"
        io.imsave(out / split / f"{name}.png", area_downscale(_read_rgb(path)), check_contrast=False)
        counts[split] += 1
    for name in SKIMAGE_VALIDATION:
        io.imsave(out / "val" / f"skimage_{name}.png", getattr(data, name)(), check_contrast=False)
        counts["val"] += 1
    return counts


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m training.gather_data",
                           description="Gather clean training and validation photos from Debian packages.")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (train/, val/)")
    p.add_argument("--debs", type=Path, default=None, metavar="DIR",
                   help="folder of the .deb files, kept (those missing are fetched into it); "
                        "default: a temporary folder, removed")
    a = p.parse_args(argv)
    return cli.run(lambda: _main(a), errors=(OSError,))


def _main(a) -> int:
    for flag, path in (("--out", a.out), ("--debs", a.debs)):
        if path is not None and path.exists() and not path.is_dir():
            raise cli.CliError(f"{flag} {path} is a file, not a folder")
    counts = gather(a.out, a.debs)
    print(f"wrote {counts['train']} training and {counts['val']} validation photos to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
