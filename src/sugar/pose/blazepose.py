"""BlazePose's two networks: the person detector and the landmark model, each on one frame.

`PoseDetector.detect` finds people in a whole frame (boxes plus the hip centre and a body-circle point);
`PoseLandmarker.landmarks` runs on one person's rotated crop and returns 33 landmarks in frame pixels,
their visibility, metric world coordinates, a presence score, and the crop to use on the next frame (so a
tracked person skips the detector). Pre- and post-processing follow MediaPipe's pose graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from sugar.pose import runtime
from sugar.pose.geometry import Roi, crop, decode, roi_from_points, ssd_anchors, weighted_nms, whole_frame

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
NUM_LANDMARKS = 33  # BlazePose's body landmarks; the model adds 6 auxiliary ones (33, 34: the next crop)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -60, 60)))


class PoseDetector:
    """Whole frame -> person regions (best first), for starting or re-finding tracks."""

    def __init__(self, threads: int = 2, threshold: float = 0.5):
        self._it = runtime.interpreter(runtime.model_path(runtime.DETECTOR_FILE), threads)
        self._in = self._it.get_input_details()[0]["index"]
        outs = sorted(self._it.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self._boxes, self._scores = outs[0]["index"], outs[1]["index"]  # [1, N, 12] and [1, N, 1]
        self._anchors = ssd_anchors(DETECTOR_SIZE)
        self.threshold = threshold

    def detect(self, image: Image.Image) -> list[tuple[float, Roi]]:
        """(score, crop for the landmark model) per person found, best first."""
        view = whole_frame(*image.size)
        x = crop(image, view, DETECTOR_SIZE).astype(np.float32) / 127.5 - 1.0
        self._it.set_tensor(self._in, x[None])
        self._it.invoke()
        dets = decode(self._it.get_tensor(self._boxes)[0], self._it.get_tensor(self._scores)[0], self._anchors,
                      DETECTOR_SIZE, self.threshold)
        out = []
        for d in weighted_nms(dets):
            hips, circle = view.to_frame(d.keypoints[0]), view.to_frame(d.keypoints[1])
            out.append((d.score, roi_from_points(hips, circle)))
        return out


@dataclass
class Landmarks:
    """One person in one frame."""

    image: np.ndarray  # [33, 3] x, y in frame pixels, z in pixels relative to the hips (smaller = nearer)
    visibility: np.ndarray  # [33] 0..1
    world: np.ndarray  # [33, 3] metres, origin between the hips, x right, y down, z away from the camera
    presence: float  # 0..1: is a person in the crop at all
    next_roi: Roi  # where to look on the next frame


class PoseLandmarker:
    """One person's crop -> 33 landmarks (see Landmarks)."""

    def __init__(self, threads: int = 2):
        self._it = runtime.interpreter(runtime.model_path(runtime.LANDMARK_FILE), threads)
        self._in = self._it.get_input_details()[0]["index"]
        by_size = {int(np.prod(d["shape"])): d["index"] for d in self._it.get_output_details()}
        self._points, self._flag, self._world = by_size[39 * 5], by_size[1], by_size[39 * 3]

    def landmarks(self, image: Image.Image, roi: Roi) -> Landmarks:
        x = crop(image, roi, LANDMARK_SIZE).astype(np.float32) / 255.0
        self._it.set_tensor(self._in, x[None])
        self._it.invoke()
        raw = self._it.get_tensor(self._points).reshape(39, 5)
        flag = float(self._it.get_tensor(self._flag).ravel()[0])
        world = self._it.get_tensor(self._world).reshape(39, 3)
        norm = raw[:, :3] / LANDMARK_SIZE
        xy = roi.to_frame(norm[:, :2])
        z = norm[:, 2:3] * roi.size
        points = np.concatenate([xy, z], -1).astype(np.float32)
        return Landmarks(image=points[:NUM_LANDMARKS], visibility=_sigmoid(raw[:NUM_LANDMARKS, 3]).astype(np.float32),
                         world=roi.rotate(world[:NUM_LANDMARKS]).astype(np.float32),
                         presence=flag, next_roi=roi_from_points(points[33, :2], points[34, :2]))
