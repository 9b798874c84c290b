"""Reading and writing frames with PyAV: video files, single images and folders of images.

Every writer is atomic: frames go to a hidden temporary file (or folder) beside the final one,
which is renamed into place only after the last frame was written, so an error or Ctrl-C never
leaves a partial output. Video keeps the input's frame timestamps (hence its frame rate) and
copies its audio stream without re-encoding when the output container accepts it. The same
frames give the same bytes on any machine (a fixed x264 thread count, no creation time).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .errors import HostError

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "DEFAULT_CRF", "Source", "open_source", "Sink",
           "open_sink", "check_output", "default_output"]

#: Image file suffixes read as still images (decoded by PyAV's image2 demuxer).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Video names written: containers that hold H.264 (the encoder every output video uses).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v", ".avi")
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
#: x264's quality setting for output video (51 = worst; 16: visually lossless at a fraction
#: of the size). 0 is lossless: the frames' RGB exactly (libx264rgb, about 7x larger; FFmpeg,
#: VLC and mpv play it, browsers do not), where YUV 4:2:0 at crf 0 still loses the colour
#: subsampling (44 dB on the sample clip).
DEFAULT_CRF = 16
#: x264 slice threads, a fixed number: its default (one slice per CPU the process may use)
#: makes the bytes and even the decoded pixels depend on the machine, on ``taskset`` and on
#: container CPU limits. (Frame threads at a fixed count were not repeatable either: two runs
#: of 4 frames, one on 1 CPU, differed.) x264 caps the slices by the frame's height.
ENCODER_THREADS = 4
#: x264's macroblock-tree rate control off: with it, x264 165 read memory it had not written
#: at some frame sizes (320x240: the bytes and decoded pixels followed ``MALLOC_PERTURB_``, so
#: the same command differed between runs). It costs a few percent of size at the same quality.
X264_PARAMS = "mbtree=0"
#: x264's speed preset. ``veryfast`` rather than its default ``medium``: 2.8x less CPU per
#: frame (8.4 against 23.5 ms at 640x480 on the project's loaded 2-core machine, the restored
#: sample clip at crf 16), for 3 % larger files and 0.3 dB less luma PSNR against the frames
#: encoded (45.2 against 45.5 dB); at ``medium`` x264 took a third of host.run's CPU.
X264_PRESET = "veryfast"


def _conversion_note(fmt: av.VideoFormat, channels: int) -> str | None:
    """What converting pixel format ``fmt`` to the model's channels loses or adds, if anything."""
    alpha = any(c.is_alpha for c in fmt.components)
    gray = sum(not c.is_alpha for c in fmt.components) == 1
    if alpha:
        return "its alpha channel is dropped (the output has none)"
    if gray and channels == 3:
        return "it is gray and the model is RGB: the output is RGB with three equal channels"
    if not gray and channels == 1:
        return "it is in colour and the model is gray: it is converted to gray"
    return None


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


def _jpeg_complete(path: Path) -> bool:
    """The JPEG's end-of-image marker follows its scan data (0xFF is byte-stuffed inside it)."""
    data = path.read_bytes()
    scan = data.find(b"\xff\xda")
    return scan >= 0 and data.find(b"\xff\xd9", scan) >= 0


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
        self._noted: set[str] = set()  # conversion notes already printed
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
            if self._container.format.name == "tty":
                # FFmpeg renders any text file as ANSI art; no one means to restore that.
                self._container.close()
                raise HostError(f"cannot read {str(path)!r}: not a video or image PyAV can "
                                f"decode (it is text)")
            if not self._container.streams.video:
                self._container.close()
                raise HostError(f"{str(path)!r} has no video frames (no video stream: an empty "
                                f"or audio-only file)")
            v = self._container.streams.video[0]
            self.fps = v.average_rate or v.guessed_rate
            self.time_base = v.time_base
            self.audio = self._container.streams.audio[0] if self._container.streams.audio else None
            self.n_frames = self._count_frames()

    def _count_frames(self) -> int:
        """The video's frame count, checked against the container's own before any decoding.

        Demuxing without decoding reads the file once (about a second per GB) and counts the
        video packets, one per frame. A truncated file has fewer than its header promises (the
        frame count in MP4/AVI, the duration in MKV/WebM): refused here, before the work starts.
        The count is also the progress line's total.
        """
        packets, end = 0, 0.0  # video packets; latest end time of any packet (s)
        with self._open(self.path) as c:
            v = c.streams.video[0]
            try:
                for p in c.demux():
                    if p.size and p.pts is not None and p.time_base:
                        end = max(end, float((p.pts + (p.duration or 0)) * p.time_base))
                    packets += p.stream is v and p.size > 0
            except av.FFmpegError as e:
                self.close()
                raise HostError(f"{str(self.path)!r} is corrupt: reading its packets failed "
                                f"({e})") from None
            frames = v.frames
            start = (c.start_time or 0) / 1e6
            duration = (c.duration or 0) / 1e6
        if frames and packets < frames:
            self.close()
            raise HostError(f"{str(self.path)!r} is truncated: {packets} frames of the {frames} "
                            f"its header promises. Nothing was written")
        # MKV/WebM store a duration, not a count: the packets must reach it, within 1.5 frames
        # and 2 % (the longest stream, audio or video, sets the duration).
        slack = max(1.5 / float(self.fps or 1), 0.02 * duration)
        if not frames and duration and end - start < duration - slack:
            self.close()
            raise HostError(f"{str(self.path)!r} is truncated: its packets end at "
                            f"{end - start:.2f} s of the {duration:.2f} s its header promises "
                            f"({packets} frames). Nothing was written")
        if packets == 0:
            self.close()
            raise HostError(f"{str(self.path)!r} has no frames (empty or corrupt video)")
        return packets

    def _note(self, frame: av.VideoFrame, where: str) -> None:
        note = _conversion_note(frame.format, self.channels)
        if note is not None and note not in self._noted:
            self._noted.add(note)
            print(f"note: {where}: {note}", file=sys.stderr)

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
                    pixels = _frame_array(frame, self.channels, str(f))  # refuses before a note
                    self._note(frame, str(f))
                    yield pixels, None
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
                    pixels = _frame_array(frame, self.channels, f"{self.path} frame {count}")
                    if count == 1:
                        self._note(frame, str(self.path))
                    yield pixels, frame.pts
        except av.FFmpegError as e:
            raise HostError(f"{str(self.path)!r} is corrupt: decoding failed after {count} "
                            f"frames ({e})") from None
        if count < self.n_frames:
            raise HostError(f"{str(self.path)!r} is corrupt: {self.n_frames} frames stored, only "
                            f"{count} decoded. Nothing was written")

    @staticmethod
    def _first_frame(c, f: Path) -> av.VideoFrame:
        # A still image is decoded strictly: FFmpeg otherwise conceals a damaged or cut-off
        # picture (grey blocks) and says nothing. (Its TIFF decoder turns harmless warnings into
        # errors under "explode"; a cut-off TIFF fails without it.)
        if c.streams.video:
            strict = "crccheck" if f.suffix.lower() in (".tif", ".tiff") else "explode+crccheck"
            c.streams.video[0].codec_context.options = {"err_detect": strict}
        if f.suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(f):
            raise HostError(f"image {str(f)!r} is truncated (no end-of-image marker)")
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
    try:
        os.stat(p)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise HostError(f"input {str(p)!r}: {e.strerror}") from None
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


def _same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are one file (or folder): same inode, so links and ``./`` forms count."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(source: Source, final: Path, overwrite: bool = False) -> None:
    """Everything about the output path that can fail, checked before any work starts.

    The rule for files and folders alike: existing data is never replaced unless ``overwrite``
    (``--overwrite``); then a file is replaced, and in a folder the images of the same names are
    (other files stay). An empty existing folder holds no data and is used as it is. The
    output is never the input, whatever the path's spelling (``./``, links).
    """
    name = repr(str(final))
    suffix = final.suffix.lower()
    try:
        os.lstat(final)
    except FileNotFoundError:
        pass
    except OSError as e:  # a name too long, a file where a folder should be, a loop of links
        raise HostError(f"output {name}: {e.strerror}") from None
    if source.kind == "folder":
        if final.exists() and not final.is_dir():
            raise HostError(f"output {name} is a file: a folder of images is written to a "
                            f"folder, give a folder name with -o")
        if not final.exists() and suffix in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            raise HostError(f"output {name} is a file name: a folder of images is written to "
                            f"a folder, give a folder name with -o")
    else:
        what = "an image" if source.kind == "image" else "a video"
        if final.is_dir() or final.name in ("", "..") or str(final).endswith(os.sep):
            raise HostError(f"output {name} is a folder: {what} is written to a file, give a "
                            f"file name with -o")
        allowed = tuple(_IMAGE_CODECS) if source.kind == "image" else VIDEO_SUFFIXES
        if suffix not in allowed:
            raise HostError(f"cannot write {what} as {name}: {what} is written as "
                            f"{', '.join(allowed[:-1])} or {allowed[-1]}")
    if _same_file(final, source.path):
        raise HostError(f"output {name} is the input itself: choose another name with -o")
    parent = final.parent
    if not parent.is_dir():
        raise HostError(f"output folder {str(parent)!r} does not exist: create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HostError(f"output folder {str(parent)!r} is not writable (permission denied)")
    exists = os.path.lexists(final) and not (final.is_dir() and not any(final.iterdir()))
    if exists and not overwrite:
        raise HostError(f"output {name} exists: pass --overwrite to replace it, or choose "
                        f"another name with -o")
    if source.kind == "folder" and final.is_dir():
        for f in source.files:
            if _same_file(final / f"{f.stem}.png", f):
                raise HostError(f"output {name} would replace the input image {str(f)!r}: "
                                f"choose another folder with -o")


def _refusal(e: OSError) -> str:
    """Why a folder that exists refused a new file, in its user's words: a virtual file system
    (``/proc``) answers "no such file" for a name it will not create."""
    if e.errno == errno.ENOENT:
        return "it is not writable: its file system does not take new files"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"it is not writable: {e.strerror}"
    return e.strerror or str(e)


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

    def __init__(self, source: Source, final: Path, overwrite: bool = False,
                 crf: int = DEFAULT_CRF):
        check_output(source, final, overwrite)
        self.source, self.final, self.crf = source, final, crf
        self.temp = _temp_path(Path(os.path.abspath(final)))  # `-o .` has no name of its own
        self._out = None
        self._video = None
        self._audio = None
        self._backlog: list = []  # audio packets demuxed before the video stream exists
        self._count = 0
        # Make the temporary output now: a folder that cannot take it fails here, not after
        # the last frame (x264 buffers frames; the muxer opens its file only at the first).
        try:
            if source.kind == "folder":
                self.temp.mkdir()
            else:
                self.temp.open("xb").close()
        except OSError as e:
            raise HostError(f"cannot write in output folder {str(final.parent)!r} "
                            f"({_refusal(e)})") from None
        if source.kind == "video":
            try:
                self._out = av.open(str(self.temp), "w")
            except (av.FFmpegError, ValueError) as e:
                self.abort()
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
        s = self._out.add_stream("libx264rgb" if self.crf == 0 else "libx264", rate=src.fps)
        s.width, s.height = w, h
        # 4:2:0 needs even sizes; odd sizes keep full chroma rather than being cropped.
        s.pix_fmt = ("rgb24" if self.crf == 0 else
                     "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p")
        s.options = {"crf": str(self.crf), "preset": X264_PRESET, "x264-params": X264_PARAMS}
        s.thread_type, s.thread_count = "SLICE", ENCODER_THREADS
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
        """Finish the output and move it into place; one error names what failed."""
        try:
            if self._out is not None:
                if self._video is not None:
                    self._out.mux(self._video.encode(None))
                self._out.close()
                self._out = None
            if self.source.kind == "folder" and self.final.is_dir():
                # --overwrite (or an empty folder): the images move in one by one, each atomic.
                for f in sorted(self.temp.iterdir()):
                    os.replace(f, self.final / f.name)
                self.temp.rmdir()
            else:
                os.replace(self.temp, self.final)
        except (av.FFmpegError, OSError) as e:
            raise HostError(f"cannot write {str(self.final)!r} "
                            f"({getattr(e, 'strerror', None) or e})") from None
        return self.final

    def abort(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError, ValueError):
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


def open_sink(source: Source, output: str | os.PathLike | None, overwrite: bool = False,
              crf: int = DEFAULT_CRF) -> Sink:
    """An atomic writer for ``source``'s restored frames at ``output`` (default beside input);
    ``crf``: the video's x264 quality."""
    final = Path(output) if output is not None else default_output(source)
    return Sink(source, final, overwrite, crf)
