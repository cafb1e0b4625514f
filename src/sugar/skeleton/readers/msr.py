"""MSR Action3D skeletons, real-world coordinates (`aAA_sSS_eEE_skeleton3D.txt`).

Text, one row per joint `x y z confidence`, 20 rows per frame, joints in the `msr20` order; metres.
The confidence column is dropped. Names give action (1..20), subject and episode; label = action - 1.
"""

from __future__ import annotations

from pathlib import Path

from sugar.errors import DataError
from sugar.skeleton.readers._common import NO_LIMITS, ReadLimits, name_ids, numbers, read_text, to_f32
from sugar.skeleton.sample import Sample

LAYOUT = "msr20"
JOINTS = 20
NAME_RE = r"a(?P<action>\d+)_s(?P<subject>\d+)_e(?P<episode>\d+)"


def read(path: Path, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    lines = [ln.split() for ln in read_text(path).splitlines() if ln.strip()]
    if not lines:
        raise DataError(path, "empty file (no frames)")
    widths = {len(row) for row in lines}
    if widths != {4}:
        bad = next(i for i, row in enumerate(lines) if len(row) != 4)
        raise DataError(path, f"line {bad + 1}: expected 4 numbers (x y z confidence), got {len(lines[bad])}")
    if len(lines) % JOINTS:
        raise DataError(path, f"{len(lines)} joint rows is not a whole number of {JOINTS}-joint frames "
                              "(truncated file or wrong joint count)")
    rows = numbers([tok for row in lines for tok in row], path, "joint rows").reshape(-1, 4)
    joints = to_f32(rows[:, :3].reshape(-1, JOINTS, 3), path, "joint coordinates")
    name = path.name.removesuffix(".txt").removesuffix("_skeleton3D").removesuffix("_skeleton")
    ids = name_ids(NAME_RE, name)
    label = ids["action"] - 1 if 1 <= ids.get("action", 0) <= 20 else None
    sample = Sample(name, joints[None], label, {"layout": LAYOUT, **ids})
    return [sample.validate(num_joints=JOINTS, source=path)]
