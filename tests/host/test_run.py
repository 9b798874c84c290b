"""The command line on videos, images and folders, with the emulate backend."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import host_restored, make_clip, read_frames, write_manifest, write_png

import spec
from accel import perf
from host.media import Sink
from host.run import MODELS_DIR, main

REPO = Path(__file__).resolve().parents[2]


def test_video_keeps_frame_count_rate_and_audio(tmp_path, model_file):
    frames = [spec.random_image(k, 24, 32, 3) for k in range(5)]
    src = make_clip(tmp_path / "talk.mp4", frames, fps=12, audio=True)
    assert main(["--backend", "emulate", "--model", str(model_file), str(src)]) == 0
    out = tmp_path / "talk_restored.mp4"
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.average_rate == Fraction(12) and (v.width, v.height) == (32, 24)
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
    assert len(read_frames(out)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gamir", "talk.mp4",
                                                         "talk_restored.mp4"]


def test_video_frames_are_the_spec_of_the_decoded_frames(tmp_path, model_file, clip,
                                                        monkeypatch):
    # H.264 is lossy, so check exactly what goes into the encoder.
    written = []
    orig = Sink.write
    monkeypatch.setattr(Sink, "write", lambda self, px, pts=None: (written.append(px.copy()),
                                                                   orig(self, px, pts)))
    model = spec.load(model_file)
    out = tmp_path / "o.mkv"
    assert main(["--model", str(model_file), "-o", str(out), "--side-by-side", str(clip)]) == 0
    ins = read_frames(clip)
    assert len(written) == len(ins) == len(read_frames(out)) == 4
    for a, b, c in zip(ins, written, host_restored(model, ins, video=True)):
        np.testing.assert_array_equal(b, np.concatenate([a, c], axis=1))


def test_the_filters_after_the_accelerator_and_their_switches(tmp_path, model_file, monkeypatch):
    """By default a video gets the grid filter and the temporal blend (a still scene with a
    little noise: the blend changes frames), a folder of images the grid filter only; with
    both off the accelerator's output exactly; at --sigma 0 no filter changes a frame."""
    written = []
    orig = Sink.write
    monkeypatch.setattr(Sink, "write", lambda self, px, pts=None: (written.append(px.copy()),
                                                                   orig(self, px, pts)))
    base = spec.random_image(3, 24, 32, 3).astype(int)
    rng = np.random.default_rng(0)
    frames = [np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
              for _ in range(4)]
    clip, folder = make_clip(tmp_path / "still.mp4", frames), tmp_path / "shots"
    folder.mkdir()
    for k, f in enumerate(frames):
        write_png(folder / f"{k}.png", f)
    model = spec.load(model_file).with_noise_level(30)
    ins = read_frames(clip)
    plain = [spec.restore(model, f) for f in ins]
    cases = [([], clip, host_restored(model, ins, video=True)),
             (["--temporal", "off"], clip, host_restored(model, ins)),
             (["--grid", "off", "--temporal", "off"], clip, plain),
             ([], folder, host_restored(model, frames))]
    for k, (opts, src, want) in enumerate(cases):
        written.clear()
        assert main(["--model", str(model_file), "--sigma", "30", *opts, "-o",
                     str(tmp_path / (f"o{k}.mp4" if src == clip else f"o{k}")), str(src)]) == 0
        assert len(written) == len(want) == 4
        for got, w in zip(written, want):
            np.testing.assert_array_equal(got, w)
    # Each filter changed something here, so the cases above tell them apart.
    assert not all(np.array_equal(a, b) for a, b in zip(cases[0][2], cases[1][2]))
    assert not all(np.array_equal(a, b) for a, b in zip(cases[1][2], plain))
    written.clear()
    assert main(["--model", str(model_file), "--sigma", "0", "-o", str(tmp_path / "s0.mp4"),
                 str(clip)]) == 0
    for got, f in zip(written, ins):
        np.testing.assert_array_equal(got, spec.restore(model.with_noise_level(0), f))


@pytest.mark.parametrize("sr", [False, True])
def test_image_is_bit_exact(tmp_path, sr):
    if sr:
        model = spec.random_model(5, image_channels=3, channels=4, n_binary=1, unshuffle=1,
                                  shuffle=2, noise_channel=False)
    else:
        model = spec.random_model(6, image_channels=3, channels=4, n_binary=2, unshuffle=2,
                                  noise_channel=True)
    spec.save(model, tmp_path / "m.gamir")
    img = spec.random_image(1, 18, 22, 3)
    src = write_png(tmp_path / "photo.png", img)
    assert main(["--model", str(tmp_path / "m.gamir"), str(src)]) == 0
    (got,) = read_frames(tmp_path / "photo_restored.png")
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])


def test_sigma_sets_the_noise_channel(tmp_path, model_file):
    img = spec.random_image(2, 16, 16, 3)
    src = write_png(tmp_path / "a.png", img)
    assert main(["--model", str(model_file), "--sigma", "40", "-o",
                 str(tmp_path / "b.png"), str(src)]) == 0
    (got,) = read_frames(tmp_path / "b.png")
    want = host_restored(spec.load(model_file).with_noise_level(40), [img])[0]
    np.testing.assert_array_equal(got, want)


def test_gray_model_on_a_folder(tmp_path):
    model = spec.random_model(8, image_channels=1, channels=4, n_binary=1, unshuffle=1)
    spec.save(model, tmp_path / "g.gamir")
    folder = tmp_path / "shots"
    folder.mkdir()
    imgs = [spec.random_image(k, 12, 10, 3) for k in range(3)]
    for k, im in enumerate(imgs):
        write_png(folder / f"{k}.png", im)
    (folder / "notes.txt").write_text("not an image")
    assert main(["--model", str(tmp_path / "g.gamir"), str(folder)]) == 0
    out = tmp_path / "shots_restored"
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]
    for k in range(3):
        (gray,) = read_frames(folder / f"{k}.png", "gray")
        (got,) = read_frames(out / f"{k}.png", "gray")
        np.testing.assert_array_equal(got, spec.restore(model, gray[..., None])[..., 0])


def test_progress_and_summary(tmp_path, model_file, clip, capsys):
    assert main(["--model", str(model_file), str(clip)]) == 0
    err = capsys.readouterr().err
    assert "auto: no PYNQ board here" in err and "emulating" in err
    assert "frame 4/4" in err
    assert "done: 4 frames in" in err and "fps with the encoder's flush), backend emulate" in err


def test_missing_bitstream_emulates_with_a_note(tmp_path, model_file, clip, capsys):
    assert main(["--bitstream", str(tmp_path / "gam.bit"), "--model", str(model_file),
                 str(clip)]) == 0
    err = capsys.readouterr().err
    assert "gam.bit' is not here; no manifest beside it" in err
    assert (tmp_path / "clip_restored.mp4").is_file()


@pytest.mark.skipif(not (MODELS_DIR / "denoise.gamir").is_file(),
                    reason="models/denoise.gamir is not trained yet")
def test_readme_command_on_the_shipped_clip(tmp_path):
    """The README's run command, as a user types it, on the shipped clip and model."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes((REPO / "samples" / "clip.mp4").read_bytes())
    r = subprocess.run([sys.executable, "-m", "host.run", "--bitstream", "gam.bit", str(clip)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "no PYNQ board here" in r.stderr
    assert len(read_frames(tmp_path / "clip_restored.mp4")) == len(read_frames(clip))


@pytest.mark.skipif(not (MODELS_DIR / "denoise.gamir").is_file(),
                    reason="models/denoise.gamir is not trained yet")
def test_task_picks_the_shipped_model(tmp_path):
    img = spec.random_image(3, 24, 36, 3)
    src = write_png(tmp_path / "noisy.png", img)
    assert main(["--task", "denoise", "--sigma", "30", str(src)]) == 0
    (got,) = read_frames(tmp_path / "noisy_restored.png")
    model = spec.load(MODELS_DIR / "denoise.gamir").with_noise_level(30)
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])


def test_the_host_needs_no_torch_amaranth_or_cocotb(tmp_path, model_file):
    """The board image has none of them: emulate (and the board path) must not import them."""
    src = write_png(tmp_path / "a.png", spec.random_image(1, 8, 8, 3))
    code = ("import sys\n"
            "for m in ('torch', 'amaranth', 'cocotb', 'cocotb_tools', 'cocotbext', 'pynq'):\n"
            "    sys.modules[m] = None\n"
            "from host.run import main\n"
            f"sys.exit(main(['--model', {str(model_file)!r}, {str(src)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a_restored.png").is_file()


def test_emulate_with_a_manifest_tiles_and_predicts_cycles(tmp_path, model_file, capsys):
    model = spec.load(model_file)
    write_manifest(tmp_path / "gam.json", model, max_width=12)  # clip 32 px -> 16 > 12: 2 tiles
    img = spec.random_image(4, 24, 32, 3)
    src = write_png(tmp_path / "t.png", img)
    assert main(["--bitstream", str(tmp_path / "gam.bit"), str(src)]) == 0  # model by digest
    (got,) = read_frames(tmp_path / "t_restored.png")
    np.testing.assert_array_equal(got, host_restored(model, [img])[0])
    cycles = 2 * perf.frame_cycles(model, None, height=12, width=12)
    assert f"{cycles:,} cycles/frame (2 tile(s), predicted)" in capsys.readouterr().err


def test_depthwise_model_emulates_bit_exact_in_tiles(tmp_path, capsys):
    """A model with depthwise-separable head and tail restores bit-exactly, tiled with its
    halo (the receptive field counts the depthwise 3x3 layers like any 3x3)."""
    model = spec.random_model(9, image_channels=3, channels=4, n_binary=1, unshuffle=1,
                              noise_channel=False, depthwise_prob=1.0)
    assert sum(layer.depthwise for layer in model.layers) == 2
    spec.save(model, tmp_path / "m.gamir")
    # Three 3x3 layers (two depthwise): halo 3, so 30 px in tiles of 12 keep 9 + 6 + 6 + 9.
    write_manifest(tmp_path / "gam.json", model, max_width=12)
    img = spec.random_image(6, 20, 30, 3)
    src = write_png(tmp_path / "d.png", img)
    assert main(["--bitstream", str(tmp_path / "gam.bit"), str(src)]) == 0
    (got,) = read_frames(tmp_path / "d_restored.png")
    np.testing.assert_array_equal(got, spec.restore(model, img, impl="reference"))
    assert "4 tile(s)" in capsys.readouterr().err
