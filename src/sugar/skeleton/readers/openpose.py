"""Kinetics-Skeleton json (ST-GCN release; OpenPose 18 joints, 2D plus a confidence score).

{"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, x1, y1, ...], "score": [s0, ...]}, ...]}, ...],
 "label": "class name", "label_index": 0-based int, -1 = unknown}. Persons are not tracked across frames:
slot m of a frame is its m-th skeleton (as in ST-GCN). Slots are ranked by mean score over all frames and the top
`max_persons` kept. C = (x, y, score); the ST-GCN release stores x, y normalised to [0, 1] by image size, and
we keep them as stored. Frame t = frame_index - first frame_index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import float_array, read_json, to_f32
from sugar.skeleton.sample import Sample

LAYOUT = "openpose18"
JOINTS = 18
MAX_PERSONS = 2
MAX_IN = 5  # skeletons per frame considered (ST-GCN's num_person_in)
MAX_SPAN = 100_000  # frames; a corrupted frame_index must not allocate gigabytes (Kinetics clips have 300)


def read(path: Path, max_persons: int = MAX_PERSONS) -> list[Sample]:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(path, "not a Kinetics-Skeleton json (no 'data' list)")
    frames = doc["data"]
    if not frames:
        raise DataError(path, "empty sequence ('data' has no frames)")
    indices = []
    for k, fr in enumerate(frames):
        if not isinstance(fr, dict) or not isinstance(fr.get("skeleton"), list):
            raise DataError(path, f"data[{k}] must be an object with a 'skeleton' list")
        fi = fr.get("frame_index")
        if isinstance(fi, bool) or not isinstance(fi, int):
            raise DataError(path, f"data[{k}].frame_index must be an integer, got {fi!r}")
        indices.append(fi)
    first, last = min(indices), max(indices)
    if last - first + 1 > MAX_SPAN:
        raise DataError(path, f"frame_index spans {last - first + 1} frames, more than {MAX_SPAN}")
    joints = np.zeros((MAX_IN, last - first + 1, JOINTS, 3), dtype=np.float64)
    for k, (fr, fi) in enumerate(zip(frames, indices, strict=True)):
        for m, skel in enumerate(fr["skeleton"][:MAX_IN]):
            if not isinstance(skel, dict):
                raise DataError(path, f"data[{k}].skeleton[{m}] must be an object")
            pose = float_array(skel.get("pose"), path, f"data[{k}].skeleton[{m}].pose")
            score = float_array(skel.get("score"), path, f"data[{k}].skeleton[{m}].score")
            if pose.shape != (2 * JOINTS,) or score.shape != (JOINTS,):
                raise DataError(path, f"data[{k}].skeleton[{m}]: expected {2 * JOINTS} pose values and {JOINTS} "
                                      f"scores, got {pose.size} and {score.size}")
            joints[m, fi - first, :, :2] = pose.reshape(JOINTS, 2)
            joints[m, fi - first, :, 2] = score
    joints = to_f32(joints, path, "poses")
    order = np.argsort(-joints[..., 2].mean(axis=(1, 2)), kind="stable")
    used = [m for m in order if joints[m].any()][:max_persons]
    if not used:
        raise DataError(path, "no skeleton in any frame")
    label = doc.get("label_index")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise DataError(path, f"label_index must be an integer, got {label!r}")
    if label is not None and label < 0:  # unlabelled clips carry -1
        label = None
    meta: dict = {"layout": LAYOUT}
    if isinstance(doc.get("label"), str):
        meta["label_name"] = doc["label"]
    sample = Sample(path.stem, joints[sorted(used, key=list(order).index)], label, meta)
    return [sample.validate(num_joints=JOINTS, source=path)]
