"""Toyota Smarthome (trimmed) skeletons: the LCR-Net++ pose json of the official release.

Assumed format (the v1.1/v1.2 releases, files `Action_pNN_rNN_vNN_cNN.json` or `..._pose3d.json`):
    {"K": int, "njts": 13, "frames": [[{"pose2d": [26 floats], "pose3d": [39 floats], "cumscore": float?}, ...], ...]}
`frames[t]` lists the detections of frame t (an empty list when nobody was detected). The flat arrays are
coordinate-major: pose3d = [x0..x12, y0..y12, z0..z12] (LCR-Net's own visualiser plots joint i at
(pose2d[i], pose2d[i + njts])). The 13 joints are in the `lcrnet13` layout order. pose3d is LCR-Net's
root-centred 3D pose in metres; we return it (C = x, y, z). Toyota is single-person, so each frame keeps its
first detection (as INRIA's loader does; v1.2 has no score to rank by); frames without one are zero.
The name gives action, subject (p), repetition (r), variation (v) and camera (c); the label indexes ACTIONS.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import MAX_FRAMES, NO_LIMITS, ReadLimits, float_array, read_json, to_f32
from sugar.skeleton.sample import Sample

LAYOUT = "lcrnet13"
JOINTS = 13
NAME_RE = re.compile(r"(?P<action>[A-Za-z.]+)_p(?P<subject>\d+)_r(?P<rep>\d+)_v(?P<var>\d+)_c(?P<camera>\d+)")
ACTIONS: tuple[str, ...] = (
    "Cook.Cleandishes", "Cook.Cleanup", "Cook.Cut", "Cook.Stir", "Cook.Usestove", "Cutbread",
    "Drink.Frombottle", "Drink.Fromcan", "Drink.Fromcup", "Drink.Fromglass", "Eat.Attable", "Eat.Snack",
    "Enter", "Getup", "Laydown", "Leave", "Makecoffee.Pourgrains", "Makecoffee.Pourwater",
    "Maketea.Boilwater", "Maketea.Insertteabag", "Pour.Frombottle", "Pour.Fromcan", "Pour.Fromkettle",
    "Readbook", "Sitdown", "Takepills", "Uselaptop", "Usetablet", "Usetelephone", "Walk", "WatchTV",
)  # fmt: skip  (the 31 classes in the label order of the action list)


def read(path: Path, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise DataError(path, "not a Toyota Smarthome / LCR-Net pose json (no 'frames' list)")
    njts = doc.get("njts", JOINTS)
    if njts != JOINTS:
        raise DataError(path, f"expected njts = {JOINTS} (LCR-Net 13 joints), got {njts!r}")
    frames = doc["frames"]
    if not frames:
        raise DataError(path, "empty sequence (no frames)")
    if len(frames) > MAX_FRAMES:
        raise DataError(path, f"{len(frames)} frames, more than {MAX_FRAMES}")
    joints = np.zeros((len(frames), JOINTS, 3), dtype=np.float64)
    for t, dets in enumerate(frames):
        if isinstance(dets, dict):
            dets = [dets]
        if not isinstance(dets, list):
            raise DataError(path, f"frames[{t}] must be a list of detections")
        if not dets:
            continue
        det = dets[0]
        if not isinstance(det, dict) or "pose3d" not in det:
            raise DataError(path, f"frames[{t}][0] has no 'pose3d'")
        flat = float_array(det["pose3d"], path, f"frames[{t}][0].pose3d")
        if flat.shape != (3 * JOINTS,):
            raise DataError(path, f"frames[{t}][0].pose3d: expected {3 * JOINTS} values (13 joints x 3), "
                                  f"got {flat.size}")
        joints[t] = flat.reshape(3, JOINTS).T
    joints = to_f32(joints, path, "pose3d")
    name = path.stem.removesuffix("_pose3d")
    m = NAME_RE.search(name)
    meta: dict = {"layout": LAYOUT}
    label = None
    if m:
        meta.update({k: (v if k == "action" else int(v)) for k, v in m.groupdict().items()})
        lookup = {a.lower(): i for i, a in enumerate(ACTIONS)}
        label = lookup.get(m["action"].lower())
    sample = Sample(name, joints[None], label, meta)
    return [sample.validate(num_joints=JOINTS, source=path)]
