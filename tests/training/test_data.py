"""Readers, synthetic degradations, patch sampling and the photo gatherer's downscale."""

from __future__ import annotations

import hashlib
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
    assert x.shape == (3, 3, 16, 16) and y.shape == (3, 3, 32, 32) and not level.any()
    assert torch.equal(x, bicubic(y, 0.5))  # SR's input is the target's bicubic downscale
    s = PatchSampler([CLEAN], "denoise", 32, 8, seed=0, sigma_range=(15, 35))
    _, _, level = s()
    assert level.min() >= 15 and level.max() <= 35 and len(set(level.tolist())) > 1


# sha1 of degrade(task, image, default_rng(7), sigma=25, scale=2), made by the per-image NumPy
# implementation that drew the validation set behind every published result (before the
# degradations were shared with the batched sampler): the validation photos must not change.
VALIDATION_DIGESTS = {
    ("astronaut", "denoise"): "88dc01ee191755c4", ("astronaut", "sr"): "b917830cce635095",
    ("astronaut", "lowlight"): "15c0ad8daaef625c", ("astronaut", "derain"): "fcdd5086ffc4d171",
    ("coffee", "denoise"): "bc54693732750ce2", ("coffee", "sr"): "775825f76a2d410d",
    ("coffee", "lowlight"): "249b703f7f7bcf55", ("coffee", "derain"): "eb222e4d667f7039",
}


@pytest.mark.parametrize("name, task", sorted(VALIDATION_DIGESTS))
def test_validation_degradations_are_the_published_ones(name, task):
    img = CLEAN if name == "astronaut" else data.coffee()
    d, _ = degrade(task, img, np.random.default_rng(7), sigma=25, scale=2)
    assert hashlib.sha1(d.tobytes()).hexdigest()[:16] == VALIDATION_DIGESTS[(name, task)]


def _photos():
    return [data.astronaut()[:96, :128].copy(), data.coffee()[:80, :70].copy()]


@pytest.mark.parametrize("task", ["denoise", "sr", "lowlight", "derain"])
def test_a_batch_is_a_function_of_seed_rank_and_step(task):
    def batch(seed, rank, step):
        s = PatchSampler(_photos(), task, 32, 4, seed=(seed, rank), sigma_range=(0, 50))
        s.reseed(step)
        return s()

    a = batch(3, 1, 17)
    s = PatchSampler(_photos(), task, 32, 4, seed=(3, 1), sigma_range=(0, 50))
    for step in (0, 17, 5):  # whatever came before: the same batch
        s.reseed(step)
        got = s()
    s.reseed(17)
    for x, y in zip(a, s()):
        assert torch.equal(x, y)
    for other in (batch(3, 1, 18), batch(3, 0, 17), batch(4, 1, 17)):
        assert not torch.equal(a[1], other[1]) and not torch.equal(a[0], other[0])
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in got)


def test_crops_are_the_eight_flips_and_rotations_of_photo_windows():
    photos = _photos()
    s = PatchSampler(photos, "denoise", 16, 256, seed=2)
    state = s.generator.get_state()
    crops = s._crops().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    views = {}
    s.generator.set_state(state)  # replay the draws of the photo, place and turn
    which = torch.multinomial(s.p, 256, replacement=True, generator=s.generator)
    u = torch.rand(256, 2, generator=s.generator, dtype=torch.float64)
    turn = torch.randint(0, 8, (256,), generator=s.generator)
    for k in range(256):
        img = photos[int(which[k])]
        y, x = int(u[k, 0] * (img.shape[0] - 15)), int(u[k, 1] * (img.shape[1] - 15))
        window = img[y:y + 16, x:x + 16]
        found = [t for t in range(8) if np.array_equal(crops[k], np.rot90(window[:, ::-1] if t & 4 else window, t & 3))]
        assert found, k
        views[int(turn[k])] = found[0]
    assert sorted(views.values()) == list(range(8))  # every turn code a different view


def test_batched_degradations_follow_their_parameters():
    flat = [np.full((64, 64, 3), 128, np.uint8)]
    s = PatchSampler(flat, "denoise", 64, 16, seed=0, sigma_range=(0, 50))
    x, clean, sigma = s()
    sd = (x - clean).std(dim=(1, 2, 3))
    assert torch.allclose(sd, sigma, atol=0.06 * 50)  # each patch its own sigma (12,288 pixels)
    assert sigma.min() < 15 and sigma.max() > 35
    x, clean, _ = PatchSampler(_photos(), "lowlight", 32, 16, seed=0)()
    assert float(x.mean()) < 0.5 * float(clean.mean())
    x, clean, _ = PatchSampler(_photos(), "derain", 32, 16, seed=0)()
    assert (x >= clean).float().mean() > 0.98 and float((x - clean).mean()) > 1  # screen blend
    for x in (x, PatchSampler(_photos(), "denoise", 32, 16, seed=0)()[0]):
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 255


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
