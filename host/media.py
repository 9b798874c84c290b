"""Reading and writing frames with PyAV: video files, single images and folders of images.

Every writer is atomic: frames go to a hidden temporary file (or folder) beside the final one,
which is renamed into place only after the last frame was written, so an error or Ctrl-C never
leaves a partial output. Video keeps the input's frame timestamps (hence its frame rate) and
copies its audio stream without re-encoding when the output container accepts it.
"""

from __future__ import annotations

import os
import shutil
import sys
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .errors import HostError

__all__ = ["IMAGE_SUFFIXES", "Source", "open_source", "Sink", "open_sink", "default_output"]

#: Image file suffixes read as still images (decoded by PyAV's image2 demuxer).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Encoder and pixel format for each image suffix we write (PNG is the lossless default).
_IMAGE_CODECS = {
    ".png": ("png", {1: "gray", 3: "rgb24"}),
    ".jpg": ("mjpeg", {1: "yuvj444p", 3: "yuvj444p"}),
    ".jpeg": ("mjpeg", {1: "yuvj444p", 3: "yuvj444p"}),
    ".bmp": ("bmp", {1: "gray", 3: "bgr24"}),
    ".tif": ("tiff", {1: "gray", 3: "rgb24"}),
    ".tiff": ("tiff", {1: "gray", 3: "rgb24"}),
}
_NDARRAY_FORMAT = {1: "gray", 3: "rgb24"}


def _frame_array(frame: av.VideoFrame, channels: int, where: str) -> np.ndarray:
    """(H, W, channels) uint8 pixels of ``frame``; refuses samples deeper than 8 bits."""
    fmt = frame.format
    deep = max((c.bits for c in fmt.components), default=0)
    if deep > 8:
        raise HostError(
            f"{where}: pixel format {fmt.name!r} has {deep}-bit samples; gamir models take 8-bit "
            f"pixels. Convert first, e.g. `ffmpeg -i IN -pix_fmt yuv420p OUT.mp4` (video) or "
            f"save the image with 8 bits per channel"
        )
    try:
        a = frame.to_ndarray(format=_NDARRAY_FORMAT[channels])
    except (av.FFmpegError, ValueError) as e:
        raise HostError(f"{where}: cannot convert pixel format {fmt.name!r} to "
                        f"{_NDARRAY_FORMAT[channels]} ({e})") from None
    return a.reshape(a.shape[0], a.shape[1], channels)


class Source:
    """Frames of one input: a video, an image, or the sorted images of a folder.

    ``frames()`` yields (H, W, channels) uint8 arrays; ``audio_packets`` (video only) receives
    the demuxed audio packets as they pass, for the sink to copy.
    """

    def __init__(self, path: Path, channels: int):
        if channels not in _NDARRAY_FORMAT:
            raise HostError(f"models with {channels} image channels cannot read video or "
                            f"images (1 = gray and 3 = RGB are supported)")
        self.path, self.channels = path, channels
        self.files: list[Path] = []
        self.fps: Fraction | None = None
        self.time_base: Fraction | None = None
        self.n_frames: int | None = None
        self.audio = None  # the input's first audio stream, if any
        self.on_audio = None  # callable(packet) set by whoever copies audio
        if path.is_dir():
            self.kind = "folder"
            self.files = sorted(p for p in path.iterdir()
                                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not self.files:
                raise HostError(f"folder {str(path)!r} has no images "
                                f"({', '.join(IMAGE_SUFFIXES)})")
            self.n_frames = len(self.files)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            self.kind = "image"
            self.files = [path]
            self.n_frames = 1
        else:
            self.kind = "video"
        self._container = None
        if self.kind == "video":
            self._container = self._open(path)
            if not self._container.streams.video:
                self._container.close()
                raise HostError(f"{str(path)!r} has no video frames (no video stream: an empty "
                                f"or audio-only file)")
            v = self._container.streams.video[0]
            self.fps = v.average_rate or v.guessed_rate
            self.time_base = v.time_base
            self.n_frames = v.frames or None
            if self.n_frames is None and v.duration and self.fps:
                self.n_frames = round(v.duration * v.time_base * self.fps)
            self.audio = self._container.streams.audio[0] if self._container.streams.audio else None

    @staticmethod
    def _open(path: Path):
        try:
            return av.open(str(path))
        except FileNotFoundError:
            raise HostError(f"input {str(path)!r} does not exist") from None
        except PermissionError:
            raise HostError(f"input {str(path)!r} is not readable (permission denied)") from None
        except (av.FFmpegError, OSError) as e:
            raise HostError(f"cannot read {str(path)!r}: not a video or image PyAV can decode "
                            f"({getattr(e, 'strerror', None) or e})") from None

    def frames(self) -> Iterator[tuple[np.ndarray, int | None]]:
        """(pixels, pts) for each frame in order; pts is None for images."""
        if self.kind != "video":
            for f in self.files:
                with self._open(f) as c:
                    frame = self._first_frame(c, f)
                    yield _frame_array(frame, self.channels, str(f)), None
            return
        c = self._container
        streams = [c.streams.video[0]] + ([self.audio] if self.audio is not None else [])
        count = 0
        try:
            for packet in c.demux(streams):
                if packet.stream.type == "audio":
                    if self.on_audio is not None and packet.dts is not None:
                        self.on_audio(packet)
                    continue
                for frame in packet.decode():
                    count += 1
                    yield _frame_array(frame, self.channels, f"{self.path} frame {count}"), frame.pts
        except av.FFmpegError as e:
            raise HostError(f"{str(self.path)!r} is corrupt: decoding failed after {count} "
                            f"frames ({e})") from None
        if count == 0:
            raise HostError(f"{str(self.path)!r} has no frames (empty or corrupt video)")

    @staticmethod
    def _first_frame(c, f: Path) -> av.VideoFrame:
        try:
            for frame in c.decode(video=0):
                return frame
        except av.FFmpegError as e:
            raise HostError(f"cannot decode image {str(f)!r} ({e})") from None
        raise HostError(f"image {str(f)!r} has no picture (empty or corrupt file)")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def open_source(path: str | os.PathLike, channels: int) -> Source:
    """Open ``path`` (video, image or folder of images) for frames with ``channels`` channels."""
    p = Path(path)
    if not p.exists():
        raise HostError(f"input {str(p)!r} does not exist")
    if not p.is_dir() and not os.access(p, os.R_OK):
        raise HostError(f"input {str(p)!r} is not readable (permission denied)")
    return Source(p, channels)


def default_output(source: Source) -> Path:
    """Beside the input: ``NAME_restored.mp4`` (video), ``NAME_restored.png``, ``DIR_restored/``."""
    p = source.path
    if source.kind == "folder":
        return p.with_name(p.name.rstrip("/") + "_restored")
    if source.kind == "image":
        return p.with_name(p.stem + "_restored.png")
    return p.with_name(p.stem + "_restored.mp4")


def _temp_path(final: Path) -> Path:
    # Hidden, same folder (so the final rename is atomic), suffix kept (FFmpeg picks the muxer
    # from it).
    return final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")


def _write_image(path: Path, pixels: np.ndarray, suffix: str) -> None:
    codec, fmts = _IMAGE_CODECS[suffix]
    h, w, c = pixels.shape
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels.reshape(h, w) if c == 1 else pixels),
                                       format=_NDARRAY_FORMAT[c])
    with av.open(str(path), "w", format="image2") as out:
        s = out.add_stream(codec)
        s.width, s.height, s.pix_fmt = w, h, fmts[c]
        out.mux(s.encode(frame.reformat(format=fmts[c])))
        out.mux(s.encode(None))


class Sink:
    """Atomic writer for the restored frames of one :class:`Source`.

    Frames are written with :meth:`write`; :meth:`commit` renames the temporary output into
    place, :meth:`abort` deletes it. Used as a context manager, an exception aborts.
    """

    def __init__(self, source: Source, final: Path):
        self.source, self.final = source, final
        self.temp = _temp_path(final)
        self._out = None
        self._video = None
        self._audio = None
        self._backlog: list = []  # audio packets demuxed before the video stream exists
        self._count = 0
        if source.kind == "folder":
            if final.exists() and (not final.is_dir() or any(final.iterdir())):
                raise HostError(f"output folder {str(final)!r} exists and is not empty: "
                                f"choose another with -o")
        elif final.is_dir():
            raise HostError(f"output {str(final)!r} is a folder: give a file name with -o")
        if not final.parent.is_dir():
            raise HostError(f"output folder {str(final.parent)!r} does not exist")
        suffix = final.suffix.lower()
        if source.kind == "image" and suffix not in _IMAGE_CODECS:
            raise HostError(f"cannot write an image as {suffix or 'no suffix'!r}: use one of "
                            f"{', '.join(_IMAGE_CODECS)}")
        if source.kind == "folder":
            self.temp.mkdir()
        elif source.kind == "video":
            try:
                self._out = av.open(str(self.temp), "w")
            except (av.FFmpegError, ValueError) as e:
                raise HostError(f"cannot write video {str(final)!r} ({e}): use a .mp4 or .mkv "
                                f"name") from None
            if source.audio is not None:
                self._add_audio(source.audio)

    def _add_audio(self, stream) -> None:
        try:
            self._audio = self._out.add_stream_from_template(stream)
        except (av.FFmpegError, ValueError) as e:
            print(f"warning: audio ({stream.codec_context.name}) cannot go into "
                  f"{self.final.suffix}: dropped ({e}); use -o NAME.mkv to keep it",
                  file=sys.stderr)
            return
        self.source.on_audio = self._mux_audio

    def _mux_audio(self, packet) -> None:
        # The container header is written at the first mux, so audio waits until the video
        # stream (whose size is known only from the first restored frame) has been added.
        packet.stream = self._audio
        if self._video is None:
            self._backlog.append(packet)
            return
        try:
            self._out.mux(packet)
        except av.FFmpegError as e:
            raise HostError(f"cannot write the audio into {str(self.final)!r} ({e}); try "
                            f"-o NAME.mkv") from None

    def _open_video(self, h: int, w: int) -> None:
        src = self.source
        s = self._out.add_stream("libx264", rate=src.fps)
        s.width, s.height = w, h
        # 4:2:0 needs even sizes; odd sizes keep full chroma rather than being cropped.
        s.pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
        s.options = {"crf": "16"}
        if src.time_base is not None:
            s.time_base = src.time_base
        self._video = s
        for packet in self._backlog:
            self._out.mux(packet)
        self._backlog.clear()

    def write(self, pixels: np.ndarray, pts: int | None = None) -> None:
        try:
            self._write(pixels, pts)
        except (av.FFmpegError, OSError) as e:
            raise HostError(f"cannot write {str(self.final)!r} ({e}); another container "
                            f"(-o NAME.mkv) or folder may work") from None

    def _write(self, pixels: np.ndarray, pts: int | None) -> None:
        h, w, c = pixels.shape
        self._count += 1
        if self.source.kind == "image":
            _write_image(self.temp, pixels, self.final.suffix.lower())
            return
        if self.source.kind == "folder":
            name = self.source.files[self._count - 1].stem + ".png"
            _write_image(self.temp / name, pixels, ".png")
            return
        if self._video is None:
            self._open_video(h, w)
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(pixels.reshape(h, w) if c == 1 else pixels),
            format=_NDARRAY_FORMAT[c])
        if pts is not None:
            frame.pts = pts
            frame.time_base = self.source.time_base
        self._out.mux(self._video.encode(frame))

    def commit(self) -> Path:
        if self._out is not None:
            if self._video is not None:
                self._out.mux(self._video.encode(None))
            self._out.close()
            self._out = None
        if self.source.kind == "folder" and self.final.is_dir():
            self.final.rmdir()  # checked empty in __init__
        os.replace(self.temp, self.final)
        return self.final

    def abort(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError):
                pass  # the file is deleted next; a half-written trailer does not matter
            self._out = None
        if self.temp.is_dir():
            shutil.rmtree(self.temp, ignore_errors=True)
        elif self.temp.exists():
            self.temp.unlink()

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def open_sink(source: Source, output: str | os.PathLike | None) -> Sink:
    """An atomic writer for ``source``'s restored frames at ``output`` (default beside input)."""
    return Sink(source, Path(output) if output is not None else default_output(source))
