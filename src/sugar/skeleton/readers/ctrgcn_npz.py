"""CTR-GCN's preprocessed `.npz` (e.g. NTU60_CS.npz): x_train, y_train, x_test, y_test.

x is N x T x 150 (2 persons x 25 joints x 3, CTR-GCN's seq_transformation output) or N x C x T x V x M;
y is one-hot N x classes or integer N. Loaded with allow_pickle=False. Trailing all-zero frames (CTR-GCN pads
every sequence to 300 frames) are trimmed, and persons that are all zero dropped (at least one kept).
Samples are named `train_000000`, `test_000000`, ... with meta["split"].
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import (
    MAX_LABEL,
    NO_LIMITS,
    ReadLimits,
    check_bytes,
    npy_declared_bytes,
    show_number,
    to_f32,
)
from sugar.skeleton.sample import Sample


def _labels(y: np.ndarray, n: int, path: Path, key: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[0] == n:
        return y.argmax(axis=1)
    if y.ndim == 1 and y.shape[0] == n:
        if not np.issubdtype(y.dtype, np.number) or y.dtype.kind == "c" or not np.all(np.isfinite(y)) or \
                (y < 0).any() or (np.asarray(y) != np.round(y)).any():
            raise DataError(path, f"{key} must hold non-negative integer labels")
        if y.size and y.max() > MAX_LABEL:
            raise DataError(path, f"{key} holds label {show_number(y.max())}, more than {MAX_LABEL}")
        return y.astype(np.int64)
    raise DataError(path, f"{key} has shape {y.shape}; expected ({n},) labels or ({n}, classes) one-hot")


def _to_mtvc(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """N x M x T x V x C."""
    if x.ndim == 3:
        if x.shape[2] % 3:
            raise DataError(path, f"{key}: last axis {x.shape[2]} is not persons x joints x 3")
        per = x.shape[2] // 3
        persons = 2 if per % 25 == 0 and per // 25 == 2 else 1
        v = per // persons
        return x.reshape(x.shape[0], x.shape[1], persons, v, 3).transpose(0, 2, 1, 3, 4)
    if x.ndim == 5:
        return x.transpose(0, 4, 2, 3, 1)  # N C T V M -> N M T V C
    raise DataError(path, f"{key} has shape {x.shape}; expected N x T x 150 or N x C x T x V x M")


def check_archive(path: Path, limits: ReadLimits) -> None:
    """Refuse a zip bomb before numpy opens it: the members' declared sizes (which bound what zipfile will
    inflate) must fit the limits, and each array header must declare no more data than its member holds."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            check_bytes(sum(i.file_size for i in infos), path, "the archive", limits)
            for info in infos:
                with zf.open(info) as member:
                    declared = npy_declared_bytes(member, path, info.filename)
                if declared > info.file_size:
                    raise DataError(path, f"{info.filename}: its header declares {declared} bytes of data, "
                                          f"but the member holds {info.file_size}")
    except DataError:
        raise
    except Exception as exc:  # damaged zips fail with many error types (BadZipFile, zlib, struct, EOF, ...)
        raise DataError(path, f"not a readable .npz ({type(exc).__name__}: {str(exc)[:120]})") from None


def read(path: Path, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    check_archive(path, limits)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # damaged zips and array headers fail with many error types (zlib, struct, ...)
        raise DataError(path, f"not a readable .npz ({type(exc).__name__}: {str(exc)[:120]})") from None
    parts = [p for p in ("train", "test") if f"x_{p}" in arrays]
    if not parts:
        raise DataError(path, f"no x_train / x_test arrays (found {sorted(arrays)})")
    samples = []
    for part in parts:
        x, y = arrays[f"x_{part}"], arrays.get(f"y_{part}")
        if not np.issubdtype(x.dtype, np.number) or x.dtype.kind == "c":
            raise DataError(path, f"x_{part} is not numeric ({x.dtype})")
        data = _to_mtvc(x, path, f"x_{part}")
        labels = _labels(y, len(x), path, f"y_{part}") if y is not None else None
        for i in range(len(data)):
            joints = data[i]
            alive = np.flatnonzero(joints.reshape(joints.shape[0], joints.shape[1], -1).any(axis=(0, 2)))
            joints = joints[:, : alive[-1] + 1] if alive.size else joints[:, :0]
            persons = [m for m in range(joints.shape[0]) if joints[m].any()] or [0]
            label = int(labels[i]) if labels is not None else None
            arr = to_f32(np.ascontiguousarray(joints[persons]), path, f"x_{part}[{i}]")
            samples.append(Sample(f"{part}_{i:06d}", arr, label, {"split": part}))
    return samples
