"""Procedural skeleton actions on the ntu25 layout: the embedded dataset for the demo and fast tests.

Why: the real benchmarks are large and licensed, so the demo, the tutorials and most tests need a small
dataset that ships with the code. Each sample is built by forward kinematics on the ntu25 bone tree, so
bone lengths stay constant and the motion looks like a person, with per-sample variation of speed (and
so length), amplitude, body size, handedness, viewpoint, camera distance/height/tilt, start pause and
sensor noise. Coordinates follow the Kinect camera convention of NTU RGB+D (metres, y up, x to the
side, z depth away from the camera; a person facing the camera has their left side at smaller x).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from sugar.skeleton.layouts import Layout, get_layout
from sugar.skeleton.sample import Sample

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "wave", "drink", "kick", "sit down", "stand up", "jump", "clap", "bow", "punch", "raise both arms",
)  # fmt: skip

# Offset of every joint from its parent at rest, body frame of a ~1.75 m adult facing -z:
# x = the person's right, y = up, z = backwards. Arms hang, legs straight, feet point forward.
_REST: dict[str, tuple[float, float, float]] = {
    "spine_base": (0.0, 0.0, 0.0),
    "spine_mid": (0.0, 0.26, 0.0),
    "spine_shoulder": (0.0, 0.20, 0.0),
    "neck": (0.0, 0.07, 0.0),
    "head": (0.0, 0.12, -0.01),
    "left_shoulder": (-0.165, -0.01, 0.0),
    "left_elbow": (0.0, -0.28, 0.0),
    "left_wrist": (0.0, -0.25, 0.0),
    "left_hand": (0.0, -0.08, 0.0),
    "left_hand_tip": (0.0, -0.07, 0.0),
    "left_thumb": (0.0, -0.03, -0.04),
    "right_shoulder": (0.165, -0.01, 0.0),
    "right_elbow": (0.0, -0.28, 0.0),
    "right_wrist": (0.0, -0.25, 0.0),
    "right_hand": (0.0, -0.08, 0.0),
    "right_hand_tip": (0.0, -0.07, 0.0),
    "right_thumb": (0.0, -0.03, -0.04),
    "left_hip": (-0.085, -0.03, 0.0),
    "left_knee": (0.0, -0.42, 0.0),
    "left_ankle": (0.0, -0.40, 0.0),
    "left_foot": (0.0, -0.06, -0.12),
    "right_hip": (0.085, -0.03, 0.0),
    "right_knee": (0.0, -0.42, 0.0),
    "right_ankle": (0.0, -0.40, 0.0),
    "right_foot": (0.0, -0.06, -0.12),
}

# Angles are per bone, named by the bone's child joint, as Euler degrees (x, y, z) in the parent bone's
# frame, applied x first (flexion: an arm or thigh swings forward, a spine bends back), then z
# (abduction: positive moves a hanging limb towards +x, the person's right), then y (twist about the
# vertical). Mirroring left/right negates y and z.
Angles = dict[str, np.ndarray]  # bone -> [T, 3] degrees


@dataclass(frozen=True)
class _Motion:
    angles: Angles
    lift: np.ndarray | None = None  # [T] extra height (jump flight), metres
    anchor: str = "feet"  # what stays put on the floor: "feet" (both ankles) or one ankle joint


@cache
def _skeleton() -> tuple[Layout, tuple[int, ...], tuple[int, ...], np.ndarray]:
    """Layout, parent per joint, a parents-first joint order, and the rest offsets [V, 3]."""
    layout = get_layout("ntu25")
    parents = tuple(layout.parents())
    order: list[int] = []
    todo = [j for j, p in enumerate(parents) if p < 0]
    while todo:
        j = todo.pop(0)
        order.append(j)
        todo.extend(c for c, p in enumerate(parents) if p == j)
    offsets = np.array([_REST[name] for name in layout.joints], dtype=np.float64)
    return layout, parents, tuple(order), offsets


def _euler(deg: np.ndarray) -> np.ndarray:
    """[T, 3] Euler degrees (x, y, z) -> [T, 3, 3] rotation matrices R_y @ R_z @ R_x."""
    rad = np.deg2rad(deg)
    cx, cy, cz = np.cos(rad).T
    sx, sy, sz = np.sin(rad).T
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return ry @ rz @ rx


def forward_kinematics(angles: Angles, offsets: np.ndarray, num_frames: int) -> np.ndarray:
    """Joint positions [T, V, 3] in the body frame (root at the origin) from per-bone Euler angles.

    A bone's rotation turns that bone and, through the chain, everything below it; bones without an
    entry in `angles` keep their rest direction relative to their parent.
    """
    layout, parents, order, _ = _skeleton()
    pos = np.zeros((num_frames, layout.num_joints, 3))
    frame = np.zeros((layout.num_joints, num_frames, 3, 3))
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    for j in order:
        name = layout.joints[j]
        local = _euler(angles[name]) if name in angles else eye
        p = parents[j]
        if p < 0:
            frame[j] = local
            continue
        frame[j] = frame[p] @ local
        pos[:, j] = pos[:, p] + frame[j] @ offsets[j]
    return pos


# ----------------------------------------------------------------------------------------------------
# Smooth time profiles, all functions of the action phase phi in [0, 1].


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6 * x - 15) + 10)


def _ramp(phi: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 before a, 1 after b, smooth in between."""
    return _smooth((phi - a) / max(b - a, 1e-6))


def _hold(phi: np.ndarray, rise: float, fall: float) -> np.ndarray:
    """Rise over [0, rise], hold, fall over [1 - fall, 1]."""
    return _ramp(phi, 0.0, rise) * (1.0 - _ramp(phi, 1.0 - fall, 1.0))


def _pulse(phi: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth bump of height 1 at `centre`, zero beyond +-width."""
    x = np.clip(np.abs(phi - centre) / width, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def _vec(x: np.ndarray | float = 0.0, y: np.ndarray | float = 0.0, z: np.ndarray | float = 0.0) -> np.ndarray:
    x, y, z = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float), np.asarray(z, float))
    return np.stack([x, y, z], -1)


def _add(angles: Angles, bone: str, value: np.ndarray) -> None:
    angles[bone] = angles[bone] + value if bone in angles else value


# ----------------------------------------------------------------------------------------------------
# The actions. Each returns the right-handed motion; left-handed samples are mirrored afterwards.
# `a` scales the size of the movement, `rng` draws action-specific details recorded in `info`.


def _wave(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    cycles = info.setdefault("cycles", int(rng.integers(2, 5)))
    e = _hold(phi, 0.2, 0.2)
    swing = np.sin(2 * np.pi * cycles * _ramp(phi, 0.2, 0.8)) * _hold(phi, 0.25, 0.25)
    return _Motion(
        {
            "right_elbow": _vec(x=15 * e, z=100 * a * e),
            "right_wrist": _vec(z=(90 + 28 * a * swing) * e),
            "right_hand": _vec(z=10 * swing * e),
        }
    )


def _drink(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    e = _hold(phi, 0.3, 0.3)
    sip = _pulse(phi, 0.5, 0.15)
    return _Motion(
        {
            "right_elbow": _vec(x=(30 + 10 * sip) * a * e, y=20 * e, z=-12 * e),
            "right_wrist": _vec(x=(125 + 10 * sip) * e),
            "head": _vec(x=(6 + 14 * sip) * a * e),
            "neck": _vec(x=5 * sip * e),
        }
    )


def _kick(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    lift = _hold(phi, 0.35, 0.35)
    snap = _pulse(phi, 0.5, 0.18)
    return _Motion(
        {
            "right_knee": _vec(x=70 * a * lift),
            "right_ankle": _vec(x=-75 * lift * (1 - 0.9 * snap)),
            "right_foot": _vec(x=-20 * snap),
            "spine_mid": _vec(x=10 * a * lift),
            "left_elbow": _vec(z=-25 * lift),
            "right_elbow": _vec(x=-20 * lift, z=25 * lift),
        },
        anchor="left_ankle",
    )


def _sit_pose(s: np.ndarray, a: float) -> Angles:
    """Standing (s = 0) to seated (s = 1); the trunk leans forward while moving."""
    lean = np.sin(np.pi * s)
    angles = {
        "spine_mid": _vec(x=-(30 * a * lean + 5 * s)),
        "neck": _vec(x=8 * lean),
        "left_elbow": _vec(x=25 * lean + 10 * s),
        "right_elbow": _vec(x=25 * lean + 10 * s),
        "left_wrist": _vec(x=30 * s),
        "right_wrist": _vec(x=30 * s),
    }
    for side in ("left", "right"):
        angles[f"{side}_knee"] = _vec(x=90 * s)
        angles[f"{side}_ankle"] = _vec(x=-90 * s)
    return angles


def _sit_down(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    return _Motion(_sit_pose(_ramp(phi, 0.1, 0.9), a))


def _stand_up(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    return _Motion(_sit_pose(1.0 - _ramp(phi, 0.1, 0.9), a))


def _jump(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    height = info.setdefault("height_m", round(float(rng.uniform(0.15, 0.4)), 3))
    crouch = _pulse(phi, 0.3, 0.17) + _pulse(phi, 0.75, 0.15)
    air = np.clip((phi - 0.42) / 0.2, 0.0, 1.0)
    flight = np.sin(np.pi * air) * ((phi > 0.42) & (phi < 0.62))
    arms = -45 * crouch + 140 * a * _pulse(phi, 0.52, 0.14)
    angles = {
        "spine_mid": _vec(x=-28 * crouch),
        "left_elbow": _vec(x=arms),
        "right_elbow": _vec(x=arms),
    }
    for side in ("left", "right"):
        angles[f"{side}_knee"] = _vec(x=55 * crouch)
        angles[f"{side}_ankle"] = _vec(x=-85 * crouch + 15 * flight)
        angles[f"{side}_foot"] = _vec(x=-30 * flight)
    return _Motion(angles, lift=height * a * flight)


def _clap(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    cycles = info.setdefault("cycles", int(rng.integers(3, 7)))
    e = _hold(phi, 0.2, 0.2)
    close = 0.5 * (1 - np.cos(2 * np.pi * cycles * _ramp(phi, 0.2, 0.8)))
    inward = (4 + 13 * close * a) * e  # 17 degrees brings the palms together
    return _Motion(
        {
            "right_elbow": _vec(x=55 * e, y=inward, z=-8 * e),
            "left_elbow": _vec(x=55 * e, y=-inward, z=8 * e),
            "right_wrist": _vec(x=45 * e),
            "left_wrist": _vec(x=45 * e),
        }
    )


def _bow(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    e = _hold(phi, 0.35, 0.35)
    bend = 55 * a * e
    return _Motion(
        {
            "spine_mid": _vec(x=-bend),
            "spine_shoulder": _vec(x=-10 * e),
            "neck": _vec(x=-12 * e),
            "head": _vec(x=-10 * e),
            "left_elbow": _vec(x=0.8 * (bend + 10 * e)),
            "right_elbow": _vec(x=0.8 * (bend + 10 * e)),
        }
    )


def _punch(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    n = info.setdefault("punches", int(rng.integers(1, 4)))
    alternate = info.setdefault("alternate", bool(rng.random() < 0.5))
    guard = _hold(phi, 0.2, 0.2)
    centres = np.linspace(0.3, 0.7, n) if n > 1 else np.array([0.5])
    hits = {"right": np.zeros_like(phi), "left": np.zeros_like(phi)}
    for k, c in enumerate(centres):
        side = "left" if alternate and k % 2 else "right"
        hits[side] = hits[side] + _pulse(phi, float(c), 0.09)
    angles: Angles = {"spine_shoulder": _vec(y=12 * (hits["left"] - hits["right"]))}
    for side, sign in (("right", 1.0), ("left", -1.0)):
        p = hits[side]
        angles[f"{side}_elbow"] = _vec(x=(35 + 55 * a * p) * guard, y=sign * 18 * p, z=-sign * 12 * guard * (1 - p))
        angles[f"{side}_wrist"] = _vec(x=125 * guard * (1 - p) + 5)
    return _Motion(angles)


def _raise_both_arms(phi: np.ndarray, a: float, rng: np.random.Generator, info: dict) -> _Motion:
    sideways = info.setdefault("sideways", bool(rng.random() < 0.5))
    e = _hold(phi, 0.3, 0.3) * min(a, 1.0)
    up = 165 * e
    if sideways:
        right, left = _vec(z=up), _vec(z=-up)
    else:
        right, left = _vec(x=up, z=10 * e), _vec(x=up, z=-10 * e)
    return _Motion({"right_elbow": right, "left_elbow": left, "head": _vec(x=10 * e)})


_ACTIONS: dict[str, Callable[[np.ndarray, float, np.random.Generator, dict], _Motion]] = {
    "wave": _wave,
    "drink": _drink,
    "kick": _kick,
    "sit down": _sit_down,
    "stand up": _stand_up,
    "jump": _jump,
    "clap": _clap,
    "bow": _bow,
    "punch": _punch,
    "raise both arms": _raise_both_arms,
}
_HANDED = {"wave", "drink", "kick", "punch"}  # actions done with one side: some samples are left-handed


def _mirror(motion: _Motion) -> _Motion:
    """The same motion done with the other side: swap left/right bones and negate y and z rotations."""
    flip = np.array([1.0, -1.0, -1.0])

    def other(name: str) -> str:
        if name.startswith("left_"):
            return "right_" + name[5:]
        if name.startswith("right_"):
            return "left_" + name[6:]
        return name

    return _Motion({other(k): v * flip for k, v in motion.angles.items()}, motion.lift, other(motion.anchor))


def _idle(t: np.ndarray, rng: np.random.Generator) -> Angles:
    """A relaxed standing posture with slow sway and breathing, different per person."""
    ph = rng.uniform(0, 2 * np.pi, 4)
    f = rng.uniform(0.01, 0.03)  # cycles per frame
    arm_out, elbow = rng.uniform(5, 12), rng.uniform(8, 20)
    sway = np.sin(2 * np.pi * f * t + ph[0])
    return {
        "spine_mid": _vec(x=1.5 * np.sin(2 * np.pi * f * t + ph[1]), z=1.5 * sway),
        "neck": _vec(x=rng.uniform(-5, 5) + 2 * np.sin(2 * np.pi * f * t + ph[2])),
        "right_elbow": _vec(z=arm_out + 2 * np.sin(2 * np.pi * f * t + ph[3])),
        "left_elbow": _vec(z=-arm_out - 2 * np.sin(2 * np.pi * f * t + ph[3])),
        "right_wrist": _vec(x=elbow),
        "left_wrist": _vec(x=elbow),
        "right_hip": _vec(z=-1.5 * sway),
        "left_hip": _vec(z=-1.5 * sway),
    }


def _body_offsets(size: float, rng: np.random.Generator) -> np.ndarray:
    """Rest offsets for one person: overall size times small per-segment proportions (left = right)."""
    layout, _, _, rest = _skeleton()
    scale = np.ones(layout.num_joints)
    for segment in ("elbow", "wrist", "knee", "ankle", "shoulder", "hip"):
        s = rng.uniform(0.94, 1.06)
        for side in ("left", "right"):
            scale[layout.index(f"{side}_{segment}")] = s
    scale[layout.index("spine_mid")] = scale[layout.index("spine_shoulder")] = rng.uniform(0.94, 1.06)
    return rest * (size * scale)[:, None]


def _pose_person(
    action: str | None, t: np.ndarray, active: np.ndarray, rng: np.random.Generator, info: dict
) -> np.ndarray:
    """One person's joints [T, V, 3] in a floor frame: feet on y = 0, starting near the origin, facing -z."""
    layout, _, _, _ = _skeleton()
    angles = _idle(t, rng)
    motion = _Motion({})
    if action is not None:
        amp = info.setdefault("amplitude", round(float(rng.uniform(0.8, 1.15)), 3))
        motion = _ACTIONS[action](active, amp, rng, info)
        if action in _HANDED:
            info["hand"] = "left" if rng.random() < 0.25 else "right"
            if info["hand"] == "left":
                motion = _mirror(motion)
    for bone, value in motion.angles.items():
        _add(angles, bone, value)
    size = info.setdefault("body_size", round(float(rng.uniform(0.85, 1.15)), 3))
    pos = forward_kinematics(angles, _body_offsets(size, rng), len(t))
    # Feet stay on the floor and in place (the anchor's horizontal position is held at its first frame).
    feet = [layout.index(j) for j in ("left_foot", "right_foot", "left_ankle", "right_ankle")]
    sole = np.minimum(pos[:, feet[:2], 1].min(1), pos[:, feet[2:], 1].min(1) - 0.05)
    pos[..., 1] -= (sole - 0.03)[:, None]
    anchor = feet[2:] if motion.anchor == "feet" else [layout.index(motion.anchor)]
    held = pos[:, anchor][:, :, [0, 2]].mean(1)
    pos[..., [0, 2]] -= (held - held[:1])[:, None, :]
    if motion.lift is not None:
        pos[..., 1] += motion.lift[:, None]
    return pos


def _rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _make_one(
    action: str, label: int, index: int, seed: int, cfg: tuple[int, int, float, tuple[float, float]]
) -> Sample:
    min_frames, max_frames, two_person_fraction, noise_mm = cfg
    rng = np.random.default_rng([seed, label, index])
    num_frames = int(rng.integers(min_frames, max_frames + 1))
    pause = rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.1)  # still time before and after the action
    t = np.arange(num_frames, dtype=np.float64)
    active = np.clip((t / max(num_frames - 1, 1) - pause[0]) / (1.0 - pause[0] - pause[1]), 0.0, 1.0)
    info: dict = {}
    persons = [_pose_person(action, t, active, rng, info)]
    yaw = float(rng.uniform(-50, 50))  # 0 = facing the camera
    tilt = float(rng.uniform(0, 20))  # camera pitched down
    distance = float(rng.uniform(2.5, 3.5))
    height = float(rng.uniform(0.7, 1.3))  # camera height above the floor
    side = float(rng.uniform(-0.4, 0.4))
    places = [(side, distance, yaw)]
    if rng.random() < two_person_fraction:  # a bystander standing beside the actor
        other: dict = {}
        persons.append(_pose_person(None, t, active, rng, other))
        gap = float(rng.uniform(0.8, 1.3)) * (1 if side < 0 else -1)
        places.append((side + gap, distance + float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-40, 40))))
        info["bystander_body_size"] = other["body_size"]
    pitch = np.deg2rad(tilt)
    cam = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(pitch), np.sin(pitch)], [0.0, -np.sin(pitch), np.cos(pitch)]])
    out = []
    for pos, (x, z, ang) in zip(persons, places, strict=True):
        world = pos @ _rot_y(ang).T + np.array([x, -height, z])
        out.append(world @ cam.T)
    joints = np.stack(out)
    noise = rng.uniform(*noise_mm) / 1000.0
    joints += rng.normal(0.0, noise, joints.shape) if noise > 0 else 0.0
    meta = {
        "dataset": "synthetic",
        "layout": "ntu25",
        "action": action,
        "frames": num_frames,
        "speed": round((min_frames + max_frames) / 2 / num_frames, 3),
        "pause_start": round(pause[0], 3),
        "pause_end": round(pause[1], 3),
        "yaw_deg": round(yaw, 2),
        "tilt_deg": round(tilt, 2),
        "distance_m": round(distance, 3),
        "camera_height_m": round(height, 3),
        "noise_m": round(noise, 4),
        "num_persons": len(persons),
        **info,
    }
    name = f"syn_{action.replace(' ', '_')}_{index:04d}"
    return Sample(name=name, joints=joints.astype(np.float32), label=label, meta=meta)


def make_synthetic(
    num_per_class: int,
    seed: int,
    *,
    min_frames: int = 40,
    max_frames: int = 100,
    two_person_fraction: float = 0.0,
    noise_mm: tuple[float, float] = (3.0, 12.0),
    classes: tuple[str, ...] | None = None,
) -> list[Sample]:
    """`num_per_class` samples of every class (labels index SYNTHETIC_CLASSES), grouped by class.

    Sample i of a class depends only on (seed, class, i), so a larger call extends a smaller one.
    `noise_mm` is the range of the per-sample Gaussian sensor noise; `classes` picks a subset (labels
    still index SYNTHETIC_CLASSES).
    """
    if num_per_class < 0:
        raise ValueError("num_per_class must be >= 0")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if not 0.0 <= two_person_fraction <= 1.0:
        raise ValueError("two_person_fraction must be in [0, 1]")
    chosen = SYNTHETIC_CLASSES if classes is None else classes
    unknown = [c for c in chosen if c not in SYNTHETIC_CLASSES]
    if unknown:
        raise ValueError(f"unknown synthetic classes {unknown}; known: {list(SYNTHETIC_CLASSES)}")
    cfg = (min_frames, max_frames, float(two_person_fraction), (float(noise_mm[0]), float(noise_mm[1])))
    return [
        _make_one(action, SYNTHETIC_CLASSES.index(action), i, seed, cfg)
        for action in chosen
        for i in range(num_per_class)
    ]
