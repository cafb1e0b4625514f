"""Small composable steps that turn a Sample's joints [M,T,V,C] into a model input [C,T,V,M].

Every step is a callable `(joints, rng) -> joints` on float32 numpy arrays [M, T, V, C], so steps chain with
`Compose` and randomness always comes from the generator passed in (reproducible per sample and epoch).
Absent persons/frames are zero-filled by the readers; the steps keep them exactly zero (a person's frame
counts as present when any of its coordinates is non-zero), so centring or interpolation never turns
"no one here" into a skeleton at a strange place. Only the first `dims` channels are treated as coordinates
(3 for 3D data; 2 for (x, y, score) data, whose score channel is left alone).

Preprocessing follows SGN / CTR-GCN: centre on the body centre of the first frame, rotate the view so the
hips lie along x and the spine is vertical (y), crop-and-resize in time (random window at training, the
whole sequence at test).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sugar.errors import ConfigError
from sugar.skeleton.layouts import Layout, get_layout

Step = Callable[[np.ndarray, np.random.Generator], np.ndarray]
STREAMS: tuple[str, ...] = ("joint", "bone", "joint_motion", "motion", "bone_motion")  # motion = joint_motion
SAMPLINGS: tuple[str, ...] = ("crop", "random")  # crop-and-resize (CTR-GCN NTU) | random frames (CTR-GCN NW-UCLA)
NORMALIZATIONS: tuple[str, ...] = ("none", "minmax")


def presence(joints: np.ndarray) -> np.ndarray:
    """bool [M, T]: whether each person has any non-zero coordinate in each frame."""
    return np.any(joints != 0, axis=(2, 3))


def _first_present(present: np.ndarray) -> tuple[int, int] | None:
    """(person, frame) of the first frame of the first person that appears at all."""
    for m in range(present.shape[0]):
        frames = np.flatnonzero(present[m])
        if frames.size:
            return m, int(frames[0])
    return None


# --------------------------------------------------------------------------- plain functions


def drop_trailing_zero_frames(joints: np.ndarray) -> np.ndarray:
    """Cut frames at the end in which nobody is present (zero padding of fixed-length exports)."""
    frames = np.flatnonzero(presence(joints).any(axis=0))
    if frames.size == 0:
        return joints[:, :1]
    return joints[:, : frames[-1] + 1]


def pad_persons(joints: np.ndarray, num_persons: int) -> np.ndarray:
    """Keep the first `num_persons` persons (readers order them by importance); zero-fill missing ones."""
    m = joints.shape[0]
    if m == num_persons:
        return joints
    if m > num_persons:
        return joints[:num_persons]
    pad = np.zeros((num_persons - m, *joints.shape[1:]), dtype=joints.dtype)
    return np.concatenate([joints, pad], axis=0)


def body_centre(joints: np.ndarray, layout: Layout, dims: int = 3) -> np.ndarray | None:
    """Centre point [dims] of the first present frame of the first present person (None if all zero)."""
    first = _first_present(presence(joints))
    if first is None:
        return None
    m, t = first
    return joints[m, t, list(layout.centre), :dims].mean(axis=0)


def centre(joints: np.ndarray, layout: Layout, dims: int = 3) -> np.ndarray:
    """Subtract the first frame's body centre from every present person-frame (absent ones stay zero)."""
    origin = body_centre(joints, layout, dims)
    if origin is None:
        return joints
    out = joints.copy()
    mask = presence(joints)
    out[..., :dims][mask] -= origin.astype(joints.dtype)
    return out


def alignment_rotation(joints: np.ndarray, layout: Layout) -> np.ndarray | None:
    """3x3 rotation R (rows = new axes) mapping the first present frame's hip vector to +x and spine to +y.

    The hip vector (right hip -> left hip) becomes exactly parallel to x; the spine (spine base -> spine top)
    is made orthogonal to it and becomes +y; z completes a right-handed frame. None when the frame is
    degenerate (hips or spine of zero length, or parallel).
    """
    first = _first_present(presence(joints))
    if first is None:
        return None
    m, t = first
    frame = joints[m, t, :, :3].astype(np.float64)
    hip = frame[layout.left_hip] - frame[layout.right_hip]
    spine = frame[layout.spine_top] - frame[layout.spine_base]
    hip_len = np.linalg.norm(hip)
    if hip_len < 1e-6:
        return None
    x = hip / hip_len
    y = spine - spine.dot(x) * x
    y_len = np.linalg.norm(y)
    if y_len < 1e-6:
        return None
    y = y / y_len
    z = np.cross(x, y)
    return np.stack([x, y, z])


def rotate(joints: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Apply a 3x3 rotation to the xyz channels (linear, so zero-filled persons stay zero)."""
    out = joints.copy()
    out[..., :3] = joints[..., :3] @ rotation.T.astype(joints.dtype)
    return out


def align(joints: np.ndarray, layout: Layout) -> np.ndarray:
    """SGN-style view alignment (3D only): hips along x, spine vertical, from the first present frame."""
    if joints.shape[-1] < 3:
        return joints
    rotation = alignment_rotation(joints, layout)
    return joints if rotation is None else rotate(joints, rotation)


def random_rotation(rng: np.random.Generator, max_angle: float, axes: str = "xyz") -> np.ndarray:
    """A rotation by uniform random angles in [-max_angle, max_angle] about x, then y, then z (only the
    `axes` named; CTR-GCN's NW-UCLA recipe turns about x and y, never rolling the body over in the image)."""
    ax, ay, az = (rng.uniform(-max_angle, max_angle) if axis in axes else 0.0 for axis in "xyz")
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def crop_window(length: int, rng: np.random.Generator | None, crop: tuple[float, float] | None,
                min_frames: int = 1) -> tuple[int, int]:
    """[start, end) of the frames to keep: everything at test; a random 'crop' fraction window at training."""
    if rng is None or crop is None or length <= 1:
        return 0, length
    lo, hi = crop
    fraction = rng.uniform(lo, hi)
    size = int(np.clip(round(fraction * length), min(min_frames, length), length))
    start = int(rng.integers(0, length - size + 1))
    return start, start + size


def resize_time(joints: np.ndarray, frames: int) -> np.ndarray:
    """Linear interpolation along time to `frames` frames.

    Where a person is absent in one of the two neighbouring source frames, the nearer source frame is used
    instead of blending with zeros, so absent stays absent and present is never pulled towards the origin.
    """
    length = joints.shape[1]
    if length == frames:
        return joints.copy()
    if length == 1:
        return np.repeat(joints, frames, axis=1)
    pos = np.linspace(0.0, length - 1, frames)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, length - 1)
    w = (pos - lo).astype(joints.dtype)[None, :, None, None]
    out = joints[:, lo] * (1 - w) + joints[:, hi] * w
    present = presence(joints)
    both = present[:, lo] & present[:, hi]
    nearest = np.where(pos - lo < 0.5, lo, hi)
    fallback = joints[:, nearest]
    return np.where(both[:, :, None, None], out, fallback).astype(joints.dtype)


def resample(joints: np.ndarray, frames: int, rng: np.random.Generator | None = None,
             crop: tuple[float, float] | None = None) -> np.ndarray:
    """CTR-GCN's valid_crop_resize: crop the valid frames (random window at training) and resize to `frames`."""
    joints = drop_trailing_zero_frames(joints)
    start, end = crop_window(joints.shape[1], rng, crop)
    return resize_time(joints[:, start:end], frames)


def random_frames(joints: np.ndarray, frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """CTR-GCN's NW-UCLA sampling: `frames` random valid frames in temporal order (repeats allowed) at training,
    evenly spaced frames at test. Unlike crop-and-resize, every part of the action can be seen in one clip."""
    joints = drop_trailing_zero_frames(joints)
    length = joints.shape[1]
    if rng is None:
        index = np.linspace(0, length - 1, frames).round().astype(int)
    else:
        index = np.sort(rng.integers(0, length, size=frames))
    return joints[:, index].copy()


def minmax(joints: np.ndarray, dims: int = 3) -> np.ndarray:
    """Per-sequence, per-axis min-max scaling of the coordinates to [-1, 1] over the present person-frames
    (CTR-GCN's NW-UCLA normalisation): removes each recording's distance to the camera and body size."""
    mask = presence(joints)
    if not mask.any():
        return joints
    coords = joints[..., :dims][mask]  # [N, V, dims]
    low = coords.min(axis=(0, 1))
    span = np.maximum(coords.max(axis=(0, 1)) - low, 1e-6)
    out = joints.copy()
    out[..., :dims][mask] = ((coords - low) / span * 2 - 1).astype(joints.dtype)
    return out


def bone(joints: np.ndarray, layout: Layout, dims: int = 3) -> np.ndarray:
    """Bone stream: each joint minus its parent (root joints give zero); absent person-frames stay zero."""
    out = np.zeros_like(joints)
    out[..., dims:] = joints[..., dims:]
    parents = layout.parents()
    for child, parent in enumerate(parents):
        if parent >= 0:
            out[:, :, child, :dims] = joints[:, :, child, :dims] - joints[:, :, parent, :dims]
    return out


def motion(joints: np.ndarray, dims: int = 3) -> np.ndarray:
    """Motion stream: frame t+1 minus frame t; the last frame and frames next to an absence are zero."""
    out = np.zeros_like(joints)
    present = presence(joints)
    both = present[:, 1:] & present[:, :-1]
    diff = joints[:, 1:, :, :dims] - joints[:, :-1, :, :dims]
    out[:, :-1, :, :dims] = np.where(both[:, :, None, None], diff, 0)
    return out


def to_ctvm(joints: np.ndarray) -> np.ndarray:
    """[M,T,V,C] -> contiguous float32 [C,T,V,M], the layout models take."""
    return np.ascontiguousarray(joints.transpose(3, 1, 2, 0), dtype=np.float32)


# --------------------------------------------------------------------------- composable steps


@dataclass(frozen=True)
class DropTrailingZeroFrames:
    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return drop_trailing_zero_frames(joints)


@dataclass(frozen=True)
class PadPersons:
    num_persons: int

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return pad_persons(joints, self.num_persons)


@dataclass(frozen=True)
class Centre:
    layout: Layout
    dims: int = 3

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return centre(joints, self.layout, self.dims)


@dataclass(frozen=True)
class Align:
    layout: Layout

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return align(joints, self.layout)


@dataclass(frozen=True)
class Resample:
    """Fixed length `frames`; with `crop` (training) a random window of that fraction range first."""

    frames: int
    crop: tuple[float, float] | None = None

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return resample(joints, self.frames, rng, self.crop)


@dataclass(frozen=True)
class RandomFrames:
    """Fixed length `frames` by frame sampling: random sorted frames at training (`train`), evenly spaced at test."""

    frames: int
    train: bool = False

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_frames(joints, self.frames, rng if self.train else None)


@dataclass(frozen=True)
class RandomRotate:
    max_angle: float
    axes: str = "xyz"

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.max_angle <= 0 or joints.shape[-1] < 3:
            return joints
        return rotate(joints, random_rotation(rng, self.max_angle, self.axes))


@dataclass(frozen=True)
class MinMax:
    dims: int = 3

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return minmax(joints, self.dims)


@dataclass(frozen=True)
class RandomScale:
    """Stretch each coordinate axis by its own factor in [low, high] (CTR-GCN's random scaling)."""

    low: float
    high: float
    dims: int = 3

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.low == self.high == 1.0:
            return joints
        out = joints.copy()
        out[..., : self.dims] *= rng.uniform(self.low, self.high, size=self.dims).astype(joints.dtype)
        return out


@dataclass(frozen=True)
class Bone:
    layout: Layout
    dims: int = 3

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return bone(joints, self.layout, self.dims)


@dataclass(frozen=True)
class Motion:
    dims: int = 3

    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return motion(joints, self.dims)


@dataclass(frozen=True)
class ToCTVM:
    def __call__(self, joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return to_ctvm(joints)


class Compose:
    """Run steps in order; each gets the same generator, so one seed fixes the whole chain."""

    def __init__(self, steps: Sequence[Step]):
        self.steps = list(steps)

    def __call__(self, joints: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng if rng is not None else np.random.default_rng(0)
        x = np.asarray(joints, dtype=np.float32)
        for step in self.steps:
            x = step(x, rng)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(type(s).__name__ for s in self.steps)
        return f"Compose([{inner}])"


class TransformSettings(Protocol):
    """What build_transform reads: config.DataConfig and processor.TransformSettings both have it."""

    frames: int
    max_persons: int
    centre: bool
    align: bool
    random_crop: tuple[float, float]
    random_rotate: float
    random_scale: tuple[float, float]
    stream: str
    sampling: str
    rotate_axes: str
    normalize: str


def build_transform(cfg: TransformSettings, layout: Layout | str, train: bool, *, dims: int = 3) -> Compose:
    """The standard chain for `cfg`: joints [M,T,V,C] + rng -> float32 [C, cfg.frames, V, cfg.max_persons].

    Training adds the random crop window (cfg.random_crop; or random frames with cfg.sampling = "random"),
    random rotation (cfg.random_rotate about cfg.rotate_axes) and per-axis scaling (cfg.random_scale); test uses
    the whole valid sequence and no randomness. cfg.normalize = "minmax" scales each sequence into [-1, 1] after
    the geometric steps. `dims` = coordinate channels (3 for 3D, 2 for 2D+score).
    """
    layout = get_layout(layout)
    if cfg.frames < 1 or cfg.max_persons < 1:
        raise ConfigError(f"data.frames and data.max_persons must be >= 1 (got {cfg.frames}, {cfg.max_persons})")
    lo, hi = cfg.random_crop
    if not 0 < lo <= hi <= 1:
        raise ConfigError(f"data.random_crop must satisfy 0 < low <= high <= 1, got {cfg.random_crop}")
    scale_lo, scale_hi = cfg.random_scale
    if not 0 < scale_lo <= scale_hi:
        raise ConfigError(f"data.random_scale must satisfy 0 < low <= high, got {cfg.random_scale}")
    stream = cfg.stream
    if stream not in STREAMS:
        raise ConfigError(f"data.stream must be one of {', '.join(STREAMS)}, got {stream!r}")
    if cfg.sampling not in SAMPLINGS:
        raise ConfigError(f"data.sampling must be one of {', '.join(SAMPLINGS)}, got {cfg.sampling!r}")
    if cfg.normalize not in NORMALIZATIONS:
        raise ConfigError(f"data.normalize must be one of {', '.join(NORMALIZATIONS)}, got {cfg.normalize!r}")
    if not cfg.rotate_axes or set(cfg.rotate_axes) - set("xyz"):
        raise ConfigError(f"data.rotate_axes must name some of x, y, z (e.g. 'xy'), got {cfg.rotate_axes!r}")
    steps: list[Step] = [DropTrailingZeroFrames(), PadPersons(cfg.max_persons)]
    if cfg.centre:
        steps.append(Centre(layout, dims))
    if cfg.align and dims == 3:
        steps.append(Align(layout))
    if cfg.sampling == "random":
        steps.append(RandomFrames(cfg.frames, train))
    else:
        steps.append(Resample(cfg.frames, tuple(cfg.random_crop) if train else None))
    if train and cfg.random_rotate > 0 and dims == 3:
        steps.append(RandomRotate(cfg.random_rotate, cfg.rotate_axes))
    if train and (scale_lo, scale_hi) != (1.0, 1.0):
        steps.append(RandomScale(scale_lo, scale_hi, dims))
    if cfg.normalize == "minmax":
        steps.append(MinMax(dims))
    if stream in ("bone", "bone_motion"):
        steps.append(Bone(layout, dims))
    if stream in ("joint_motion", "motion", "bone_motion"):
        steps.append(Motion(dims))
    steps.append(ToCTVM())
    return Compose(steps)
