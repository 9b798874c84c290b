"""Make ``samples/clip_noisy.mp4``: the clean sample clip with simulated camera-sensor noise.

No real noisy footage exists offline here, so the noise is added the way a sensor makes it,
in linear light: photon shot noise (Poisson, so brighter pixels get more absolute noise but a
better signal-to-noise ratio) plus Gaussian read noise, independent per pixel and colour
channel, then the sRGB-like gamma back on and 8-bit rounding. At the defaults (a full well of
300 photo-electrons at white, read noise 2 e-) the footage looks like a small sensor at
high ISO: the noise's standard deviation is about 20 levels in the mid-tones (the script prints
the measured value). It is encoded at x264 CRF 8 so the noise survives compression::

    python samples/make_noisy_clip.py                       # samples/clip.mp4 -> samples/clip_noisy.mp4
    python -m host.run samples/clip_noisy.mp4 --sigma 20    # restore it with the shipped denoiser
    python samples/make_noisy_clip.py --still docs/img/denoise_before_after.png   # the README's still

``--still`` restores one frame with the shipped denoiser (the bit-exact spec, as ``host.run``'s
emulation does) and writes a crop of noisy | restored side by side, with the PSNR of each
against the clean frame printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent


def add_sensor_noise(rgb: np.ndarray, rng: np.random.Generator, full_well: float = 60.0,
                     read_noise: float = 3.0) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with shot and read noise added in linear light."""
    linear = (rgb.astype(np.float64) / 255.0) ** 2.2
    electrons = rng.poisson(linear * full_well) + rng.normal(0.0, read_noise, rgb.shape)
    noisy = np.clip(electrons / full_well, 0.0, 1.0) ** (1 / 2.2)
    return np.round(noisy * 255.0).astype(np.uint8)


def read_frames(path: Path) -> tuple[list[np.ndarray], object]:
    with av.open(str(path)) as c:
        rate = c.streams.video[0].average_rate
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)], rate


def make_noisy_clip(src: Path, dst: Path, seed: int, full_well: float, read_noise: float) -> None:
    frames, rate = read_frames(src)
    rng = np.random.default_rng(seed)
    noisy = [add_sensor_noise(f, rng, full_well, read_noise) for f in frames]
    h, w = frames[0].shape[:2]
    with av.open(str(dst), "w") as out:
        v = out.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"crf": "8", "preset": "slow"}
        for f in noisy:
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(v.encode(None))
    written, _ = read_frames(dst)
    sd = np.std(np.stack(written).astype(float) - np.stack(frames))
    print(f"wrote {dst}: {len(frames)} frames {w}x{h}, noise std {sd:.1f} levels "
          f"(after encoding), {dst.stat().st_size // 1024} KB")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def make_still(noisy_clip: Path, clean_clip: Path, dst: Path, sigma: int, frame: int) -> None:
    import spec

    model = spec.load(HERE.parent / "models" / "denoise.gamir").with_noise_level(sigma)
    noisy = read_frames(noisy_clip)[0][frame]
    clean = read_frames(clean_clip)[0][frame]
    restored = spec.restore(model, noisy)
    crop = (slice(56, 200), slice(96, 320))  # the pedestrians and the lamp post, 224x144
    gap = np.full((144, 4, 3), 255, np.uint8)
    still = np.concatenate([noisy[crop], gap, restored[crop]], axis=1)
    with av.open(str(dst), "w", format="image2") as out:
        s = out.add_stream("png")
        s.width, s.height, s.pix_fmt = still.shape[1], still.shape[0], "rgb24"
        out.mux(s.encode(av.VideoFrame.from_ndarray(still, format="rgb24")))
        out.mux(s.encode(None))
    print(f"wrote {dst}: frame {frame}, noisy {psnr(noisy, clean):.2f} dB | restored "
          f"(--sigma {sigma}) {psnr(restored, clean):.2f} dB (whole frame against the clean one)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--src", type=Path, default=HERE / "clip.mp4", help="clean clip")
    p.add_argument("--out", type=Path, default=HERE / "clip_noisy.mp4", help="noisy clip to write")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--full-well", type=float, default=60.0,
                   help="photo-electrons at white: lower is noisier")
    p.add_argument("--read-noise", type=float, default=3.0, help="read noise (electrons)")
    p.add_argument("--still", type=Path,
                   help="instead: write noisy | restored of one frame as a PNG here")
    p.add_argument("--sigma", type=int, default=25, help="the denoiser's noise level for --still")
    p.add_argument("--frame", type=int, default=15, help="the frame --still shows")
    a = p.parse_args()
    if a.still:
        make_still(a.out, a.src, a.still, a.sigma, a.frame)
    else:
        make_noisy_clip(a.src, a.out, a.seed, a.full_well, a.read_noise)


if __name__ == "__main__":
    main()
