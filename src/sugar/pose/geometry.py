"""Rotated square regions of a frame, and the detector's anchors and box decoding, in numpy.

MediaPipe's pose graph runs its models on rotated square crops: the detector on the whole frame letterboxed
to 224 x 224, the landmark model on a crop centred on the hips and turned so the body stands upright. A crop
is a `Roi` in pixels; `crop` samples it with one affine warp (Pillow) and `to_frame` maps crop coordinates
back, so both directions use the same transform by construction. The anchor and decoding settings are those
of MediaPipe's pose_detection graph (SSD anchors over 5 layers with strides 8, 16, 32, 32, 32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

ROI_SCALE = 1.25  # MediaPipe enlarges the body box by this much before cropping


@dataclass(frozen=True)
class Roi:
    """A square region of a frame: centre and side in pixels, rotation in radians (crop-up -> body-up)."""

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def affine(self, n: int) -> tuple[float, ...]:
        """Pillow's AFFINE data mapping output pixel (u, v) of an n x n crop to frame pixels."""
        c, s, k = math.cos(self.angle), math.sin(self.angle), self.size / n
        return (c * k, -s * k, self.cx - 0.5 * self.size * (c - s),
                s * k, c * k, self.cy - 0.5 * self.size * (s + c))

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Crop-normalised points [..., 2] (0..1) -> frame pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        d = (xy - 0.5) * self.size
        return np.stack([self.cx + c * d[..., 0] - s * d[..., 1], self.cy + s * d[..., 0] + c * d[..., 1]], -1)

    def rotate(self, xyz: np.ndarray) -> np.ndarray:
        """Vectors [..., 3] turned by the crop's rotation about the camera axis (world landmarks)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        out = xyz.copy()
        out[..., 0] = c * xyz[..., 0] - s * xyz[..., 1]
        out[..., 1] = s * xyz[..., 0] + c * xyz[..., 1]
        return out

    def iou(self, other: Roi) -> float:
        """Overlap of the two regions' axis-aligned squares (rotation ignored: enough to match people)."""
        a, b = self.box(), other.box()
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = self.size ** 2 + other.size ** 2 - inter
        return inter / union if union > 0 else 0.0

    def box(self) -> tuple[float, float, float, float]:
        h = self.size / 2
        return self.cx - h, self.cy - h, self.cx + h, self.cy + h


def whole_frame(width: int, height: int) -> Roi:
    """The frame letterboxed into a square (the detector's view)."""
    return Roi(width / 2, height / 2, float(max(width, height)))


def crop(image: Image.Image, roi: Roi, n: int) -> np.ndarray:
    """uint8 [n, n, 3] crop of an RGB image; outside the frame is black (as MediaPipe pads)."""
    out = image.transform((n, n), Image.Transform.AFFINE, roi.affine(n), resample=Image.Resampling.BILINEAR,
                          fillcolor=(0, 0, 0))
    return np.asarray(out)


def roi_from_points(start: np.ndarray, end: np.ndarray) -> Roi:
    """MediaPipe's body region from two points in pixels: the hip centre and a point on the circle around the
    body. Centred on the hips, side 2 x radius x 1.25, turned so that start -> end points up."""
    dx, dy = float(end[0] - start[0]), float(end[1] - start[1])
    angle = math.pi / 2 - math.atan2(-dy, dx)
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    return Roi(float(start[0]), float(start[1]), 2 * math.hypot(dx, dy) * ROI_SCALE, angle)


def ssd_anchors(size: int = 224, strides: tuple[int, ...] = (8, 16, 32, 32, 32)) -> np.ndarray:
    """Anchor centres [N, 2] (x, y, normalised) in the detector's output order: layers that share a stride
    are merged, two anchors per cell per layer (fixed size 1, so only the centres matter)."""
    out = []
    i = 0
    while i < len(strides):
        stride, per_cell = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            per_cell += 2  # aspect ratio 1.0 plus the interpolated scale
            i += 1
        cells = math.ceil(size / stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], -1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """One detected person: score, box (x0, y0, x1, y1) and the 4 keypoints [4, 2], normalised to the
    detector's square input."""

    score: float
    box: np.ndarray
    keypoints: np.ndarray


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, size: int = 224,
           threshold: float = 0.5) -> list[Detection]:
    """The detector's outputs [N, 12] and [N, 1] -> detections above threshold, best first (before NMS)."""
    scores = 1 / (1 + np.exp(-np.clip(raw_scores[:, 0].astype(np.float64), -100, 100)))
    keep = np.nonzero(scores >= threshold)[0]
    dets = []
    for i in keep[np.argsort(-scores[keep])]:
        r = raw_boxes[i] / size
        cx, cy = r[0] + anchors[i, 0], r[1] + anchors[i, 1]
        box = np.array([cx - r[2] / 2, cy - r[3] / 2, cx + r[2] / 2, cy + r[3] / 2], np.float32)
        kps = r[4:12].reshape(4, 2) + anchors[i]
        dets.append(Detection(float(scores[i]), box, kps.astype(np.float32)))
    return dets


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(dets: list[Detection], iou: float = 0.3) -> list[Detection]:
    """MediaPipe's weighted non-maximum suppression: overlapping detections are averaged by score."""
    out = []
    todo = list(dets)
    while todo:
        best = todo[0]
        group = [d for d in todo if _iou(best.box, d.box) > iou]
        todo = [d for d in todo if _iou(best.box, d.box) <= iou]
        w = np.array([d.score for d in group], np.float32)[:, None]
        box = (np.stack([d.box for d in group]) * w).sum(0) / w.sum()
        kps = (np.stack([d.keypoints for d in group]) * w[:, :, None]).sum(0) / w.sum()
        out.append(Detection(best.score, box.astype(np.float32), kps.astype(np.float32)))
    return out
