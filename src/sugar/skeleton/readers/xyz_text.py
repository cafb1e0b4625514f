"""Plain text skeletons: one joint per line `x y z` (metres), a blank line between frames.

The simplest thing a user's own capture code can write (see docs/data.md for an example). A first line
`# layout: NAME` names the joint layout (a built-in name such as kinect20 or ntu25); without it the layout is
given with --layout. Every frame must have the same number of joint lines; `#` lines are comments. One
person; the file name is the sample name.
"""

from __future__ import annotations

import re
from pathlib import Path

from sugar.errors import DataError
from sugar.skeleton.readers._common import NO_LIMITS, ReadLimits, numbers, read_text, to_f32
from sugar.skeleton.sample import Sample

SUFFIXES = (".txt", ".xyz")
_LAYOUT = re.compile(r"^#\s*layout\s*:\s*(\S+)\s*$", re.IGNORECASE)


def read(path: Path, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    layout = None
    frames: list[list[list[str]]] = [[]]
    for n, line in enumerate(read_text(path).splitlines(), 1):
        text = line.strip()
        if text.startswith("#"):
            found = _LAYOUT.match(text)
            layout = found.group(1) if found and n == 1 else layout
            continue
        if not text:
            if frames[-1]:
                frames.append([])
            continue
        values = text.split()
        if len(values) != 3:
            raise DataError(path, f"line {n}: expected 3 numbers (x y z), got {len(values)}")
        frames[-1].append(values)
    frames = [f for f in frames if f]
    if not frames:
        raise DataError(path, "empty file (no joint lines)")
    counts = {len(f) for f in frames}
    if len(counts) != 1:
        raise DataError(path, f"frames have different joint counts ({', '.join(map(str, sorted(counts)))}); "
                              "separate frames by one blank line")
    joints = numbers([v for f in frames for row in f for v in row], path, "joint lines").reshape(
        len(frames), counts.pop(), 3)
    meta = {"layout": layout} if layout else {}
    sample = Sample(path.stem, to_f32(joints, path, "joint coordinates")[None], None, meta)
    return [sample.validate(source=path)]
