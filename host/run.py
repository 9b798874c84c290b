"""``python -m host.run``: restore a video, an image or a folder of images.

Examples::

    python -m host.run --bitstream gam.bit video.mp4          # board if present, else emulate
    python -m host.run --task sr photo.png -o photo_x4.png    # shipped model, no bitstream
    python -m host.run --backend verilator --model m.gamir clip.mp4

Where ``--bitstream`` names a file that is not here (the usual case off the board), the host
says so and, unless the board backend was asked for, emulates: with the model the bitstream's
manifest names if the manifest is here, else with ``--model`` or the ``--task`` model.
"""

from __future__ import annotations

from gamir import cli, models_dir

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import argparse
import sys
from contextlib import closing
import time
from pathlib import Path

import numpy as np

import spec
from spec import Model, ModelError

from .backends import BACKENDS, open_backend
from .errors import HostError
from .manifest import Manifest, find_manifest, load_manifest
from .media import DEFAULT_CRF, open_sink, open_source
from .pipeline import BackgroundWriter, frame_plan, postprocessed, prefetched, restore_frames

__all__ = ["main", "MODELS_DIR", "choose_model", "Progress"]

#: Shipped models, ``models/<task>.gamir`` (a wheel carries them as ``gamir/models``).
MODELS_DIR = models_dir()
TASKS = ("denoise", "sr", "lowlight", "derain")


def _load_model(path: Path) -> Model:
    try:
        return spec.load(path)
    except ModelError as e:
        raise HostError(str(e)) from None


def choose_model(model_path: Path | None, task: str | None,
                 manifest: Manifest | None) -> tuple[Model, str]:
    """The model to run and a name for messages: ``--model``, else the manifest's, else the task's."""
    if model_path is not None:
        if model_path.is_dir():
            raise HostError(f"--model {str(model_path)!r} is a folder: give a .gamir model file")
        if not model_path.is_file():
            raise HostError(f"model file {str(model_path)!r} does not exist")
        return _load_model(model_path), repr(str(model_path))
    if manifest is not None and task is None:
        digest = manifest.model_digest
        candidates = sorted(manifest.path.parent.glob("*.gamir")) + sorted(MODELS_DIR.glob("*.gamir"))
        for p in candidates:
            if p.is_file():
                m = _load_model(p)
                if spec.digest(m) == digest:
                    return m, repr(str(p))
        raise HostError(f"the bitstream's manifest {str(manifest.path)!r} names model "
                        f"{str(digest)[:12]}..., which is neither beside it nor in "
                        f"{MODELS_DIR}: pass the model file with --model")
    task = task or "denoise"
    path = MODELS_DIR / f"{task}.gamir"
    if not path.is_file():
        raise HostError(f"the shipped {task} model {str(path)!r} is not here: pass a model file "
                        f"with --model (see training/ to train and export one)")
    return _load_model(path), repr(str(path))


class Progress:
    """Frames done, fps and ETA on stderr, redrawn at most twice a second."""

    def __init__(self, total: int | None, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.start = self.last = time.perf_counter()
        self.done = 0
        self.tty = self.stream.isatty()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < 0.5 and self.done != self.total:
            return
        self.last = now
        fps = self.done / max(now - self.start, 1e-9)
        text = f"frame {self.done}" + (f"/{self.total}" if self.total else "") + f"  {fps:.2f} fps"
        if self.total and self.done < self.total:
            text += f"  ETA {_clock((self.total - self.done) / fps)}"
        print(("\r" + text) if self.tty else text, end="" if self.tty else "\n",
              file=self.stream, flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def close(self) -> None:
        if self.tty and self.done:
            print(file=self.stream)


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Input (scaled up by pixel repetition if the model upscales) left of the output."""
    h, w = after.shape[:2]
    fy, fx = -(-h // before.shape[0]), -(-w // before.shape[1])
    big = before.repeat(fy, axis=0).repeat(fx, axis=1)[:h, :w]
    return np.concatenate([big, after], axis=1)


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m host.run",
        description="Restore a video, image or folder of images with a gamir model: on a PYNQ "
                    "board, in Verilator, or bit-exactly emulated on the CPU.")
    p.add_argument("input", type=Path, help="video file, image, or folder of images")
    p.add_argument("-o", "--output", type=Path,
                   help="output file or folder (default: NAME_restored.mp4/.png or DIR_restored "
                        "beside the input)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file, or the same-named images in an "
                        "existing output folder (default: refuse)")
    p.add_argument("--bitstream", type=Path,
                   help="the accelerator's .bit, its .hwh and manifest .json beside it "
                        "(default: none)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="where to run; auto: the board if present, else emulate")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", type=Path,
                   help="a .gamir model file (default: the bitstream's model, else the task's)")
    g.add_argument("--task", choices=TASKS,
                   help="a shipped model, models/TASK.gamir (default: denoise)")
    p.add_argument("--sigma", type=cli.int_range(0, 255),
                   help="noise level for models with a noise-level channel, within the model's "
                        "noise table (the shipped denoisers: 0..50; default: the model's own)")
    p.add_argument("--timeout", type=cli.positive_float, metavar="SECONDS",
                   help="board DMA timeout per tile (default: 10x the predicted tile time + 1 s)")
    p.add_argument("--crf", type=cli.int_range(0, 51), default=DEFAULT_CRF,
                   help="output video quality, x264's constant rate factor 0..51: lower is "
                        "better and larger; 0: lossless, the restored RGB exactly (7x larger, "
                        "not for browsers). Images are lossless PNG unless named .jpg")
    p.add_argument("--grid", choices=("on", "off"), default="on",
                   help="denoisers (a noise-level channel, output pixel-shuffled by 2): remove "
                        "the faint 2-pixel grid of the output (spec/degrid.py); off: the "
                        "accelerator's output as it is (default: on)")
    p.add_argument("--temporal", choices=("on", "off"), default="on",
                   help="video with a denoiser: blend each restored frame into the previous "
                        "output where the scene is still, guided by the noise level, so a "
                        "still background does not shimmer (spec/temporal.py); off: every "
                        "frame on its own (default: on)")
    p.add_argument("--side-by-side", action="store_true",
                   help="write input and output next to each other (default: output only)")
    return p


def _setup(a: argparse.Namespace) -> tuple[Model, str, Manifest | None]:
    """The bitstream's manifest (if any), then the model, checked against it."""
    manifest = None
    if a.bitstream is not None and a.bitstream.is_dir():
        raise HostError(f"--bitstream {str(a.bitstream)!r} is a folder: give the .bit file")
    if a.bitstream is not None:
        mpath = find_manifest(a.bitstream)
        if mpath is not None:
            manifest = load_manifest(mpath)
        if not a.bitstream.is_file() and a.backend in ("auto", "emulate", "verilator"):
            print(f"note: bitstream {str(a.bitstream)!r} is not here; "
                  + ("using its manifest" if manifest else "no manifest beside it either, so "
                     "no bitstream limits apply"), file=sys.stderr)
    model, model_name = choose_model(a.model, a.task, manifest)
    if a.sigma is not None:
        model = _with_sigma(model, model_name, a.sigma)
    if manifest is not None:
        manifest.check_model(model, model_name)
    return model, model_name, manifest


def _with_sigma(model: Model, model_name: str, sigma: int) -> Model:
    """``model`` at noise level ``sigma``; a level it has no channel or no table for is a
    command-line error (past the table the output keeps changing in ways never trained)."""
    if not model.steps.noise_channel:
        raise cli.CommandLineError(f"argument --sigma: model {model_name} has no noise-level "
                                   f"channel: drop --sigma")
    levels = model.steps.noise_levels()
    if sigma not in levels:
        raise cli.CommandLineError(f"argument --sigma: {sigma} is outside the noise levels "
                                   f"{levels.start}..{levels.stop - 1} of model {model_name}")
    return model.with_noise_level(sigma)


def _summary(model: Model, model_name: str, backend, shape, frames: int, elapsed: float) -> str:
    fp = frame_plan(model, backend, *shape)
    sizes = [(t.ys.stop - t.ys.start, t.xs.stop - t.xs.start) for t in fp.tiles]
    cycles = [backend.cycles_per_frame(*hw) for hw in sizes]
    # Slower than the last progress line: it includes x264 encoding the frames it still held
    # (its lookahead) and closing the file.
    text = (f"done: {frames} frames in {elapsed:.2f} s ({frames / max(elapsed, 1e-9):.2f} fps "
            f"with the encoder's flush), backend {backend.name}, model {model_name}")
    if all(c is not None for c in cycles):
        how = "measured" if all(hw in backend.measured_cycles for hw in sizes) else "predicted"
        text += f", {sum(cycles):,} cycles/frame ({len(cycles)} tile(s), {how})"
    return text


def _run(a: argparse.Namespace) -> None:
    model, model_name, manifest = _setup(a)
    source = open_source(a.input, model.image_channels)
    try:
        # The sink first: every check of the output path runs before the backend starts.
        # Decoding starts next, in a thread, so the first frames are ready when the backend
        # (the kernel's constants, or the board's bitstream) is.
        with open_sink(source, a.output, a.overwrite, a.crf) as sink, \
                closing(prefetched(source.frames())) as decoded, \
                open_backend(a.backend, model, manifest, a.bitstream, a.timeout) as backend:
            progress = Progress(source.n_frames)
            inputs: list[tuple[np.ndarray, int | None]] = []  # frames in flight, with pts

            def frames():
                for pixels, pts in decoded:
                    inputs.append((pixels, pts))
                    yield pixels

            def write(item) -> None:
                sink.write(*item)
                progress.update()

            # The kernel here, decoding and x264 in threads beside it; the writer has ended
            # before the sink commits or (on an error or Ctrl-C) removes its file.
            with BackgroundWriter(write) as writer:
                restored = restore_frames(model, backend, frames())
                for out in postprocessed(model, restored, grid=a.grid == "on",
                                         temporal=a.temporal == "on" and source.kind == "video"):
                    before, pts = inputs.pop(0)
                    writer.put((side_by_side(before, out) if a.side_by_side else out, pts))
                writer.finish()
            progress.close()
            path = sink.commit()
    finally:
        source.close()
    print(_summary(model, model_name, backend, before.shape[:2], progress.done,
                   progress.elapsed()), file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (:mod:`gamir.cli`: 0, 1, 2, 130, 143)."""
    parser = _parser()
    a = parser.parse_args(argv)
    # OSError: what the file system refuses that no check foresaw (a name too long, a full disk).
    return cli.run(lambda: _run(a), errors=(HostError, OSError), parser=parser)


if __name__ == "__main__":
    sys.exit(main())
