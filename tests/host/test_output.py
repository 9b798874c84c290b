"""The output end of ``host.run``: the overwrite rule, writes that fail late, and notes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import host_restored, make_clip, read_frames, write_png

import host.media
import spec
from host.media import open_source
from host.run import main

ROOT = Path(__file__).resolve().parents[2]


def _hidden(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_a_file(tmp_path, model_file, clip, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    assert main(["--model", str(model_file), str(clip), "-o", str(out)]) == 1
    assert out.read_bytes() == b"old"
    assert main(["--model", str(model_file), str(clip), "-o", str(out), "--overwrite"]) == 0
    assert len(read_frames(out)) == 4 and not _hidden(tmp_path)


def test_overwrite_into_a_folder_keeps_other_files(tmp_path, model_file, capsys):
    shots, out = tmp_path / "shots", tmp_path / "out"
    shots.mkdir(), out.mkdir()
    for name in "ab":
        write_png(shots / f"{name}.png", spec.random_image(ord(name), 8, 8, 3))
    (out / "a.png").write_bytes(b"old a")
    (out / "notes.txt").write_text("mine")
    assert main(["--model", str(model_file), str(shots), "-o", str(out)]) == 1
    assert main(["--model", str(model_file), str(shots), "-o", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "notes.txt"]
    assert (out / "a.png").read_bytes() != b"old a" and (out / "notes.txt").read_text() == "mine"
    assert not _hidden(out) and not _hidden(tmp_path)


def test_an_empty_folder_is_used_without_overwrite(tmp_path, model_file, capsys):
    shots, out = tmp_path / "shots", tmp_path / "out"
    shots.mkdir(), out.mkdir()
    write_png(shots / "a.png", spec.random_image(1, 8, 8, 3))
    assert main(["--model", str(model_file), str(shots), "-o", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["a.png"]


def _one_error(capsys, pattern):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and pattern in lines[0], err


def test_unwritable_output_folder_fails_before_the_work(tmp_path, model_file, clip, capsys,
                                                        monkeypatch):
    # As root every folder is writable to access(): deny it the way a user would see it.
    monkeypatch.setattr(host.media.os, "access", lambda path, mode: not mode & os.W_OK)
    assert main(["--model", str(model_file), str(clip), "-o", str(tmp_path / "o.mp4")]) == 1
    _one_error(capsys, "is not writable (permission denied)")


def test_a_folder_that_refuses_the_file_fails_before_the_first_frame(model_file, clip, capsys):
    # /proc takes no new files even from root: the temporary file is made before any frame.
    assert main(["--model", str(model_file), str(clip), "-o", "/proc/out.mp4"]) == 1
    _one_error(capsys, "cannot write in output folder '/proc'")


def test_an_output_that_cannot_be_replaced_at_the_end(tmp_path, model_file, clip, capsys,
                                                      monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(host.media.os, "replace", refuse)
    out = tmp_path / "o.mkv"
    assert main(["--model", str(model_file), str(clip), "-o", str(out)]) == 1
    _one_error(capsys, f"cannot write '{out}' (Permission denied)")
    assert not out.exists() and not _hidden(tmp_path)


def test_mkv_progress_has_a_total(tmp_path):
    frames = [spec.random_image(k, 16, 16, 3) for k in range(7)]
    clip = make_clip(tmp_path / "c.mkv", frames)
    source = open_source(clip, 3)
    assert source.n_frames == 7
    source.close()


def _rgba_png(path, image):
    import av

    h, w = image.shape[:2]
    with av.open(str(path), "w", format="image2") as out:
        s = out.add_stream("png")
        s.width, s.height, s.pix_fmt = w, h, "rgba"
        out.mux(s.encode(av.VideoFrame.from_ndarray(image, format="rgba")))
        out.mux(s.encode(None))
    return path


def test_dropped_alpha_and_gray_input_are_said(tmp_path, model_file, capsys):
    rgba = np.concatenate([spec.random_image(1, 8, 8, 3), np.full((8, 8, 1), 7, np.uint8)], 2)
    p = _rgba_png(tmp_path / "a.png", rgba)
    assert main(["--model", str(model_file), str(p)]) == 0
    err = capsys.readouterr().err
    assert f"note: {p}: its alpha channel is dropped (the output has none)" in err
    g = write_png(tmp_path / "g.png", spec.random_image(2, 8, 8, 1), pix_fmt="gray")
    assert main(["--model", str(model_file), str(g)]) == 0
    err = capsys.readouterr().err
    assert f"note: {g}: it is gray and the model is RGB" in err


def test_the_same_command_writes_the_same_bytes(tmp_path, model_file, capsys):
    """The same command twice, the second in another process on one CPU with other leftovers
    in freed memory (glibc's ``MALLOC_PERTURB_``): the same video and image bytes. x264's
    default cut one slice per usable CPU, and its macroblock tree read memory it had not
    written (at 320x240), so files and even decoded pixels differed between runs."""
    clip = ROOT / "samples" / "clip_noisy.mp4"  # real footage, 320x240: where it showed
    photo = write_png(tmp_path / "in.png", spec.random_image(9, 40, 48, 3))

    def argv(src, out):
        return ["--model", str(model_file), str(src), "-o", str(tmp_path / out)]

    for src, out in ((clip, "a.mp4"), (photo, "a.png")):
        assert main(argv(src, out)) == 0
    env = {**os.environ, "MALLOC_PERTURB_": "85",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    one_cpu = ((lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
               if hasattr(os, "sched_setaffinity") else None)
    for src, out in ((clip, "b.mp4"), (photo, "b.png")):
        r = subprocess.run([sys.executable, "-m", "host.run", *argv(src, out)], env=env,
                           preexec_fn=one_cpu, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    for a, b in (("a.mp4", "b.mp4"), ("a.png", "b.png")):
        assert (tmp_path / a).read_bytes() == (tmp_path / b).read_bytes(), a


def test_crf_0_is_lossless(tmp_path, model_file, capsys):
    """``--crf 0`` writes the restored RGB exactly (what ``--sigma 0`` passes through)."""
    frames = [spec.random_image(k, 32, 48, 3) for k in range(3)]
    clip = make_clip(tmp_path / "in.mp4", frames)
    out = tmp_path / "out.mp4"
    assert main(["--model", str(model_file), "--crf", "0", str(clip), "-o", str(out)]) == 0
    model = spec.load(model_file)
    want = host_restored(model, read_frames(clip), video=True)
    got = read_frames(out)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert main(["--model", str(model_file), str(clip), "-o", str(tmp_path / "lossy.mp4")]) == 0
    assert any(not np.array_equal(g, w) for g, w in zip(read_frames(tmp_path / "lossy.mp4"), want))
