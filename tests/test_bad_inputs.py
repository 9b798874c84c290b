"""Bad inputs across every entry point: exit status, one ``error:`` line, nothing written.

Each case runs a command line in-process in a fresh folder (also the working directory) that
holds the inputs, and asserts: the exit status the convention gives (:mod:`gamir.cli`: 1 a bad
input, 2 a bad command line), exactly one line starting ``error:`` that names the problem, no
traceback, and no new, changed or removed file in that folder or in the shipped ``models/`` and
``samples/`` (every input's hash unchanged). All are caught before any Verilator build or
synthesis would start, so each case takes milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import av
import numpy as np
import pytest
from skimage import io as skimage_io

import spec

ROOT = Path(__file__).resolve().parents[1]


def snapshot(*folders: Path) -> dict[str, str]:
    """Path -> content hash ("dir" for folders, the target for links) under ``folders``."""
    out = {}
    for top in folders:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                if p.is_symlink():
                    out[str(p)] = "-> " + os.readlink(p)
                elif p.is_dir():
                    out[str(p)] = "dir"
                else:
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def encode(path: Path, frames: int = 6, size=(24, 32)) -> Path:
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=10)
        v.height, v.width = size
        v.pix_fmt = "yuv420p"
        for k in range(frames):
            img = spec.random_image(k, size[0], size[1], 3)
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(v.encode(None))
    return path


def write_image(path: Path, img: np.ndarray) -> Path:
    """A PNG written by scikit-image (not the PyAV reader under test); uint16 -> 16-bit."""
    skimage_io.imsave(path, img, check_contrast=False)
    return path


def truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """The case's folder: a model, a clip (mp4, mkv), an image, a folder of images, junk; no
    tool variables (hw.build's cases get its own choice, whatever the caller's YOSYS, ...)."""
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("AMARANTH_") or v in (
            "YOSYS", "NEXTPNR_ECP5", "NEXTPNR_ICE40", "NEXTPNR_XILINX", "ECPPACK", "ICEPACK",
            "XC7FRAMES2BIT", "PRJXRAY_DB")]:
        monkeypatch.delenv(var)
    model = spec.random_model(11, image_channels=3, channels=8, n_binary=2, unshuffle=2,
                              noise_channel=True)
    spec.save(model, tmp_path / "m.gamir")
    spec.save(spec.random_model(5, image_channels=3, channels=4, n_binary=1, unshuffle=1,
                                noise_channel=False), tmp_path / "plain.gamir")
    encode(tmp_path / "clip.mp4")
    encode(tmp_path / "clip.mkv", frames=30)
    write_image(tmp_path / "photo.png", spec.random_image(3, 16, 20, 3))
    (tmp_path / "shots").mkdir()
    write_image(tmp_path / "shots" / "a.png", spec.random_image(4, 16, 20, 3))
    (tmp_path / "notes.txt").write_text("not a model, not a video\n" * 20)
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "old.png").write_bytes(b"keep me")
    (tmp_path / "existing.mp4").write_bytes(b"an older result")
    return tmp_path


def _host(*args):
    from host.run import main
    return main, ["--model", "m.gamir", *args]


def _host_raw(*args):
    from host.run import main
    return main, list(args)


def _generate(*args):
    from hw.generate import main
    return main, list(args)


def _build(*args):
    from hw.build import main
    return main, list(args)


def _check(*args):
    from sim.check import main
    return main, list(args)


def _export(*args):
    from training.export import main
    return main, list(args)


def _link(ws, target, name):
    os.symlink(ws / target, ws / name)
    return name


def _deep_png(ws):
    write_image(ws / "deep.png", spec.random_image(1, 8, 8, 1)[..., 0].astype(np.uint16) * 257)
    return "deep.png"


def _tiny_png(ws):
    write_image(ws / "tiny.png", spec.random_image(1, 1, 1, 3))
    return "tiny.png"


def _jpeg(ws):
    img = spec.random_image(2, 32, 40, 3)
    with av.open(str(ws / "photo.jpg"), "w", format="image2") as out:
        s = out.add_stream("mjpeg")
        s.width, s.height, s.pix_fmt = 40, 32, "yuvj444p"
        out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj444p")))
        out.mux(s.encode(None))
    return ws / "photo.jpg"


def _trailing(ws):
    (ws / "junk.gamir").write_bytes((ws / "m.gamir").read_bytes() + b"junk")
    return "junk.gamir"


def _fold_file(ws):
    (ws / "fold.json").write_text("[{\"pe\": 3}, null]")
    return "@fold.json"


# (id, setup(ws) -> (main, argv), exit status, regex the one error line must match)
CASES = [
    # host.run: inputs
    ("run-missing-input", lambda ws: _host("nope.mp4"), 1, r"input 'nope.mp4' does not exist"),
    ("run-not-a-video", lambda ws: _host("notes.txt"), 1, r"not a video or image PyAV can decode"),
    ("run-truncated-mp4", lambda ws: _host(truncate(ws / "clip.mp4", ws / "t.mp4").name), 1,
     r"'t.mp4'"),
    ("run-truncated-mkv", lambda ws: _host(truncate(ws / "clip.mkv", ws / "t.mkv").name), 1,
     r"'t.mkv' is truncated: its packets end at .* of the .* its header promises"),
    ("run-truncated-png", lambda ws: _host(truncate(ws / "photo.png", ws / "t.png", 0.5).name), 1,
     r"t.png"),
    ("run-truncated-jpeg", lambda ws: _host(truncate(_jpeg(ws), ws / "t.jpg", 0.95).name), 1,
     r"image 't.jpg' is truncated \(no end-of-image marker\)"),
    ("run-empty-folder", lambda ws: (ws / "empty").mkdir() or _host("empty"), 1,
     r"folder 'empty' has no images"),
    ("run-16-bit-png", lambda ws: _host(_deep_png(ws)), 1, r"16-bit samples"),  # no gray note
    ("run-frame-too-small", lambda ws: _host(_tiny_png(ws)), 1, r"frame 1x1 is too small"),
    # host.run: the output path
    ("run-output-is-input", lambda ws: _host("clip.mp4", "-o", "clip.mp4"), 1,
     r"output 'clip.mp4' is the input itself"),
    ("run-output-is-input-dot", lambda ws: _host("clip.mkv", "-o", "./clip.mkv"), 1,
     r"output 'clip.mkv' is the input itself"),
    ("run-output-is-input-image", lambda ws: _host("photo.png", "-o", str(ws / "photo.png"),
                                                   "--overwrite"), 1, r"is the input itself"),
    ("run-output-links-to-input", lambda ws: _host("clip.mp4", "-o", _link(ws, "clip.mp4", "l.mp4"),
                                                   "--overwrite"), 1,
     r"output 'l.mp4' is the input itself"),
    ("run-output-folder-is-input", lambda ws: _host("shots", "-o", "shots/../shots",
                                                    "--overwrite"), 1, r"is the input itself"),
    ("run-output-dot", lambda ws: _host("clip.mp4", "-o", "."), 1,
     r"output '.' is a folder: a video is written to a file"),
    ("run-output-video-as-png", lambda ws: _host("clip.mp4", "-o", "out.png"), 1,
     r"cannot write a video as 'out.png'"),
    ("run-output-image-as-mp4", lambda ws: _host("photo.png", "-o", "out.mp4"), 1,
     r"cannot write an image as 'out.mp4'"),
    ("run-output-no-folder", lambda ws: _host("clip.mp4", "-o", "nowhere/out.mp4"), 1,
     r"output folder 'nowhere' does not exist"),
    ("run-output-folder-refuses-files", lambda ws: _host("clip.mp4", "-o", "/proc/out.mp4"), 1,
     r"cannot write in output folder '/proc' \(it is not writable: its file system does not "
     r"take new files\)"),
    ("run-output-image-into-proc", lambda ws: _host("photo.png", "-o", "/proc/x.png"), 1,
     r"cannot write in output folder '/proc' \(it is not writable"),
    ("run-output-name-too-long", lambda ws: _host("clip.mp4", "-o", "x" * 300 + ".mp4"), 1,
     r"output 'x+\.mp4': File name too long"),
    ("run-input-name-too-long", lambda ws: _host("y" * 300 + ".mp4"), 1,
     r"input 'y+\.mp4': File name too long"),
    ("run-bitstream-is-a-folder", lambda ws: _host("--bitstream", "shots", "clip.mp4"), 1,
     r"--bitstream 'shots' is a folder"),
    ("run-output-exists", lambda ws: _host("clip.mp4", "-o", "existing.mp4"), 1,
     r"output 'existing.mp4' exists: pass --overwrite"),
    ("run-folder-to-image-name", lambda ws: _host("shots", "-o", "out.png"), 1,
     r"output 'out.png' is a file name: a folder of images is written to a folder"),
    ("run-folder-to-file", lambda ws: _host("shots", "-o", "existing.mp4"), 1,
     r"output 'existing.mp4' is a file"),
    ("run-folder-to-full-folder", lambda ws: _host("shots", "-o", "outdir"), 1,
     r"output 'outdir' exists: pass --overwrite"),
    # host.run: the model and options
    ("run-model-missing", lambda ws: _host_raw("--model", "none.gamir", "clip.mp4"), 1,
     r"model file 'none.gamir' does not exist"),
    ("run-model-folder", lambda ws: _host_raw("--model", "shots", "clip.mp4"), 1,
     r"--model 'shots' is a folder"),
    ("run-model-not-a-model", lambda ws: _host_raw("--model", "notes.txt", "clip.mp4"), 1,
     r"not a gamir model \(bad magic bytes\)"),
    ("run-model-truncated", lambda ws: _host_raw("--model", truncate(ws / "m.gamir", ws / "t.gamir",
                                                                     0.7).name, "clip.mp4"), 1,
     r"truncated"),
    ("run-model-trailing-junk", lambda ws: _host_raw("--model", _trailing(ws), "clip.mp4"), 1,
     r"trailing data after the payload"),
    ("run-sigma-without-noise-channel", lambda ws: _host_raw("--model", "plain.gamir", "--sigma",
                                                             "25", "clip.mp4"), 2,
     r"argument --sigma: model 'plain.gamir' has no noise-level channel: drop --sigma"),
    ("run-sigma-sr-model", lambda ws: _host_raw("--task", "sr", "--sigma", "25", "clip.mp4"), 2,
     r"argument --sigma: model '.*sr.gamir' has no noise-level channel"),
    ("run-sigma-out-of-range", lambda ws: _host("--sigma", "300", "clip.mp4"), 2,
     r"argument --sigma: .*'300' must be in 0..255"),
    ("run-crf-out-of-range", lambda ws: _host("--crf", "52", "clip.mp4"), 2,
     r"argument --crf: .*'52' must be in 0..51"),
    ("run-sigma-past-noise-table", lambda ws: _host_raw("--sigma", "51", "clip.mp4"), 2,
     r"argument --sigma: 51 is outside the noise levels 0..50 of model '.*denoise.gamir'"),
    ("run-timeout-negative", lambda ws: _host("--timeout", "-5", "clip.mp4"), 2,
     r"--timeout: .*'-5' must be a finite number above 0"),
    ("run-timeout-nan", lambda ws: _host("--timeout", "nan", "clip.mp4"), 2,
     r"--timeout: .*'nan' must be a finite number above 0"),
    ("run-unknown-backend", lambda ws: _host("--backend", "gpu", "clip.mp4"), 2,
     r"--backend: invalid choice: 'gpu'"),
    ("run-unknown-task", lambda ws: _host_raw("--task", "deblur", "clip.mp4"), 2,
     r"--task: invalid choice: 'deblur'"),
    ("run-unknown-option", lambda ws: _host("--fast", "clip.mp4"), 2,
     r"unrecognized arguments: --fast"),
    # hw.generate
    ("generate-model-missing", lambda ws: _generate("--model", "none.gamir", "-o", "gen"), 1,
     r"cannot read model file 'none.gamir'"),
    ("generate-model-not-a-model", lambda ws: _generate("--model", "notes.txt", "-o", "gen"), 1,
     r"not a gamir model"),
    ("generate-fold-not-json", lambda ws: _generate("--model", "m.gamir", "--fold", "fast",
                                                    "-o", "gen"), 1,
     r"--fold 'fast' is not full, auto, lut:N, ii:N, @file or JSON"),
    ("generate-fold-breaks-rule", lambda ws: _generate("--model", "m.gamir", "--fold",
                                                       _fold_file(ws), "-o", "gen"), 1,
     r"must be a multiple of pe=3|fold has \d+ entries"),
    ("generate-fold-file-missing", lambda ws: _generate("--model", "m.gamir", "--fold", "@no.json",
                                                        "-o", "gen"), 1,
     r"--fold '@no.json': cannot read the file"),
    ("generate-fold-lut-not-a-number", lambda ws: _generate("--model", "m.gamir", "--fold",
                                                            "lut:many", "-o", "gen"), 1,
     r"lut:N needs a whole number of LUTs"),
    ("generate-fold-ii-zero", lambda ws: _generate("--model", "m.gamir", "--fold", "ii:0",
                                                   "-o", "gen"), 1,
     r"ii:N needs a whole number of cycles per pixel, at least 1"),
    ("generate-frame-zero", lambda ws: _generate("--model", "m.gamir", "--frame", "0x640",
                                                 "-o", "gen"), 2,
     r"--frame: .*both sizes must be at least 1"),
    ("generate-max-width-negative", lambda ws: _generate("--model", "m.gamir", "--max-width",
                                                         "-3", "-o", "gen"), 2,
     r"--max-width: .*must be at least 1"),
    ("generate-out-is-a-file", lambda ws: _generate("--model", "m.gamir", "-o", "notes.txt"), 1,
     r"-o 'notes.txt' is a file: give a folder"),
    # hw.build
    ("build-unknown-board", lambda ws: _build("--board", "de10", "--model", "m.gamir", "-o", "b"),
     1, r"unknown board 'de10'; known boards: "),
    ("build-model-missing", lambda ws: _build("--board", "ulx3s-85f", "--model", "none.gamir",
                                              "-o", "b"), 1, r"cannot read model file"),
    ("build-fold-not-json", lambda ws: _build("--board", "ulx3s-85f", "--model", "m.gamir",
                                              "--fold", "[1", "-o", "b"), 1,
     r"--fold '\[1' is not full, auto"),
    ("build-fps-zero", lambda ws: _build("--board", "ulx3s-85f", "--model", "m.gamir", "--fps",
                                         "0", "-o", "b"), 2, r"--fps: .*must be a finite number"),
    ("build-out-is-a-file", lambda ws: _build("--board", "ulx3s-85f", "--model", "m.gamir",
                                              "-o", "notes.txt"), 1, r"is a file: give a folder"),
    # sim.check
    ("check-model-missing", lambda ws: _check("--model", "none.gamir", "photo.png"), 1,
     r"cannot read model file"),
    ("check-image-missing", lambda ws: _check("--model", "m.gamir", "none.png"), 1,
     r"none.png: no such file or folder"),
    ("check-bad-fold", lambda ws: _check("--model", "m.gamir", "photo.png", "--fold", "[1]"), 1,
     r"--fold \[1\]: .*fold has 1 entries"),
    ("check-stall-too-big", lambda ws: _check("--model", "m.gamir", "photo.png", "--stall",
                                              "1.5"), 2, r"--stall: .*must be in \[0, 1\)"),
    ("check-frames-zero", lambda ws: _check("--model", "m.gamir", "photo.png", "--frames", "0"),
     2, r"--frames: .*must be at least 1"),
    ("check-json-folder-missing", lambda ws: _check("--model", "m.gamir", "photo.png", "--json",
                                                    "nowhere/r.json"), 1,
     r"--json: folder 'nowhere' does not exist"),
    # training.export
    ("export-checkpoint-missing", lambda ws: _export("--checkpoint", "none.pt", "--data", "shots",
                                                     "--out", "x.gamir"), 1,
     r"checkpoint 'none.pt' does not exist"),
    ("export-checkpoint-not-a-run", lambda ws: _export("--checkpoint", "notes.txt", "--data",
                                                       "shots", "--out", "x.gamir"), 1,
     r"checkpoint 'notes.txt' is not a gamir training run"),
    ("export-data-missing", lambda ws: _export("--checkpoint", "notes.txt", "--data", "none",
                                               "--out", "x.gamir"), 1,
     r"--data 'none' is not a folder"),
    ("export-out-not-gamir", lambda ws: _export("--checkpoint", "notes.txt", "--data", "shots",
                                                "--out", "x.pt"), 1,
     r"--out 'x.pt': model files are named NAME.gamir"),
    ("export-tolerance-negative", lambda ws: _export("--checkpoint", "notes.txt", "--data",
                                                     "shots", "--out", "x.gamir", "--tolerance",
                                                     "-1"), 2, r"--tolerance: .*above 0"),
]


@pytest.mark.parametrize("setup,status,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(ws, capsys, setup, status, message):
    main, argv = setup(ws)
    watched = (ws, ROOT / "models", ROOT / "samples")
    before = snapshot(*watched)
    capsys.readouterr()
    try:
        got = main(argv)
    except SystemExit as e:  # argparse's usage errors exit from parse_args
        got = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err
    # One line per failure: no note or warning about the input before it is refused.
    assert not [ln for ln in err.splitlines() if ln.startswith(("note:", "warning:"))], err
    assert re.search(message, errors[0]), errors[0]
    assert got == status, err
    assert snapshot(*watched) == before, "a file was written, changed or removed"


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert {c[0].split("-")[0] for c in CASES} == {"run", "generate", "build", "check", "export"}
