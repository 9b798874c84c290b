"""Readers, synthetic degradations, patch sampling and the photo gatherer's downscale."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, io

from training.data import PatchSampler, bicubic, degrade, read_folder, read_pairs, to_tensor
from training.gather_data import PACKAGES, PHOTOS, SKIMAGE_VALIDATION, VALIDATION, area_downscale, gather
from training.tasks import validation_pairs

CLEAN = data.astronaut()[:64, :96]


@pytest.mark.parametrize("task", ["denoise", "lowlight", "derain"])
def test_same_size_degradations_are_uint8_and_change_the_image(task):
    d, level = degrade(task, CLEAN, np.random.default_rng(0), sigma=25)
    assert d.dtype == np.uint8 and d.shape == CLEAN.shape
    assert np.abs(d.astype(int) - CLEAN).mean() > 1
    assert level == (25 if task == "denoise" else 0)


def test_denoise_noise_has_the_requested_sigma():
    flat = np.full((256, 256, 3), 128, np.uint8)
    d, _ = degrade("denoise", flat, np.random.default_rng(1), sigma=25)
    assert abs(d.astype(float).std() - 25) < 0.5


def test_lowlight_darkens_and_sr_downscales():
    d, _ = degrade("lowlight", CLEAN, np.random.default_rng(0))
    assert d.mean() < 0.5 * CLEAN.mean()
    lr, _ = degrade("sr", CLEAN[:63], np.random.default_rng(0), scale=2)
    assert lr.shape == (31, 48, 3)
    up = bicubic(to_tensor(lr), 2.0)
    assert up.shape == (1, 3, 62, 96) and float(up.min()) >= 0 and float(up.max()) <= 255


def test_bad_task_is_named():
    with pytest.raises(ValueError, match=r"^task='blur' must be denoise, sr, lowlight or derain$"):
        degrade("blur", CLEAN, np.random.default_rng(0))


def test_readers_folder_and_pairs(tmp_path):
    (tmp_path / "rain").mkdir()
    (tmp_path / "norain").mkdir()
    io.imsave(tmp_path / "rain" / "rain-1.png", CLEAN, check_contrast=False)
    io.imsave(tmp_path / "norain" / "norain-1.png", CLEAN[:, :, 0], check_contrast=False)
    pairs = read_pairs(tmp_path)
    assert list(pairs) == ["rain-1"] and pairs["rain-1"][1].shape == CLEAN.shape  # gray -> 3 ch
    assert read_folder(tmp_path / "rain")["rain-1"].shape == CLEAN.shape
    with pytest.raises(FileNotFoundError, match="has none of the paired layouts"):
        read_pairs(tmp_path / "rain")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_folder(tmp_path / "nothing")


def test_patch_sampler_shapes_and_sigma_range():
    s = PatchSampler([CLEAN], "sr", 32, 3, seed=0)
    x, y, level = s()
    assert x.shape == (3, 3, 16, 16) and y.shape == (3, 3, 32, 32)
    s = PatchSampler([CLEAN], "denoise", 32, 8, seed=0, sigma_range=(15, 35))
    _, _, level = s()
    assert level.min() >= 15 and level.max() <= 35 and len(set(level.tolist())) > 1


def test_validation_is_fixed_and_held_out(tmp_path):
    io.imsave(tmp_path / "a.png", CLEAN, check_contrast=False)
    a = validation_pairs("denoise", tmp_path)
    b = validation_pairs("denoise", tmp_path)
    assert np.array_equal(a[0][1], b[0][1]) and a[0][3] == 25
    assert set(VALIDATION) <= set(PHOTOS) and SKIMAGE_VALIDATION


def test_area_downscale_averages_blocks():
    img = np.arange(4 * 6 * 1, dtype=np.uint8).reshape(4, 6, 1) * 10
    out = area_downscale(img)
    assert out.shape == (2, 3, 1)
    assert out[0, 0, 0] == round((0 + 10 + 60 + 70) / 4)
    assert torch.is_tensor(to_tensor(out))


def _deb(folder: Path, package: str, files: dict[str, np.ndarray]) -> None:
    tree = folder / package
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1\nArchitecture: all\nMaintainer: test <t@t>\nDescription: test\n")
    for rel, img in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        io.imsave(tree / rel, img, check_contrast=False)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(folder / f"{package}_1_all.deb")],
                   check=True, capture_output=True)
    shutil.rmtree(tree)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb and dpkg")
def test_gather_writes_photos_and_removes_the_packages(tmp_path):
    debs = tmp_path / "debs"
    debs.mkdir()
    photo = data.astronaut()[:64, :96]
    for package in PACKAGES:
        files = {"mate-backgrounds": {PHOTOS["mate_Aqua"]: photo},
                 "opencv-doc": {PHOTOS["opencv_fruits"]: photo}}.get(package, {})
        _deb(debs, package, files)
    out = tmp_path / "photos"
    assert gather(out, debs) == {"train": 1, "val": 1 + len(SKIMAGE_VALIDATION)}
    assert sorted(p.name for p in out.iterdir()) == ["train", "val"]  # nothing unpacked is left
    assert read_folder(out / "train")["mate_Aqua"].shape == (32, 48, 3)
    assert "opencv_fruits" in read_folder(out / "val")
    assert len(list(debs.glob("*.deb"))) == len(PACKAGES)  # the user's package folder is kept
