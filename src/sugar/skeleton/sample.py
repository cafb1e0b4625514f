"""The canonical in-memory form every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import DataError


@dataclass
class Sample:
    """One skeleton sequence.

    joints: float32 [M, T, V, C]; C = (x, y, z) in metres for 3D data or (x, y, score) for 2D data.
    Persons that are absent in a frame are zero-filled. label is the class index (None when unknown).
    """

    name: str
    joints: np.ndarray
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_persons(self) -> int:
        return int(self.joints.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[1])

    @property
    def num_joints(self) -> int:
        return int(self.joints.shape[2])

    def validate(self, num_joints: int | None = None, source: str | Path | None = None) -> Sample:
        """Raise DataError naming the source when the array is not a usable skeleton sequence."""
        where = source if source is not None else self.name
        j = self.joints
        if not isinstance(j, np.ndarray) or j.ndim != 4:
            raise DataError(where, f"joints must be a 4-D array [M, T, V, C], got shape {getattr(j, 'shape', None)}")
        if j.shape[0] < 1:
            raise DataError(where, "no person in the sequence")
        if j.shape[1] < 1:
            raise DataError(where, "empty sequence (0 frames)")
        if j.shape[3] not in (2, 3):
            raise DataError(where, f"expected 2 or 3 coordinates per joint, got {j.shape[3]}")
        if num_joints is not None and j.shape[2] != num_joints:
            raise DataError(where, f"expected {num_joints} joints, got {j.shape[2]}")
        if not np.isfinite(j).all():
            raise DataError(where, "contains NaN or infinite coordinates")
        if not np.any(j):
            raise DataError(where, "all coordinates are zero (no skeleton recorded)")
        if j.dtype != np.float32:
            self.joints = j.astype(np.float32)
        return self
