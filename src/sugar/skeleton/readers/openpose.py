"""OpenPose skeletons (2D plus a confidence score, openpose18 layout): Kinetics-Skeleton json and raw OpenPose
per-frame output folders.

Kinetics-Skeleton json (format `openpose`, the ST-GCN release; OpenPose 18 joints):

{"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, x1, y1, ...], "score": [s0, ...]}, ...]}, ...],
 "label": "class name", "label_index": 0-based int, -1 = unknown}. Persons are not tracked across frames:
slot m of a frame is its m-th skeleton (as in ST-GCN). Slots are ranked by mean score over all frames and the top
`max_persons` kept. C = (x, y, score); the ST-GCN release stores x, y normalised to [0, 1] by image size, and
we keep them as stored. Frame t = frame_index - first frame_index.

OpenPose output folder (format `openpose-frames`): one `*_keypoints.json` per frame, as written by
`openpose --write_json`, {"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]} (older releases:
"pose_keypoints"). The model is told by the keypoint count: BODY_25 (75 values, mapped to openpose18 by
BODY25_TO_OPENPOSE18, dropping mid-hip and the feet) or COCO-18 (54 values, already openpose18). Frames are
ordered by the frame number before `_keypoints.json` (name order otherwise). OpenPose does not track people,
so in each frame the detections are ranked by mean score and the top `max_persons` fill slots 0..M-1 (as
ST-GCN's Kinetics feeder ranks per frame). C = (x, y, score) in pixels as written; undetected joints are
(0, 0, 0). The folder is one unlabelled sample named after the folder; a single keypoints file reads as a
one-frame sample.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import (
    NO_LIMITS,
    ReadLimits,
    float_array,
    label_index,
    read_json,
    show_number,
    to_f32,
)
from sugar.skeleton.sample import Sample

LAYOUT = "openpose18"
JOINTS = 18
MAX_PERSONS = 2
MAX_IN = 5  # skeletons per frame considered (ST-GCN's num_person_in)
KEYPOINTS_SUFFIX = "_keypoints.json"
BODY25_JOINTS = 25
# BODY_25 index of each openpose18 joint: BODY_25 = openpose18 plus mid-hip (8) and six foot points (19-24).
BODY25_TO_OPENPOSE18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
MAX_SPAN = 18_000  # frames (10 min at 30 fps); a corrupted frame_index must not allocate gigabytes
# (Kinetics clips have 300; the buffer is MAX_IN x span x 18 x 3 float64, 39 MB at the bound)


def read(path: Path, max_persons: int = MAX_PERSONS, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
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
            raise DataError(path, f"data[{k}].frame_index must be an integer, got {show_number(fi)}")
        indices.append(fi)
    first, last = min(indices), max(indices)
    if last - first + 1 > MAX_SPAN:
        raise DataError(path, f"frame_index spans {show_number(last - first + 1)} frames, more than {MAX_SPAN}")
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
    label = label_index(doc.get("label_index"), path, "label_index")  # unlabelled clips carry -1
    meta: dict = {"layout": LAYOUT}
    if isinstance(doc.get("label"), str):
        meta["label_name"] = doc["label"]
    sample = Sample(path.stem, joints[sorted(used, key=list(order).index)], label, meta)
    return [sample.validate(num_joints=JOINTS, source=path)]


_FRAME_NO = re.compile(r"(\d+)_keypoints\.json$")


def is_keypoints_file(path: Path) -> bool:
    return path.name.endswith(KEYPOINTS_SUFFIX) and path.is_file()


def is_keypoints_dir(path: Path) -> bool:
    """A folder that directly holds OpenPose per-frame keypoint files (one sample)."""
    return path.is_dir() and any(is_keypoints_file(p) for p in path.iterdir())


def _frame_files(folder: Path) -> list[Path]:
    def key(p: Path) -> tuple[int, str]:
        m = _FRAME_NO.search(p.name)
        return (int(m.group(1)) if m else -1, p.name)

    return sorted((p for p in folder.iterdir() if is_keypoints_file(p)), key=key)


def _frame_people(path: Path) -> list[np.ndarray]:
    """The detections of one keypoints file, each [18, 3] (x, y, score) on openpose18."""
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
        raise DataError(path, "not an OpenPose keypoints json (no 'people' list)")
    people = []
    for k, person in enumerate(doc["people"]):
        flat = person.get("pose_keypoints_2d", person.get("pose_keypoints")) if isinstance(person, dict) else None
        if flat is None:
            raise DataError(path, f"people[{k}] has no 'pose_keypoints_2d'")
        kp = float_array(flat, path, f"people[{k}].pose_keypoints_2d")
        if kp.shape == (BODY25_JOINTS * 3,):
            kp = kp.reshape(BODY25_JOINTS, 3)[list(BODY25_TO_OPENPOSE18)]
        elif kp.shape == (JOINTS * 3,):
            kp = kp.reshape(JOINTS, 3)
        else:
            raise DataError(path, f"people[{k}]: {kp.size} keypoint values is neither BODY_25 ({BODY25_JOINTS * 3}) "
                                  f"nor COCO-18 ({JOINTS * 3}); other OpenPose models are not supported")
        people.append(kp)
    return people


def read_frames(path: Path, max_persons: int = MAX_PERSONS, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    """A folder of per-frame `*_keypoints.json` (or one such file) -> one Sample [M, T, 18, 3]."""
    if limits.alone and path.is_dir():
        raise DataError(path, "a folder cannot be read as a single file")
    files = _frame_files(path) if path.is_dir() else [path]
    if not files:
        raise DataError(path, f"no *{KEYPOINTS_SUFFIX} files in this folder")
    if len(files) > MAX_SPAN:
        raise DataError(path, f"{len(files)} frames, more than {MAX_SPAN}")
    joints = np.zeros((max_persons, len(files), JOINTS, 3), dtype=np.float64)
    for t, f in enumerate(files):
        people = _frame_people(f)
        order = np.argsort([-p[:, 2].mean() for p in people], kind="stable")[:max_persons]
        for m, i in enumerate(order):
            joints[m, t] = people[i]
    joints = to_f32(joints, path, "keypoints")
    used = [m for m in range(max_persons) if joints[m].any()]
    if not used:
        raise DataError(path, f"no person detected in any of its {len(files)} frames")
    name = path.name if path.is_dir() else path.name.removesuffix(KEYPOINTS_SUFFIX)
    sample = Sample(name, joints[used], None, {"layout": LAYOUT, "frame_files": len(files)})
    return [sample.validate(num_joints=JOINTS, source=path)]
