"""Named joint layouts: joint names, bones, centre joint, alignment joints and body-part groups.

The six body parts (head, hand, arm, hip, leg, foot) are those of SUGAR's motion knowledge; stage 1 and
part-aware losses use them. A user layout is a JSON file with the same fields as `Layout.to_dict()`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sugar.errors import LayoutError
from sugar.fileio import read_json_object

BODY_PARTS: tuple[str, ...] = ("head", "hand", "arm", "hip", "leg", "foot")


@dataclass(frozen=True)
class Layout:
    """A skeleton's joints and their graph. Indices are 0-based positions in `joints`."""

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]  # (child, parent)
    centre: tuple[int, ...]  # joints averaged to give the body centre
    left_hip: int
    right_hip: int
    spine_base: int
    spine_top: int
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(joint)
        except ValueError:
            raise LayoutError(f"layout {self.name!r} has no joint {joint!r}") from None

    def parents(self) -> list[int]:
        """Parent index per joint (-1 for the root), from the bone list."""
        parent = [-1] * self.num_joints
        for child, par in self.bones:
            parent[child] = par
        return parent

    def is_connected(self) -> bool:
        adj: dict[int, set[int]] = {i: set() for i in range(self.num_joints)}
        for a, b in self.bones:
            adj[a].add(b)
            adj[b].add(a)
        seen, todo = {0}, [0]
        while todo:
            for n in adj[todo.pop()] - seen:
                seen.add(n)
                todo.append(n)
        return len(seen) == self.num_joints

    def to_dict(self) -> dict:
        name = self.joints
        return {
            "name": self.name,
            "joints": list(self.joints),
            "bones": [[name[c], name[p]] for c, p in self.bones],
            "centre": [name[i] for i in self.centre],
            "left_hip": name[self.left_hip],
            "right_hip": name[self.right_hip],
            "spine_base": name[self.spine_base],
            "spine_top": name[self.spine_top],
            "parts": {part: [name[i] for i in idx] for part, idx in self.parts.items()},
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> Layout:
        """Build and validate a layout described by joint names (see `to_dict`)."""
        required = ("name", "joints", "bones", "centre", "left_hip", "right_hip", "spine_base", "spine_top", "parts")
        missing = [k for k in required if k not in data]
        if missing:
            raise LayoutError(f"{source}: layout is missing {', '.join(missing)}")
        joints = tuple(str(j) for j in data["joints"])
        if len(set(joints)) != len(joints) or not joints:
            raise LayoutError(f"{source}: joint names must be unique and non-empty")
        lookup = {j: i for i, j in enumerate(joints)}

        def idx(name: object, what: str) -> int:
            if name not in lookup:
                raise LayoutError(f"{source}: {what} refers to unknown joint {name!r}")
            return lookup[name]  # type: ignore[index]

        try:
            bones = tuple((idx(c, "bones"), idx(p, "bones")) for c, p in data["bones"])
        except (TypeError, ValueError):
            raise LayoutError(f"{source}: bones must be a list of [child, parent] joint-name pairs") from None
        parts = data["parts"]
        unknown_parts = set(parts) - set(BODY_PARTS)
        if unknown_parts:
            raise LayoutError(f"{source}: unknown body parts {sorted(unknown_parts)}; use {list(BODY_PARTS)}")
        centre = data["centre"]
        centre = [centre] if isinstance(centre, str) else centre
        layout = cls(
            name=str(data["name"]),
            joints=joints,
            bones=bones,
            centre=tuple(idx(c, "centre") for c in centre),
            left_hip=idx(data["left_hip"], "left_hip"),
            right_hip=idx(data["right_hip"], "right_hip"),
            spine_base=idx(data["spine_base"], "spine_base"),
            spine_top=idx(data["spine_top"], "spine_top"),
            parts={p: tuple(idx(j, f"parts.{p}") for j in parts[p]) for p in BODY_PARTS if p in parts},
        )
        if not layout.is_connected():
            raise LayoutError(f"{source}: the bones do not connect every joint")
        return layout

    @classmethod
    def from_json(cls, path: str | Path) -> Layout:
        data = read_json_object(path, "layout JSON", LayoutError)
        return cls.from_dict(data, source=str(path))

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


def _build(
    name: str,
    joints: Sequence[str],
    bones: Sequence[tuple[str, str]],
    centre: Sequence[str],
    hips: tuple[str, str],
    spine: tuple[str, str],
    parts: dict[str, Sequence[str]],
) -> Layout:
    return Layout.from_dict(
        {
            "name": name,
            "joints": list(joints),
            "bones": [list(b) for b in bones],
            "centre": list(centre),
            "left_hip": hips[0],
            "right_hip": hips[1],
            "spine_base": spine[0],
            "spine_top": spine[1],
            "parts": {k: list(v) for k, v in parts.items()},
        },
        source=name,
    )


# Kinect v2, 25 joints (NTU RGB+D, PKU-MMD), in the official 1..25 order.
_NTU25 = [
    "spine_base", "spine_mid", "neck", "head",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
    "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
]  # fmt: skip
_NTU25_BONES = [
    ("spine_mid", "spine_base"), ("spine_shoulder", "spine_mid"), ("neck", "spine_shoulder"), ("head", "neck"),
    ("left_shoulder", "spine_shoulder"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("left_hand", "left_wrist"), ("right_shoulder", "spine_shoulder"), ("right_elbow", "right_shoulder"),
    ("right_wrist", "right_elbow"), ("right_hand", "right_wrist"), ("left_hip", "spine_base"),
    ("left_knee", "left_hip"), ("left_ankle", "left_knee"), ("left_foot", "left_ankle"),
    ("right_hip", "spine_base"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("right_foot", "right_ankle"), ("left_hand_tip", "left_hand"), ("left_thumb", "left_hand"),
    ("right_hand_tip", "right_hand"), ("right_thumb", "right_hand"),
]  # fmt: skip
_NTU25_PARTS = {
    "head": ["neck", "head"],
    "hand": ["left_wrist", "left_hand", "left_hand_tip", "left_thumb",
             "right_wrist", "right_hand", "right_hand_tip", "right_thumb"],
    "arm": ["left_shoulder", "left_elbow", "right_shoulder", "right_elbow"],
    "hip": ["spine_base", "spine_mid", "spine_shoulder", "left_hip", "right_hip"],
    "leg": ["left_knee", "right_knee", "left_ankle", "right_ankle"],
    "foot": ["left_foot", "right_foot"],
}  # fmt: skip

# Kinect v1, 20 joints, in the NW-UCLA (CTR-GCN distribution) order.
_KINECT20 = [
    "hip_center", "spine", "shoulder_center", "head",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
]  # fmt: skip
_KINECT20_BONES = [
    ("spine", "hip_center"), ("shoulder_center", "spine"), ("head", "shoulder_center"),
    ("left_shoulder", "shoulder_center"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("left_hand", "left_wrist"), ("right_shoulder", "shoulder_center"), ("right_elbow", "right_shoulder"),
    ("right_wrist", "right_elbow"), ("right_hand", "right_wrist"), ("left_hip", "hip_center"),
    ("left_knee", "left_hip"), ("left_ankle", "left_knee"), ("left_foot", "left_ankle"),
    ("right_hip", "hip_center"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("right_foot", "right_ankle"),
]  # fmt: skip
_KINECT20_PARTS = {
    "head": ["shoulder_center", "head"],
    "hand": ["left_wrist", "left_hand", "right_wrist", "right_hand"],
    "arm": ["left_shoulder", "left_elbow", "right_shoulder", "right_elbow"],
    "hip": ["hip_center", "spine", "left_hip", "right_hip"],
    "leg": ["left_knee", "right_knee", "left_ankle", "right_ankle"],
    "foot": ["left_foot", "right_foot"],
}

# MSR Action3D's own order (body_model.txt of the Lie-group release, 1-based there).
_MSR20 = [
    "left_shoulder", "right_shoulder", "shoulder_center", "spine", "left_hip", "right_hip", "hip_center",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot", "head",
]  # fmt: skip
_MSR20_BONES = [
    ("spine", "hip_center"), ("shoulder_center", "spine"), ("head", "shoulder_center"),
    ("left_shoulder", "shoulder_center"), ("right_shoulder", "shoulder_center"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"), ("left_wrist", "left_elbow"),
    ("right_wrist", "right_elbow"), ("left_hand", "left_wrist"), ("right_hand", "right_wrist"),
    ("left_hip", "hip_center"), ("right_hip", "hip_center"), ("left_knee", "left_hip"),
    ("right_knee", "right_hip"), ("left_ankle", "left_knee"), ("right_ankle", "right_knee"),
    ("left_foot", "left_ankle"), ("right_foot", "right_ankle"),
]  # fmt: skip

# COCO 17 keypoints (2D pose estimators).
_COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
_COCO17_BONES = [
    ("left_eye", "nose"), ("right_eye", "nose"), ("left_ear", "left_eye"), ("right_ear", "right_eye"),
    ("left_shoulder", "nose"), ("right_shoulder", "nose"), ("left_elbow", "left_shoulder"),
    ("right_elbow", "right_shoulder"), ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
    ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"), ("right_hip", "left_hip"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"), ("left_ankle", "left_knee"),
    ("right_ankle", "right_knee"),
]  # fmt: skip
_COCO17_PARTS = {
    "head": ["nose", "left_eye", "right_eye", "left_ear", "right_ear"],
    "hand": ["left_wrist", "right_wrist"],
    "arm": ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow"],
    "hip": ["left_hip", "right_hip"],
    "leg": ["left_knee", "right_knee"],
    "foot": ["left_ankle", "right_ankle"],
}

# OpenPose 18 keypoints (Kinetics-Skeleton of ST-GCN).
_OPENPOSE18 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
]  # fmt: skip
_OPENPOSE18_BONES = [
    ("nose", "neck"), ("right_shoulder", "neck"), ("right_elbow", "right_shoulder"),
    ("right_wrist", "right_elbow"), ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"),
    ("left_wrist", "left_elbow"), ("right_hip", "neck"), ("right_knee", "right_hip"),
    ("right_ankle", "right_knee"), ("left_hip", "neck"), ("left_knee", "left_hip"),
    ("left_ankle", "left_knee"), ("right_eye", "nose"), ("left_eye", "nose"), ("right_ear", "right_eye"),
    ("left_ear", "left_eye"),
]  # fmt: skip
_OPENPOSE18_PARTS = {
    "head": ["nose", "neck", "right_eye", "left_eye", "right_ear", "left_ear"],
    "hand": ["right_wrist", "left_wrist"],
    "arm": ["right_shoulder", "right_elbow", "left_shoulder", "left_elbow"],
    "hip": ["right_hip", "left_hip"],
    "leg": ["right_knee", "left_knee"],
    "foot": ["right_ankle", "left_ankle"],
}

# LCR-Net++ 13 joints (Toyota Smarthome skeleton release), in LCR-Net's own order. No neck or pelvis: the
# tree hangs from the head through the shoulders, and the hips hang from the shoulders (torso sides).
_LCRNET13 = [
    "right_ankle", "left_ankle", "right_knee", "left_knee", "right_hip", "left_hip",
    "right_wrist", "left_wrist", "right_elbow", "left_elbow", "right_shoulder", "left_shoulder", "head",
]  # fmt: skip
_LCRNET13_BONES = [
    ("right_shoulder", "head"), ("left_shoulder", "head"), ("right_elbow", "right_shoulder"),
    ("right_wrist", "right_elbow"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("right_hip", "right_shoulder"), ("left_hip", "left_shoulder"), ("right_knee", "right_hip"),
    ("right_ankle", "right_knee"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
]  # fmt: skip
_LCRNET13_PARTS = {
    "head": ["head"],
    "hand": ["right_wrist", "left_wrist"],
    "arm": ["right_shoulder", "right_elbow", "left_shoulder", "left_elbow"],
    "hip": ["right_hip", "left_hip"],
    "leg": ["right_knee", "left_knee"],
    "foot": ["right_ankle", "left_ankle"],
}

# MediaPipe BlazePose 33 landmarks (the pose front end, sugar.pose), in the model's output order. No spine,
# neck or hip centre: conversions to Kinect layouts derive them (DERIVED_JOINTS).
_BLAZEPOSE33 = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky",
    "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
]  # fmt: skip
_BLAZEPOSE33_BONES = [
    ("left_eye_inner", "nose"), ("left_eye", "left_eye_inner"), ("left_eye_outer", "left_eye"),
    ("left_ear", "left_eye_outer"), ("right_eye_inner", "nose"), ("right_eye", "right_eye_inner"),
    ("right_eye_outer", "right_eye"), ("right_ear", "right_eye_outer"), ("mouth_left", "nose"),
    ("mouth_right", "nose"), ("left_shoulder", "nose"), ("right_shoulder", "nose"),
    ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"), ("left_wrist", "left_elbow"),
    ("right_wrist", "right_elbow"), ("left_pinky", "left_wrist"), ("right_pinky", "right_wrist"),
    ("left_index", "left_wrist"), ("right_index", "right_wrist"), ("left_thumb", "left_wrist"),
    ("right_thumb", "right_wrist"), ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"),
    ("left_knee", "left_hip"), ("right_knee", "right_hip"), ("left_ankle", "left_knee"),
    ("right_ankle", "right_knee"), ("left_heel", "left_ankle"), ("right_heel", "right_ankle"),
    ("left_foot_index", "left_ankle"), ("right_foot_index", "right_ankle"),
]  # fmt: skip
_BLAZEPOSE33_PARTS = {
    "head": ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
             "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right"],
    "hand": ["left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
             "left_thumb", "right_thumb"],
    "arm": ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow"],
    "hip": ["left_hip", "right_hip"],
    "leg": ["left_knee", "right_knee", "left_ankle", "right_ankle"],
    "foot": ["left_heel", "right_heel", "left_foot_index", "right_foot_index"],
}  # fmt: skip

_BUILTIN: dict[str, Layout] = {
    "ntu25": _build("ntu25", _NTU25, _NTU25_BONES, ["spine_mid"], ("left_hip", "right_hip"),
                    ("spine_base", "spine_shoulder"), _NTU25_PARTS),
    "kinect20": _build("kinect20", _KINECT20, _KINECT20_BONES, ["spine"], ("left_hip", "right_hip"),
                       ("hip_center", "shoulder_center"), _KINECT20_PARTS),
    "msr20": _build("msr20", _MSR20, _MSR20_BONES, ["spine"], ("left_hip", "right_hip"),
                    ("hip_center", "shoulder_center"), _KINECT20_PARTS),
    "coco17": _build("coco17", _COCO17, _COCO17_BONES, ["left_hip", "right_hip"], ("left_hip", "right_hip"),
                     ("left_hip", "left_shoulder"), _COCO17_PARTS),
    "openpose18": _build("openpose18", _OPENPOSE18, _OPENPOSE18_BONES, ["neck"], ("left_hip", "right_hip"),
                         ("right_hip", "neck"), _OPENPOSE18_PARTS),
    "lcrnet13": _build("lcrnet13", _LCRNET13, _LCRNET13_BONES, ["left_hip", "right_hip"], ("left_hip", "right_hip"),
                       ("left_hip", "head"), _LCRNET13_PARTS),
    "blazepose33": _build("blazepose33", _BLAZEPOSE33, _BLAZEPOSE33_BONES, ["left_hip", "right_hip"],
                          ("left_hip", "right_hip"), ("left_hip", "left_shoulder"), _BLAZEPOSE33_PARTS),
}  # fmt: skip


def list_layouts() -> list[str]:
    return sorted(_BUILTIN)


def get_layout(name_or_path: str | Path | Layout) -> Layout:
    """A built-in layout by name, or a user layout from a JSON file path."""
    if isinstance(name_or_path, Layout):
        return name_or_path
    key = str(name_or_path)
    if key in _BUILTIN:
        return _BUILTIN[key]
    if key.endswith(".json") or Path(key).is_file():
        return Layout.from_json(key)
    raise LayoutError(f"unknown layout {key!r}; built-in layouts: {', '.join(list_layouts())}, or a JSON file path")


def joint_mapping(source: Layout | str, target: Layout | str) -> np.ndarray:
    """For each joint of `target`, its index in `source`, matched by joint name.

    Cross-dataset tests (a model trained on NW-UCLA's kinect20 tested on MSR Action3D's msr20) need the same
    body read in the model's joint order; layouts that name the same joints convert without loss.
    """
    src, dst = get_layout(source), get_layout(target)
    missing = [j for j in dst.joints if j not in src.joints]
    if missing:
        raise LayoutError(f"cannot convert layout {src.name} to {dst.name}: {src.name} has no joint(s) "
                          f"{', '.join(missing)}")
    return np.array([src.joints.index(j) for j in dst.joints], dtype=np.int64)


# Joints a layout lacks but a conversion can compute from its neighbours, as weights over joint names. A pose
# estimator (blazepose33, coco17) has no spine, neck or hip centre; Kinect layouts need them. Ratios along the
# trunk were measured on the real data of each layout: NW-UCLA's kinect20 `spine` lies at 0.17 of the way
# from the hip centre to the shoulder centre, NTU's `spine_mid` at 0.57 and its `neck` at 0.35 of the way from
# `spine_shoulder` to the head. Keys: (target layout, joint) first, then ("*", joint). Each entry lists
# alternatives; the first whose joints the source has is used.
_HIPS = {"left_hip": 0.5, "right_hip": 0.5}
_SHOULDERS = {"left_shoulder": 0.5, "right_shoulder": 0.5}
_EARS = {"left_ear": 0.5, "right_ear": 0.5}


def _mix(*parts: tuple[float, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for weight, joints in parts:
        for name, w in joints.items():
            out[name] = out.get(name, 0.0) + weight * w
    return out


def _hand(side: str) -> dict[str, float]:
    """Kinect's hand joint is the palm centre: halfway from the wrist to the index and little-finger knuckles."""
    return {f"{side}_wrist": 0.5, f"{side}_index": 0.25, f"{side}_pinky": 0.25}


DERIVED_JOINTS: dict[tuple[str, str], tuple[dict[str, float], ...]] = {
    ("*", "hip_center"): (_HIPS,),
    ("*", "spine_base"): (_HIPS,),
    ("*", "shoulder_center"): (_SHOULDERS,),
    ("*", "spine_shoulder"): (_SHOULDERS,),
    ("*", "spine"): (_mix((0.83, _HIPS), (0.17, _SHOULDERS)),),
    ("*", "spine_mid"): (_mix((0.43, _HIPS), (0.57, _SHOULDERS)),),
    ("*", "head"): (_EARS,),
    ("*", "neck"): (_SHOULDERS,),  # OpenPose's neck is the middle of the shoulders
    ("ntu25", "neck"): (_mix((0.65, _SHOULDERS), (0.35, _EARS)),),  # Kinect v2's neck sits above them
    ("*", "left_hand"): (_hand("left"),),
    ("*", "right_hand"): (_hand("right"),),
    ("*", "left_hand_tip"): ({"left_index": 1.0},),
    ("*", "right_hand_tip"): ({"right_index": 1.0},),
    ("*", "left_foot"): ({"left_foot_index": 1.0},),
    ("*", "right_foot"): ({"right_foot_index": 1.0},),
}


def _derivation(src: Layout, dst: Layout, joint: str) -> dict[str, float] | None:
    for key in ((dst.name, joint), ("*", joint)):
        for weights in DERIVED_JOINTS.get(key, ()):
            if all(name in src.joints for name in weights):
                return weights
    return None


def derived_joints(source: Layout | str, target: Layout | str) -> dict[str, dict[str, float]]:
    """The joints of `target` that a conversion from `source` computes, each with its weights over
    `source`'s joints (empty when every joint exists by name)."""
    src, dst = get_layout(source), get_layout(target)
    out = {}
    for joint in dst.joints:
        if joint not in src.joints and (weights := _derivation(src, dst, joint)) is not None:
            out[joint] = weights
    return out


def conversion_matrix(source: Layout | str, target: Layout | str) -> np.ndarray:
    """W [V_target, V_source] with target joints = W @ source joints: one-hot rows for joints both layouts
    name, DERIVED_JOINTS weights for the others; LayoutError names the joints that can be neither."""
    src, dst = get_layout(source), get_layout(target)
    derived = derived_joints(src, dst)
    missing = [j for j in dst.joints if j not in src.joints and j not in derived]
    if missing:
        raise LayoutError(f"cannot convert layout {src.name} to {dst.name}: {src.name} has no joint(s) "
                          f"{', '.join(missing)}, and they cannot be derived from its joints")
    w = np.zeros((dst.num_joints, src.num_joints), dtype=np.float32)
    for i, joint in enumerate(dst.joints):
        for name, weight in derived.get(joint, {joint: 1.0}).items():
            w[i, src.index(name)] += weight
    return w


def convert_joints(joints: np.ndarray, source: Layout | str, target: Layout | str) -> np.ndarray:
    """joints [..., V_source, C] in `target`'s joints [..., V_target, C]: reordered by joint name (see
    joint_mapping), and joints the source lacks computed from their neighbours (see DERIVED_JOINTS)."""
    def name(layout: Layout | str) -> str:
        return layout.name if isinstance(layout, Layout) else str(layout)

    if name(source) == name(target):  # also for a user layout known only by the name a sample carries
        return joints
    src, dst = get_layout(source), get_layout(target)
    if all(j in src.joints for j in dst.joints):
        return np.ascontiguousarray(joints[..., joint_mapping(src, dst), :])
    w = conversion_matrix(src, dst)
    out = np.einsum("ts,...sc->...tc", w, joints.astype(np.float32, copy=False))
    return np.ascontiguousarray(out, dtype=joints.dtype)
