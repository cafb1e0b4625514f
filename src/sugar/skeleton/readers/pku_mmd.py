"""PKU-MMD (phase 1) skeletons and action labels, cut into one Sample per labelled action segment.

Skeleton file `NNNN-V.txt` (V = L, M or R camera): one line per frame of 150 numbers = 2 bodies x 25 joints
(ntu25 order) x (x, y, z) in metres; a body that is absent is all zeros. Label file of the same name (in a
folder beside the skeleton folder whose name contains "label", e.g. Train_Label_PKU_final/): one line per
action `label,start,end,confidence` with a 1-based label. Segment k (1-based) of a video is named
`NNNN-V_kk`; its label is label - 1 and it holds skeleton lines start..end-1 (0-based, the slicing common
reproductions use), clipped to the file. Bodies that are all zero over a segment are dropped (at least one
person is kept). Read alone (ReadLimits.alone, e.g. an upload to the service), a skeleton file is one
unlabelled sample of the whole video and no label file is looked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import NO_LIMITS, ReadLimits, as_int, numbers, read_text, to_f32
from sugar.skeleton.sample import Sample

LAYOUT = "ntu25"
VALUES = 150  # 2 bodies x 25 joints x 3
LABEL_FIELDS = 4


def is_label_file(path: Path) -> bool:
    """A PKU-MMD label file: first non-empty line has comma-separated fields (skeleton files have none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    return "," in line
    except OSError:
        return False
    return False


def find_label_file(path: Path) -> Path | None:
    """The label file for a skeleton file: same name in a sibling folder whose name contains 'label'."""
    parent = path.parent
    folders = [parent / "labels", parent / "Label"]
    if parent.parent != parent and parent.parent.is_dir():
        folders += sorted(d for d in parent.parent.iterdir() if d.is_dir() and "label" in d.name.lower())
    for folder in folders:
        cand = folder / path.name
        if cand.is_file() and cand != path:
            return cand
    return None


def read_labels(path: Path) -> list[tuple[int, int, int, float]]:
    """(label 0-based, start, end, confidence) per line of a label file."""
    out = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.strip().rstrip(",").split(",")]
        if len(fields) != LABEL_FIELDS:
            raise DataError(path, f"line {n}: expected 'label,start,end,confidence', got {line.strip()[:60]!r}")
        vals = numbers(fields, path, f"line {n}")
        label = as_int(vals[0], path, f"line {n}: label", 1, 10_000) - 1
        start = as_int(vals[1], path, f"line {n}: start frame", 0)
        end = as_int(vals[2], path, f"line {n}: end frame", 0)
        if end < start:
            raise DataError(path, f"line {n}: end frame {end} is before start frame {start}")
        out.append((label, start, end, float(vals[3])))
    if not out:
        raise DataError(path, "label file has no action")
    return out


def read_skeleton(path: Path) -> np.ndarray:
    """[2, T, 25, 3] float32 of a whole video."""
    lines = [ln.split() for ln in read_text(path).splitlines() if ln.strip()]
    if not lines:
        raise DataError(path, "empty skeleton file (no frames)")
    for n, row in enumerate(lines, 1):
        if len(row) != VALUES:
            raise DataError(path, f"frame {n}: expected {VALUES} numbers (2 bodies x 25 joints x 3), got {len(row)}")
    vals = numbers([t for row in lines for t in row], path, "skeleton values")
    return to_f32(vals.reshape(len(lines), 2, 25, 3).transpose(1, 0, 2, 3), path, "skeleton values")


def whole_video(path: Path) -> Sample:
    """The skeleton file alone (no label file looked for): the whole video as one unlabelled sample."""
    joints = read_skeleton(path)
    present = [m for m in range(joints.shape[0]) if joints[m].any()] or [0]
    return Sample(path.stem, np.ascontiguousarray(joints[present]), None, {"layout": LAYOUT, "video": path.stem})


def read(path: Path, label_path: Path | None = None, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    if is_label_file(path):
        raise DataError(path, "this is a PKU-MMD label file; read the skeleton file of the same name")
    if limits.alone and label_path is None:
        return [whole_video(path)]
    label_path = label_path or find_label_file(path)
    if label_path is None:
        raise DataError(path, "no PKU-MMD label file found (same name in a sibling folder named like '*label*')")
    joints = read_skeleton(path)
    video = path.stem
    frames = joints.shape[1]
    samples = []
    for k, (label, start, end, conf) in enumerate(read_labels(label_path), 1):
        lo, hi = start, min(end, frames)
        if hi <= lo:
            raise DataError(label_path, f"action {k} spans frames {start}..{end}, outside the {frames}-frame video")
        seg = joints[:, lo:hi]
        present = [m for m in range(seg.shape[0]) if seg[m].any()] or [0]
        meta = {"layout": LAYOUT, "video": video, "start": start, "end": end, "confidence": conf}
        samples.append(Sample(f"{video}_{k:02d}", np.ascontiguousarray(seg[present]), label, meta))
    return samples
