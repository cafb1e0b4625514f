"""PYSKL annotation pickles, read through a restricted unpickler.

{"split": {"xsub_train": [frame_dir, ...], ...}, "annotations": [{"frame_dir": name, "label": int,
 "total_frames": T, "keypoint": [M, T, V, C] array, "keypoint_score": [M, T, V] (2D only), ...}, ...]}.
A pickle can run arbitrary code when loaded, so `find_class` admits only builtin containers and the numpy
pieces that rebuild arrays, dtypes and scalars; any other global raises DataError naming it. Even those can be
turned into memory bombs by a few bytes (`bytes(10**10)`, an empty array of a huge declared shape, `hex`
encodings chained through the memo), so the admitted constructors are wrapped: sizes are checked against
ReadLimits before anything is allocated, and `_codecs.encode` only does what pickle itself uses it for.
2D keypoints with scores become C = (x, y, score). meta["split"] lists the split names that contain the sample
(comma-separated).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import DataError
from sugar.skeleton.readers._common import NO_LIMITS, ReadLimits, check_bytes, label_index, show_number, to_f32
from sugar.skeleton.sample import Sample

_ALLOWED: frozenset[tuple[str, str]] = frozenset({
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "str"), ("builtins", "bytes"), ("builtins", "bytearray"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "bool"), ("builtins", "complex"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
})  # fmt: skip
_DTYPE_MODULES = ("numpy.dtypes",)  # numpy >= 1.25 pickles dtypes as numpy.dtypes.Float32DType etc.


class _Restricted(pickle.Unpickler):
    def __init__(self, data: bytes, path: Path, limits: ReadLimits):
        super().__init__(io.BytesIO(data))
        self.path = path
        self.limits = limits
        self.declared = 0  # bytes of all arrays rebuilt so far

    def find_class(self, module: str, name: str) -> Any:
        ok = (module, name) in _ALLOWED or (module in _DTYPE_MODULES and name.endswith("DType"))
        if not ok:
            raise DataError(self.path, f"refused to unpickle global {module}.{name} (only plain containers and "
                                       "numpy arrays are allowed in annotation pickles)")
        found = super().find_class(module, name)
        if name in ("bytes", "bytearray"):
            return self._sized(found)
        if name == "encode":
            return self._latin1
        if name == "_reconstruct":
            return self._reconstruct(found)
        return found

    def _refuse(self, what: str) -> DataError:
        return DataError(self.path, f"refused {what} in an annotation pickle")

    def _sized(self, make: Any) -> Any:
        """bytes()/bytearray() as pickle uses them (from bytes), never from a count: bytes(10**10) is 10 GB."""
        def guarded(*args: Any) -> Any:
            if any(isinstance(a, int) for a in args):
                raise self._refuse(f"{make.__name__}({show_number(args[0])})")
            return make(*args)
        return guarded

    def _latin1(self, obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """pickle stores bytes as _codecs.encode(text, 'latin1'); other codecs can grow data without bound."""
        if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
            raise self._refuse(f"_codecs.encode(..., {encoding[:20]!r})")
        return obj.encode("latin-1", errors)

    def _reconstruct(self, make: Any) -> Any:
        """numpy's empty-array constructor, bounded: the shape is declared before any data arrives."""
        def guarded(cls: Any, shape: Any, dtype: Any) -> Any:
            if cls is not np.ndarray:
                raise self._refuse(f"an array subclass {getattr(cls, '__name__', cls)!r}")
            try:
                dims = [int(d) for d in (shape if isinstance(shape, tuple | list) else (shape,))]
                itemsize = np.dtype(dtype).itemsize
            except (TypeError, ValueError, OverflowError):
                raise self._refuse("an array of an unreadable shape or dtype") from None
            if any(d < 0 for d in dims):
                raise self._refuse("an array of negative shape")
            self.declared += int(np.prod(dims, dtype=object)) * max(1, itemsize)
            check_bytes(self.declared, self.path, "the pickle's arrays", self.limits)
            return make(cls, shape, dtype)
        return guarded


def safe_load(path: Path, limits: ReadLimits = NO_LIMITS) -> Any:
    """Unpickle with the restricted unpickler; every failure is a DataError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from None
    try:
        return _Restricted(data, path, limits).load()
    except DataError:
        raise
    except RecursionError:
        raise DataError(path, "malformed pickle (nested too deeply)") from None
    except Exception as exc:  # pickle raises many types on corrupt input (UnpicklingError, EOFError, ...)
        raise DataError(path, f"malformed pickle ({type(exc).__name__}: {str(exc)[:120]})") from None


def _name(value: Any) -> str:
    """A name from the pickle as text; a huge integer where a name belongs is shown short, not expanded."""
    return value if isinstance(value, str) else show_number(value)[:200]


def read(path: Path, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    doc = safe_load(path, limits)
    if isinstance(doc, list):
        doc = {"annotations": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise DataError(path, "not a PYSKL annotation pickle (no 'annotations' list)")
    splits: dict[str, list[str]] = {}
    for name, members in (doc.get("split") or {}).items() if isinstance(doc.get("split"), dict) else ():
        for m in members if isinstance(members, list | tuple) else ():
            splits.setdefault(_name(m), []).append(_name(name))
    samples = []
    for k, ann in enumerate(doc["annotations"]):
        where = f"annotations[{k}]"
        if not isinstance(ann, dict) or "keypoint" not in ann:
            raise DataError(path, f"{where} has no 'keypoint' array")
        kp = ann["keypoint"]
        if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.shape[-1] not in (2, 3):
            raise DataError(path, f"{where}.keypoint must be an [M, T, V, 2|3] array, got "
                                  f"{getattr(kp, 'shape', type(kp).__name__)}")
        if not np.issubdtype(kp.dtype, np.number) or kp.dtype.kind == "c":
            raise DataError(path, f"{where}.keypoint is not a real-valued numeric array ({kp.dtype})")
        joints = to_f32(kp.astype(np.float64), path, f"{where}.keypoint")
        score = ann.get("keypoint_score")
        if joints.shape[-1] == 2 and score is not None:
            if not isinstance(score, np.ndarray) or score.shape != joints.shape[:3]:
                raise DataError(path, f"{where}.keypoint_score must be [M, T, V] = {joints.shape[:3]}")
            if not np.issubdtype(score.dtype, np.number) or score.dtype.kind == "c":
                raise DataError(path, f"{where}.keypoint_score is not a real-valued numeric array ({score.dtype})")
            score32 = to_f32(score.astype(np.float64), path, f"{where}.keypoint_score")
            joints = np.concatenate([joints, score32[..., None]], axis=-1)
        name = _name(ann.get("frame_dir", f"{path.stem}_{k:06d}"))
        label = ann.get("label")
        if label is not None:
            if isinstance(label, np.ndarray) and label.size == 1:
                label = label.reshape(()).item()
            label = label_index(label, path, f"{where}.label")
            if label is None:
                raise DataError(path, f"{where}.label must be >= 0")
        meta: dict = {}
        if name in splits:
            meta["split"] = ",".join(splits[name])
        samples.append(Sample(name, joints, label, meta))
    if not samples:
        raise DataError(path, "no annotation in the pickle")
    return samples
