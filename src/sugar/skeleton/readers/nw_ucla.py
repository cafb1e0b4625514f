"""Northwestern-UCLA Multiview Action 3D, CTR-GCN's json distribution.

One file per sequence: {"file_name": "a01_s01_e00_v01", "skeletons": T x 20 x 3, "label": 1..10}.
Kinect v1 joints in metres, in the order of the `kinect20` layout; one person. The name encodes action
(a01..a12, ten used), subject, environment (e) and view (v). label in the file is 1-based; we return label-1.
"""

from __future__ import annotations

from pathlib import Path

from sugar.errors import DataError
from sugar.skeleton.readers._common import NO_LIMITS, ReadLimits, float_array, name_ids, read_json, to_f32
from sugar.skeleton.sample import Sample

LAYOUT = "kinect20"
NAME_RE = r"a(?P<action>\d+)_s(?P<subject>\d+)_e(?P<environment>\d+)_v(?P<view>\d+)"


def read(path: Path, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    data = read_json(path)
    if not isinstance(data, dict) or "skeletons" not in data:
        raise DataError(path, "not an NW-UCLA skeleton json (no 'skeletons' field)")
    joints = float_array(data["skeletons"], path, "skeletons")
    if joints.ndim != 3 or joints.shape[0] == 0:
        raise DataError(path, f"skeletons must be a non-empty T x 20 x 3 array, got shape {joints.shape}")
    if joints.shape[1:] != (20, 3):
        v, c = joints.shape[1:]
        raise DataError(path, f"expected 20 joints x 3 coordinates per frame, got {v} x {c}")
    joints = to_f32(joints, path, "skeletons")
    name = data.get("file_name", path.stem)
    if not isinstance(name, str) or not name:
        raise DataError(path, "file_name must be a non-empty string")
    raw_label = data.get("label")
    label = None
    if raw_label is not None:
        if isinstance(raw_label, bool) or not isinstance(raw_label, int) or not 1 <= raw_label <= 10:
            raise DataError(path, f"label must be an integer 1..10, got {raw_label!r}")
        label = raw_label - 1
    meta = {"layout": LAYOUT, **name_ids(NAME_RE, name)}
    sample = Sample(name, joints[None], label, meta)
    return [sample.validate(num_joints=20, source=path)]
