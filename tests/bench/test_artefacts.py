"""bench.artefacts: each metric on synthetic inputs whose answer is known, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from skimage import io

from bench.artefacts import (SKIMAGE_VALIDATION, flicker, grid_energy, main, mean_chroma, measure,
                             noisy_pairs, smooth_mask, static_mask)

ROOT = Path(__file__).resolve().parents[2]


def _ramp(h=128, w=160, slope=0.5) -> np.ndarray:
    """A smooth RGB photo: planes of ``slope`` levels per pixel (no 2-pixel pattern)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([60 + slope * xx, 70 + slope * yy, 200 - slope * (xx + yy) / 2], axis=2)


def test_a_planted_grid_of_amplitude_a_has_energy_a_squared():
    base = _ramp()
    mask = np.ones(base.shape[:2], bool)
    yy, xx = np.mgrid[0:base.shape[0], 0:base.shape[1]]
    assert grid_energy(base, mask) == pytest.approx(0, abs=1e-3)  # ramps are not a grid
    mask[:18] = mask[-18:] = mask[:, :18] = mask[:, -18:] = False  # windows clear of the border
    for amplitude in (0.5, 3.0):
        checker = amplitude * np.where((xx + yy) % 2, -1.0, 1.0)[:, :, None]
        stripes = amplitude * np.where(xx % 2, -1.0, 1.0)[:, :, None]
        rows = amplitude * np.where(yy % 2, 1.0, -1.0)[:, :, None]
        for pattern in (checker, stripes, rows):
            assert grid_energy(base + pattern, mask) == pytest.approx(amplitude ** 2, rel=1e-9)
    # Only where the mask is; nothing to measure on an empty mask.
    half = base.copy()
    half[:, 80:] += checker[:, 80:]
    left = np.zeros_like(mask)
    left[:, 18:40] = True
    assert grid_energy(half, left) == pytest.approx(0, abs=1e-3)
    assert np.isnan(grid_energy(half, np.zeros_like(mask)))


def test_white_noise_leaves_three_sigma_squared_over_the_window_area():
    noisy = _ramp(256, 256) + np.random.default_rng(0).normal(0, 10, (256, 256, 3))
    got = grid_energy(noisy, np.ones((256, 256), bool), window=32)
    assert got == pytest.approx(3 * 10 ** 2 / 32 ** 2, rel=0.25)


def test_smooth_areas_follow_the_clean_gradient():
    img = np.concatenate([_ramp(64, 64, slope=1.0), _ramp(64, 64, slope=4.0)], axis=1)
    mask = smooth_mask(img.astype(np.uint8), window=8)
    assert mask[:, :24].all() and not mask[:, 72:].any()


def test_chroma_of_gray_and_of_pure_red():
    assert mean_chroma(np.full((4, 4, 3), 90, np.uint8)) == pytest.approx(0, abs=0.01)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert mean_chroma(red) == pytest.approx(104.55, abs=0.05)  # CIELAB (D65) chroma of sRGB red


def test_a_still_scene_with_iid_noise_of_sigma_flickers_by_sigma():
    rng = np.random.default_rng(1)
    scene = rng.uniform(0, 255, (1, 48, 64, 3))
    clip = scene + rng.normal(0, 4.0, (40, 48, 64, 3))
    still = np.ones((48, 64), bool)
    assert flicker(clip, still) == pytest.approx(4.0, rel=0.02)
    assert flicker(np.repeat(scene, 5, axis=0), still) == pytest.approx(0, abs=1e-9)
    # A square moving across a still background: its path is not static.
    clean = np.repeat(scene.astype(np.uint8), 6, axis=0)
    for t in range(6):
        clean[t, 10:20, 5 + 8 * t:15 + 8 * t] = 255
    mask = static_mask(clean)
    assert not mask[10:20, 5:55].any() and mask[30:].all() and mask[:, 60:].all()


def test_measure_an_identity_restoration():
    rng = np.random.default_rng(2)
    clean = _ramp(64, 64).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 5, clean.shape), 0, 255).astype(np.uint8)
    clip = np.repeat(clean[None], 4, axis=0)
    noisy_clip = np.clip(clip + rng.normal(0, 5, clip.shape), 0, 255).astype(np.uint8)
    got = measure(lambda frames, level: frames, [("ramp", noisy, clean)], 5, clip, noisy_clip, 5)
    row = got["photos"][0]
    assert row["grid_output_over_input"] == 1 and row["psnr_output"] == row["psnr_input"]
    assert got["clip"]["flicker"]["output"] == got["clip"]["flicker"]["input"] > 4
    assert got["clip"]["flicker"]["clean"] == 0 and got["clip"]["static_fraction"] == 1
    assert "filtered" not in got["clip"]["flicker"]
    # The filters after the accelerator, measured beside it: here photos unchanged, and a still
    # video one level off the clean frames.
    def post(frames, level, video):
        return [clip[0] + 1] * len(frames) if video else frames

    got = measure(lambda frames, level: frames, [("ramp", noisy, clean)], 5, clip, noisy_clip, 5,
                  post=post)
    row = got["photos"][0]
    assert row["grid_filtered_over_input"] == 1 and row["psnr_filtered"] == row["psnr_output"]
    assert got["clip"]["flicker"]["filtered"] == 0
    assert got["clip"]["psnr_filtered"] == pytest.approx(20 * np.log10(255))


def test_noisy_photos_are_trainings_validation_inputs(tmp_path):
    from skimage import data

    from training.gather_data import SKIMAGE_VALIDATION as trained_on
    from training.tasks import validation_pairs

    assert SKIMAGE_VALIDATION == trained_on
    images = {"b": data.coffee()[:61, :70], "a": data.astronaut()[:64, :50]}
    for name, img in images.items():
        io.imsave(tmp_path / f"{name}.png", img, check_contrast=False)
    ours = noisy_pairs(images, 25)
    theirs = validation_pairs("denoise", tmp_path, sigma=25)
    assert [n for n, _, _ in ours] == [n for n, *_ in theirs] == ["a", "b"]
    for (_, noisy, clean), (_, d, c, _) in zip(ours, theirs):
        assert np.array_equal(noisy, d) and np.array_equal(clean, c)


def _clip(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        v.options = {"crf": "0"}
        for f in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(v.encode(None))


def test_the_command_on_the_shipped_denoiser(tmp_path, capsys):
    (tmp_path / "val").mkdir()
    clean = _ramp(64, 64).astype(np.uint8)
    io.imsave(tmp_path / "val" / "ramp.png", clean, check_contrast=False)
    frames = np.repeat(clean[None, :48], 3, axis=0)
    _clip(tmp_path / "clean.mp4", frames)
    noisy = np.clip(frames + np.random.default_rng(3).normal(0, 20, frames.shape), 0, 255).astype(np.uint8)
    _clip(tmp_path / "noisy.mp4", noisy)
    args = ["--data", str(tmp_path), "--clip", str(tmp_path / "clean.mp4"), "--noisy", str(tmp_path / "noisy.mp4")]
    assert main(args + ["--out", str(tmp_path / "a.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    got = json.loads((tmp_path / "a.json").read_text())
    assert got["photos"][0]["photo"] == "ramp" and got["clip"]["frames"] == 3
    assert got["clip"]["flicker"]["output"] < got["clip"]["flicker"]["input"]  # it denoises
    assert {"psnr_output", "psnr_filtered"} <= set(got["clip"])  # the host's filters measured too
    # Bad input: one error line, nothing written.
    for bad, words in ((["--model", str(ROOT / "models" / "sr.gamir")], "is a sr model, not a denoiser"),
                       (["--noisy", str(tmp_path / "val" / "ramp.png")], "are not the same frames"),
                       (["--data", str(tmp_path / "none")], "does not exist")):
        assert main(args + bad + ["--out", str(tmp_path / "b.json")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "b.json").exists()
