"""People followed over frames by position, and the gaps in their tracks filled.

A track keeps the crop its person was last seen in; a new detection joins the lost track whose last crop is
nearest (within two crop sizes), or the nearest lost one when no more people are wanted, else starts a new
track. After the video, the tracks seen in the most frames become persons 0..M-1 and the frames a person was
missed are filled by linear interpolation between the frames around them (before the first and after the
last sighting: the main person is held still, the others are absent, i.e. zero-filled as readers do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sugar.pose.geometry import Roi


@dataclass
class Track:
    """One person: the crop to look in next (None while lost), and what was seen frame by frame."""

    roi: Roi | None
    last_roi: Roi
    seen: dict[int, tuple[np.ndarray, np.ndarray, float]] = field(default_factory=dict)  # t -> image, world, conf


def distance(a: Roi, b: Roi) -> float:
    return math.hypot(a.cx - b.cx, a.cy - b.cy)


def assign(tracks: list[Track], roi: Roi, max_persons: int) -> Track:
    """The track a detection belongs to (an existing lost one nearby, or a new one appended to `tracks`)."""
    lost = [t for t in tracks if t.roi is None]
    if lost:
        nearest = min(lost, key=lambda t: distance(t.last_roi, roi))
        if distance(nearest.last_roi, roi) < 2 * max(nearest.last_roi.size, roi.size) or len(tracks) >= max_persons:
            nearest.roi = roi
            return nearest
    track = Track(roi=roi, last_roi=roi)
    tracks.append(track)
    return track


def fill(values: np.ndarray, known: np.ndarray, hold_edges: bool) -> np.ndarray:
    """values [T, ...] with rows where known[t] is False replaced: interpolated between known rows; before the
    first and after the last known row held (hold_edges) or zero."""
    out = values.copy()
    idx = np.nonzero(known)[0]
    if idx.size == 0:
        return np.zeros_like(values)
    t = np.arange(len(values))
    flat = out.reshape(len(values), -1)
    src = values.reshape(len(values), -1)[idx]
    for k in range(flat.shape[1]):
        flat[:, k] = np.interp(t, idx, src[:, k])
    if not hold_edges:
        flat[: idx[0]] = 0
        flat[idx[-1] + 1:] = 0
    return flat.reshape(values.shape)


def ranges(frames: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9" (for reports)."""
    out: list[str] = []
    for f in frames:
        if out and f == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{f}"
        else:
            out.append(str(f))
    return ", ".join(out)
