"""Frames in: a video file (decoded with PyAV), a folder of images, or one image, with limits checked first.

`open_frames` reads only the header, so a two-hour upload is refused before a frame is decoded; the frame
count is checked again while decoding (headers can lie). Frames come out as RGB Pillow images, optionally
thinned to a target rate (`fps`) and shrunk so the long side is at most `max_side` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from sugar.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".gif", ".wmv", ".flv", ".3gp")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FOLDER_FPS = 30.0  # the rate assumed for a folder of frames (NTU and NW-UCLA record at 30 fps)


def is_video_input(path: str | Path) -> bool:
    """A video file, an image, or a folder holding images (and no skeleton files): the pose front end's job."""
    p = Path(path)
    if p.is_dir():
        return any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())
    return p.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES


class InputTooLong(DataError):
    """The input is over the frame or duration limit (the service answers 413 for it, not 422)."""


@dataclass
class Limits:
    """Refuse inputs longer than this (the service sets tighter ones)."""

    max_seconds: float = 600.0
    max_frames: int = 18_000


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@dataclass
class FrameSource:
    """An opened input: what it is, and its frames on demand."""

    path: Path
    fps: float
    frames: int | None  # from the header; None when unknown
    width: int
    height: int
    limits: Limits
    _images: list[Path] | None = None

    def __iter__(self) -> Iterator[Image.Image]:
        if self._images is not None:
            for f in self._images:
                yield _read_image(f)
            return
        yield from self._decode()

    def _decode(self) -> Iterator[Image.Image]:
        n = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    n += 1
                    if n > self.limits.max_frames or n / self.fps > self.limits.max_seconds:
                        raise InputTooLong(self.path, f"video is longer than the limit of {self.limits.max_frames} "
                                                   f"frames / {_clock(self.limits.max_seconds)}; cut it first")
                    yield frame.to_image()
        except DataError:
            raise
        except (av.error.FFmpegError, OSError, ValueError, MemoryError) as exc:
            if n == 0:
                raise DataError(self.path, f"cannot decode video ({_why(exc)})") from None
            return  # a truncated file: keep the frames decoded so far
        if n == 0:
            raise DataError(self.path, "video has no decodable frame")


def _why(exc: Exception) -> str:
    """FFmpeg's or Pillow's reason, without the temporary path and errno the exception text repeats."""
    reason = getattr(exc, "strerror", None) or str(exc).split(": '")[0]
    return str(reason)[:160] or type(exc).__name__


def _read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(path, f"not a readable image ({_why(exc)})") from None


def open_frames(path: str | Path, limits: Limits | None = None, folder_fps: float = FOLDER_FPS) -> FrameSource:
    """Open a video, an image folder or an image; DataError for empty, unreadable or over-long input."""
    p, limits = Path(path), limits or Limits()
    if not p.exists():
        raise DataError(p, "no such file or folder")
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
        if not images:
            raise DataError(p, f"no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        if len(images) > limits.max_frames or len(images) / folder_fps > limits.max_seconds:
            raise InputTooLong(p, f"{len(images)} frames is more than the limit of {limits.max_frames} frames / "
                               f"{_clock(limits.max_seconds)}")
        first = _read_image(images[0])
        return FrameSource(p, folder_fps, len(images), first.width, first.height, limits, images)
    if p.stat().st_size == 0:
        raise DataError(p, "empty file (0 bytes)")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise DataError(p, "no video stream in this file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(30)
            fps = float(rate) if float(rate) > 0 else 30.0
            seconds = None
            if stream.duration and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration:
                seconds = container.duration / av.time_base
            frames = int(stream.frames) or (math.ceil(seconds * fps) if seconds else None)
            width, height = stream.codec_context.width, stream.codec_context.height
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DataError(p, f"not a readable video ({_why(exc)})") from None
    if seconds is not None and seconds > limits.max_seconds:
        raise InputTooLong(p, f"video is {_clock(seconds)} long; the limit is {_clock(limits.max_seconds)}; "
                              "cut it first")
    if frames is not None and frames > limits.max_frames:
        raise InputTooLong(p, f"video has {frames} frames; the limit is {limits.max_frames}; cut it first")
    if not width or not height:
        raise DataError(p, "video stream has no picture size (corrupt header)")
    return FrameSource(p, fps, frames, int(width), int(height), limits)
