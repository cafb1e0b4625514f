"""NTU RGB+D 60/120 raw `.skeleton` files (Kinect v2, 25 joints, metres).

Format: the first line is the frame count; each frame has a body count, then per body one line of 10
body-info values (body id, clipped edges, hand states, restricted flag, lean x/y, tracking state), a joint
count (25), and one line per joint of 12 values: x y z (metres, camera space), depthX depthY, colorX colorY,
orientation w x y z, trackingState. We keep x y z.

Choosing persons follows SGN / CTR-GCN's raw-data preprocessing (get_raw_denoised_data.py: denoising_bodies_data
and get_two_actors_points), because Kinect often reports furniture or shadows as extra bodies and NTU body
ids often switch mid-clip (one person split over several ids). With more than one body id:
  1. length: drop bodies seen in 11 frames or fewer (NOISE_LEN); if that drops every body, all are kept;
  2. spread: a frame is noisy when the joints' x-spread exceeds 0.8 x their y-spread (NOISE_SPREAD); a body
     with at least 69.754 % noisy frames (NOISE_SPREAD_FRAMES) is dropped, otherwise its motion becomes the
     smaller of its motion and the motion of its clean frames. Bodies are visited in order of appearance and
     the step stops once one body is left (so it never drops them all);
  3. slots: motion = variance of the body's joint positions pooled over frames and joints, per coordinate,
     summed. Bodies are taken by decreasing motion: the first fills person slot 0; each next one joins slot 0
     (filling its frames) when its frame range [first, last] does not overlap slot 0's range, else slot 1 when
     it does not overlap slot 1's (which starts as CTR-GCN's virtual [0, 0]), else it is dropped. Slot ranges
     grow to cover the bodies they take; ranges meeting at one frame do not overlap (CTR-GCN's `<= 0` test).
(With max_persons > 2, further slots follow slot 1's rule.) Frames where a slot has no body are zero, so T
always equals the file's frame count; M is 1 or 2 by default.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import (
    MAX_BODIES,
    MAX_FRAMES,
    NO_LIMITS,
    ReadLimits,
    as_int,
    name_ids,
    numbers,
    read_text,
    to_f32,
)
from sugar.skeleton.sample import Sample

LAYOUT = "ntu25"
JOINTS = 25
BODY_INFO = 10
JOINT_VALUES = 12
MAX_PERSONS = 2
NOISE_LEN = 11  # bodies present in <= this many frames are noise
NOISE_SPREAD = 0.8  # x-spread / y-spread above this marks a frame as noisy
NOISE_SPREAD_FRAMES = 0.69754  # fraction of noisy frames from which on a body is noise
NAME_RE = r"S(?P<setup>\d{3})C(?P<camera>\d{3})P(?P<performer>\d{3})R(?P<replication>\d{3})A(?P<action>\d{3})"
ID_RE = re.compile(r"S\d{3}C\d{3}P\d{3}R\d{3}A\d{3}")


def _parse(path: Path) -> tuple[int, dict[str, tuple[list[int], list[np.ndarray]]]]:
    """(frame count, {body id: (frame indices, [25 x 3] joints per frame)}) in order of appearance."""
    tokens = read_text(path).split()
    if not tokens:
        raise DataError(path, "empty file")
    values = numbers(tokens, path, "skeleton file")
    n = len(values)
    frames = as_int(values[0], path, "frame count (first line)", 0, MAX_FRAMES)
    if frames == 0:
        raise DataError(path, "empty sequence (frame count is 0)")
    bodies: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    i = 1
    for t in range(frames):
        if i >= n:
            raise DataError(path, f"truncated: file ends before frame {t + 1} of {frames}")
        count = as_int(values[i], path, f"frame {t + 1}: body count", 0, MAX_BODIES)
        i += 1
        for b in range(count):
            if i + BODY_INFO >= n:
                raise DataError(path, f"truncated: file ends inside frame {t + 1}, body {b + 1}")
            body_id = tokens[i]
            i += BODY_INFO
            nj = as_int(values[i], path, f"frame {t + 1}, body {b + 1}: joint count", 0, 10_000)
            if nj != JOINTS:
                raise DataError(path, f"frame {t + 1}, body {b + 1}: expected {JOINTS} joints, got {nj}")
            i += 1
            end = i + JOINTS * JOINT_VALUES
            if end > n:
                raise DataError(path, f"truncated: file ends inside frame {t + 1}, body {b + 1} joints")
            block = values[i:end].reshape(JOINTS, JOINT_VALUES)[:, :3]
            i = end
            idx, arrs = bodies.setdefault(body_id, ([], []))
            if idx and idx[-1] == t:
                raise DataError(path, f"frame {t + 1}: body id {body_id} appears twice")
            idx.append(t)
            arrs.append(block)
    if i != n:
        raise DataError(path, f"{n - i} unexpected values after the last of {frames} frames "
                              "(wrong frame count or corrupted file)")
    return frames, bodies


def _motion(arr: np.ndarray) -> float:
    """CTR-GCN's motion of a body [t, 25, 3]: variance of all joint positions (pooled), per coordinate, summed."""
    return float(np.var(arr.reshape(-1, 3), axis=0).sum())


def _noisy_frames(arr: np.ndarray) -> np.ndarray:
    """Per frame: is the body wider (x-spread) than NOISE_SPREAD times its height (y-spread)?"""
    spread = arr.max(axis=1) - arr.min(axis=1)  # [t, 3]
    return spread[:, 0] > NOISE_SPREAD * spread[:, 1]


def denoise(bodies: dict[str, np.ndarray]) -> list[str]:
    """Body ids that survive the length and spread rules (steps 1-2 of the module doc), most active first."""
    motion = {b: _motion(a) for b, a in bodies.items()}
    ids = list(bodies)
    if len(ids) > 1:
        ids = [b for b in ids if len(bodies[b]) > NOISE_LEN] or ids
    if len(ids) > 1:
        for b in list(ids):
            if len(ids) == 1:
                break
            noisy = _noisy_frames(bodies[b])
            if not noisy.any():
                continue
            if noisy.mean() >= NOISE_SPREAD_FRAMES:
                ids.remove(b)
            else:
                motion[b] = min(motion[b], _motion(bodies[b][~noisy]))
    return sorted(ids, key=lambda b: -motion[b])


def assign_slots(ranked: list[str], frames: dict[str, list[int]], max_persons: int = MAX_PERSONS) -> list[list[str]]:
    """Person slots (each a list of body ids) from bodies ranked by motion (step 3 of the module doc)."""
    slots: list[list[str]] = [[] for _ in range(max_persons)]
    spans = [[0, 0] for _ in range(max_persons)]  # CTR-GCN's virtual initial range of a free slot
    for k, b in enumerate(ranked):
        start, end = frames[b][0], frames[b][-1]
        if k == 0:
            slot = 0
            spans[0] = [start, end]
        else:
            slot = next((s for s in range(max_persons) if min(spans[s][1], end) - max(spans[s][0], start) <= 0), -1)
            if slot < 0:
                continue
            spans[slot] = [min(spans[slot][0], start), max(spans[slot][1], end)]
        slots[slot].append(b)
    return [s for s in slots if s]


def read(path: Path, max_persons: int = MAX_PERSONS, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    frames, bodies = _parse(path)
    if not bodies:
        raise DataError(path, "no body in any frame (no skeleton recorded)")
    stacked = {b: to_f32(np.stack(arrs), path, "joint coordinates") for b, (_, arrs) in bodies.items()}
    slots = assign_slots(denoise(stacked), {b: idx for b, (idx, _) in bodies.items()}, max_persons)
    joints = np.zeros((len(slots), frames, JOINTS, 3), dtype=np.float32)
    for m, slot in enumerate(slots):
        for b in slot:  # later (less active) bodies fill frames of the range they were placed on
            joints[m, bodies[b][0]] = stacked[b]
    name = path.name.removesuffix(".skeleton")
    ids = name_ids(NAME_RE, name)
    label = ids["action"] - 1 if ids.get("action", 0) >= 1 else None
    meta = {"layout": LAYOUT, **ids, "bodies": len(bodies)}
    return [Sample(name, joints, label, meta).validate(num_joints=JOINTS, source=path)]


def read_missing_list(path: Path) -> frozenset[str]:
    """Sample ids of the official 'samples with missing skeletons' list (3-line header, one id a line)."""
    lines = read_text(path).splitlines()
    ids = [ln.strip() for ln in lines[3:] if ln.strip()]
    bad = [s for s in ids if not ID_RE.fullmatch(s)]
    if bad:
        raise DataError(path, f"not an NTU sample id: {bad[0]!r} (expected a 3-line header, then one id a line)")
    return frozenset(ids)
