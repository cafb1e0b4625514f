"""Frames -> a skeleton sequence in the blazepose33 layout: detection, landmarks, tracking, gap filling.

`estimate(path, options)` returns a `PoseResult` holding, per person and frame, the landmarks in pixels
(x, y, visibility), in metres (world coordinates placed in the camera frame), the per-frame confidence
(MediaPipe's presence score) and which frames were filled; `result.sample()` gives the `Sample` every reader
gives. World coordinates use the axes of the Kinect datasets (x toward the image's left, y up, z away from
the camera) so that models trained on NTU or NW-UCLA read them the right way round; MediaPipe's own are x
right, y down, a 180-degree turn about the camera axis (a rotation, not a mirror).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from sugar.errors import DataError, LayoutError
from sugar.pose.blazepose import NUM_LANDMARKS, PoseDetector, PoseLandmarker
from sugar.pose.frames import Limits, open_frames
from sugar.pose.tracking import Track, assign, fill, ranges
from sugar.skeleton.layouts import Layout, conversion_matrix, get_layout
from sugar.skeleton.sample import Sample

LAYOUT = "blazepose33"
COORDS = ("world", "image")
FIELD_OF_VIEW = math.radians(60)  # assumed horizontal field of view when placing the body in the camera frame
KINECT_AXES = np.array([-1.0, -1.0, 1.0], np.float32)


@dataclass(frozen=True)
class PoseOptions:
    """How to turn frames into skeletons.

    coords: "world" (x, y, z metres) or "image" (x, y pixels, visibility), whichever the model was trained on.
    max_persons: people to track. fps: thin the video to this rate (None: every frame). redetect_every: frames
    between detector runs looking for more people while fewer than max_persons are tracked. keep_frames: keep
    up to this many frames (shrunk to frame_width) for drawing the skeleton over them.
    """

    coords: str = "world"
    max_persons: int = 1
    fps: float | None = None
    min_presence: float = 0.5
    redetect_every: int = 10
    threads: int = 2
    limits: Limits = field(default_factory=Limits)
    keep_frames: int = 0
    frame_width: int = 480

    def __post_init__(self) -> None:
        if self.coords not in COORDS:
            raise DataError(None, f"pose coordinates {self.coords!r}: choose one of {', '.join(COORDS)}")
        if self.max_persons < 1:
            raise DataError(None, "max_persons must be at least 1")
        if self.fps is not None and self.fps <= 0:
            raise DataError(None, "fps must be positive")

    @classmethod
    def for_layout(cls, layout: Layout | str, dims: int = 3, max_persons: int = 1, **kwargs: Any) -> PoseOptions:
        """Options for a model with this layout and coordinate count (3: metres, 2: x, y, score); LayoutError
        up front when the layout's joints cannot be computed from BlazePose's landmarks."""
        target = get_layout(layout)
        try:
            conversion_matrix(LAYOUT, target)
        except LayoutError as exc:
            raise LayoutError(f"video input cannot feed this model: {exc}") from None
        return cls(coords="world" if dims == 3 else "image", max_persons=max(1, int(max_persons)), **kwargs)


@dataclass
class PoseResult:
    """What the pose front end found in one input (see the module docstring)."""

    name: str
    path: Path
    fps: float
    width: int
    height: int
    image: np.ndarray  # [M, T, 33, 3] x, y pixels, visibility
    world: np.ndarray  # [M, T, 33, 3] metres, Kinect axes
    confidence: np.ndarray  # [M, T] presence score, 0 where the person was not seen
    filled: list[list[int]]  # per person: frames filled by interpolation (or held)
    absent: list[list[int]]  # per person: frames before/after their sightings (zero-filled)
    frames: list[tuple[int, Image.Image]] = field(default_factory=list)  # kept frames (index, shrunk image)

    @property
    def num_frames(self) -> int:
        return int(self.image.shape[1])

    @property
    def kept_fps(self) -> float:
        """The rate at which the kept frames play back at the video's speed."""
        step = self.frames[1][0] - self.frames[0][0] if len(self.frames) > 1 else 1
        return self.fps / step

    def report(self) -> dict[str, Any]:
        """A JSON-able summary: what was read, how sure, which frames were filled."""
        return {"source": str(self.path), "fps": round(self.fps, 3), "size": [self.width, self.height],
                "frames": self.num_frames, "persons": int(self.image.shape[0]),
                "mean_confidence": [round(float(c[c > 0].mean()) if (c > 0).any() else 0.0, 4)
                                    for c in self.confidence],
                "filled_frames": [ranges(f) for f in self.filled],
                "absent_frames": [ranges(a) for a in self.absent]}

    def sample(self, coords: str = "world", label: int | None = None) -> Sample:
        """The skeletons as a Sample; meta keeps the report, the per-frame confidence [M, T] and, under "video",
        this result (kept frames and pixel landmarks, for drawing the answer over the video)."""
        joints = self.world if coords == "world" else self.image
        meta = {"layout": LAYOUT, "path": str(self.path), "coords": coords, "pose": self.report(),
                "confidence": self.confidence, "video": self}
        return Sample(self.name, np.ascontiguousarray(joints, np.float32), label, meta).validate(source=self.path)


def camera_translation(pixels: np.ndarray, world: np.ndarray, weight: np.ndarray, width: int,
                       height: int) -> np.ndarray:
    """t such that world + t projects onto the pixels through a pinhole camera with FIELD_OF_VIEW (MediaPipe's
    world landmarks are centred on the hips; this puts the body where it stands). Weighted least squares."""
    f = 0.5 * max(width, height) / math.tan(FIELD_OF_VIEW / 2)
    u, v = pixels[:, 0] - width / 2, pixels[:, 1] - height / 2
    x, y, z = world[:, 0], world[:, 1], world[:, 2]
    zeros, ones = np.zeros_like(u), np.ones_like(u)
    a = np.concatenate([np.stack([f * ones, zeros, -u], 1), np.stack([zeros, f * ones, -v], 1)])
    b = np.concatenate([u * z - f * x, v * z - f * y])
    w = np.sqrt(np.concatenate([weight, weight]) + 1e-3)[:, None]
    t, *_ = np.linalg.lstsq(a * w, b * w[:, 0], rcond=None)
    t[2] = max(float(t[2]), 0.5)  # the body is in front of the camera
    return t.astype(np.float32)


class PoseEstimator:
    """The two BlazePose networks, loaded once and reused for many inputs (the service keeps one). A LiteRT
    interpreter must not run in two threads at once, so `estimate` holds a lock: safe from worker threads."""

    def __init__(self, threads: int = 2):
        self.detector = PoseDetector(threads)
        self.landmarker = PoseLandmarker(threads)
        self._lock = threading.Lock()

    def estimate(self, path: str | Path, options: PoseOptions | None = None, progress: bool = False,
                 name: str | None = None) -> PoseResult:
        """Track people through one video, image folder or image; DataError when nobody is found."""
        with self._lock:
            return self._estimate(path, options or PoseOptions(), progress, name)

    def _estimate(self, path: str | Path, opts: PoseOptions, progress: bool, name: str | None) -> PoseResult:
        source = open_frames(path, opts.limits)
        step = max(1.0, source.fps / opts.fps) if opts.fps else 1.0
        fps = source.fps / step
        expected = math.ceil(source.frames / step) if source.frames else None
        keep_every = max(1, math.ceil((expected or opts.keep_frames) / opts.keep_frames)) if opts.keep_frames else 0
        tracks: list[Track] = []
        kept: list[tuple[int, Image.Image]] = []
        last_detect, t, next_take = -10**9, 0, 0.0
        bar = tqdm(total=expected, disable=not progress, unit="frame", desc=name or source.path.name, leave=False)
        try:
            for i, image in enumerate(source):
                if i < next_take - 1e-6:
                    continue
                next_take += step
                active = [tr for tr in tracks if tr.roi is not None]
                if len(active) < opts.max_persons and (not active or t - last_detect >= opts.redetect_every):
                    last_detect = t
                    self._find_people(image, tracks, active, opts.max_persons)
                for tr in [tr for tr in tracks if tr.roi is not None]:
                    self._follow(image, tr, t, opts.min_presence, source.width, source.height)
                if keep_every and t % keep_every == 0:
                    kept.append((t, _shrink(image, opts.frame_width)))
                    if len(kept) >= 2 * opts.keep_frames:  # more frames than the header said: keep half as many
                        kept, keep_every = kept[::2], keep_every * 2
                t += 1
                bar.update(1)
        finally:
            bar.close()
        if t == 0:
            raise DataError(source.path, "no frames")
        if opts.keep_frames and len(kept) > opts.keep_frames:
            kept = kept[:: math.ceil(len(kept) / opts.keep_frames)]
        return _assemble(name or source.path.stem, source.path, fps, source.width, source.height, tracks, t,
                         opts.max_persons, kept)

    def _find_people(self, image: Image.Image, tracks: list[Track], active: list[Track], wanted: int) -> None:
        for _, roi in self.detector.detect(image):
            if len(active) >= wanted:
                return
            if any(tr.roi is not None and roi.iou(tr.roi) > 0.3 for tr in active):
                continue  # someone already tracked
            active.append(assign(tracks, roi, wanted))

    def _follow(self, image: Image.Image, track: Track, t: int, min_presence: float, width: int,
                height: int) -> None:
        assert track.roi is not None
        found = self.landmarker.landmarks(image, track.roi)
        if found.presence < min_presence:
            track.roi = None
            return
        pixels = np.concatenate([found.image[:, :2], found.visibility[:, None]], 1)
        world = found.world + camera_translation(found.image, found.world, found.visibility, width, height)
        track.seen[t] = (pixels, world * KINECT_AXES, found.presence)
        track.last_roi = track.roi
        track.roi = found.next_roi


def _shrink(image: Image.Image, width: int) -> Image.Image:
    if image.width <= width:
        return image.copy()
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.BILINEAR)


def _assemble(name: str, path: Path, fps: float, width: int, height: int, tracks: list[Track], frames: int,
              max_persons: int, kept: list[tuple[int, Image.Image]]) -> PoseResult:
    found = sorted((tr for tr in tracks if tr.seen), key=lambda tr: len(tr.seen), reverse=True)[:max_persons]
    if not found:
        raise DataError(path, f"no person found in any of its {frames} frames")
    m = len(found)
    image = np.zeros((m, frames, NUM_LANDMARKS, 3), np.float32)
    world = np.zeros_like(image)
    conf = np.zeros((m, frames), np.float32)
    filled, absent = [], []
    for p, tr in enumerate(found):
        known = np.zeros(frames, bool)
        for t, (px, w, c) in tr.seen.items():
            image[p, t], world[p, t], conf[p, t], known[t] = px, w, c, True
        image[p] = fill(image[p], known, hold_edges=p == 0)
        world[p] = fill(world[p], known, hold_edges=p == 0)
        idx = np.nonzero(known)[0]
        inside = [int(t) for t in range(idx[0], idx[-1] + 1) if not known[t]]
        outside = [int(t) for t in range(frames) if t < idx[0] or t > idx[-1]]
        filled.append(sorted(inside + outside) if p == 0 else inside)
        absent.append([] if p == 0 else outside)
    return PoseResult(name, path, fps, width, height, image, world, conf, filled, absent, kept)
