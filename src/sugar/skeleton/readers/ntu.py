"""NTU RGB+D 60/120 raw `.skeleton` files (Kinect v2, 25 joints, metres).

Format: the first line is the frame count; each frame has a body count, then per body one line of 10
body-info values (body id, clipped edges, hand states, restricted flag, lean x/y, tracking state), a joint
count (25), and one line per joint of 12 values: x y z (metres, camera space), depthX depthY, colorX colorY,
orientation w x y z, trackingState. We keep x y z.

Choosing persons (the SGN / CTR-GCN "denoising" of raw NTU data, applied only when a file has more than
one body, because Kinect often reports furniture or shadows as extra bodies):
  1. drop bodies seen in 11 frames or fewer;
  2. drop bodies whose shape is wider than tall: a frame is noisy when the joints' x-spread exceeds
     0.8 x their y-spread, and a body is dropped when more than 69.754 % of its frames are noisy;
  3. rank the remaining bodies by motion (sum over joints and coordinates of the variance over the frames
     where the body is present) and keep the top two (slot 0 = most active).
If every body would be dropped, steps 1-2 are skipped (the file still has a real skeleton). Each body keeps
its own frame indices: frames where it is absent are zero, so T always equals the file's frame count.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import MAX_BODIES, MAX_FRAMES, as_int, name_ids, numbers, read_text, to_f32
from sugar.skeleton.sample import Sample

LAYOUT = "ntu25"
JOINTS = 25
BODY_INFO = 10
JOINT_VALUES = 12
MAX_PERSONS = 2
NOISE_LEN = 11  # bodies present in <= this many frames are noise
NOISE_SPREAD = 0.8  # x-spread / y-spread above this marks a frame as noisy
NOISE_SPREAD_FRAMES = 0.69754  # fraction of noisy frames above which a body is noise
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
    return float(np.var(arr.reshape(len(arr), -1), axis=0).sum())


def _noisy_spread(arr: np.ndarray) -> bool:
    spread = arr.max(axis=1) - arr.min(axis=1)  # [t, 3]
    noisy = spread[:, 0] > NOISE_SPREAD * spread[:, 1]
    return bool(noisy.mean() > NOISE_SPREAD_FRAMES)


def select_bodies(bodies: dict[str, np.ndarray], max_persons: int = MAX_PERSONS) -> list[str]:
    """Body ids to keep (most active first), after the SGN/CTR-GCN length and spread denoising."""
    ids = list(bodies)
    if len(ids) > 1:
        kept = [b for b in ids if len(bodies[b]) > NOISE_LEN and not _noisy_spread(bodies[b])]
        ids = kept or ids
    ids.sort(key=lambda b: -_motion(bodies[b]))
    return ids[:max_persons]


def read(path: Path, max_persons: int = MAX_PERSONS) -> list[Sample]:
    frames, bodies = _parse(path)
    if not bodies:
        raise DataError(path, "no body in any frame (no skeleton recorded)")
    stacked = {b: to_f32(np.stack(arrs), path, "joint coordinates") for b, (_, arrs) in bodies.items()}
    keep = select_bodies(stacked, max_persons)
    joints = np.zeros((len(keep), frames, JOINTS, 3), dtype=np.float32)
    for m, b in enumerate(keep):
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
