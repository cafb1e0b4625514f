"""The project's own dataset format, and single `.npy` skeleton files.

A generic dataset is a folder:
    layout.json    the joint layout (`Layout.to_dict()`; a built-in layout is written out in full)
    classes.txt    class names, one a line, in label-index order
    manifest.csv   header `name,label,split,path[,subject]`; label = a class name from classes.txt (empty =
                   unknown), split = free text (train/test/...; may be empty), path = the .npy file, relative
                   to the folder, subject = who performs it (optional; gives the xsub protocol)
    samples/*.npy  one array per sample: float32 [M, T, V, C] (C = x, y, z in metres, or x, y, score)
Arrays are loaded with allow_pickle=False. A single `.npy` file ([M, T, V, C] or [T, V, C]) is also readable on
its own; its layout must then be given separately.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from sugar.errors import DataError, LayoutError
from sugar.skeleton.layouts import Layout, get_layout
from sugar.skeleton.readers._common import (
    NO_LIMITS,
    ReadLimits,
    check_bytes,
    npy_declared_bytes,
    read_json,
    read_text,
    to_f32,
)
from sugar.skeleton.sample import Sample

MANIFEST = "manifest.csv"
LAYOUT_FILE = "layout.json"
CLASSES = "classes.txt"
COLUMNS = ["name", "label", "split", "path"]


def is_generic_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file() and (path / LAYOUT_FILE).is_file()


def read_npy(path: Path, name: str | None = None, limits: ReadLimits = NO_LIMITS) -> Sample:
    """One .npy array ([M, T, V, C] or [T, V, C]) as a Sample (not yet validated). The header is checked
    first: an array must not declare more data than the file holds, nor more than the limits allow."""
    try:
        with open(path, "rb") as fh:
            declared = npy_declared_bytes(fh, path, "array")
            held = path.stat().st_size - fh.tell()
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from None
    if declared > held:
        raise DataError(path, f"the header declares {declared} bytes of data, but the file holds {held}")
    check_bytes(declared, path, "the array", limits)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged header fails deep in numpy's parser with many error types
        raise DataError(path, f"not a readable .npy array ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number) or arr.dtype.kind == "c":
        raise DataError(path, f"expected a real-valued numeric array, got dtype {getattr(arr, 'dtype', '?')}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise DataError(path, f"expected [M, T, V, C] or [T, V, C], got shape {arr.shape}")
    return Sample(name or path.stem, to_f32(arr, path, "array"), None, {})


def read_layout(folder: Path) -> Layout:
    path = folder / LAYOUT_FILE
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "a layout file must hold one JSON object")
    try:
        return Layout.from_dict(data, source=str(path))
    except LayoutError as exc:
        raise DataError(path, str(exc)) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # fields of the wrong JSON type
        raise DataError(path, f"malformed layout ({type(exc).__name__}: {str(exc)[:120]})") from None


def read_classes(folder: Path) -> list[str]:
    path = folder / CLASSES
    if not path.is_file():
        return []
    names = [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]
    if len(set(names)) != len(names):
        raise DataError(path, "class names must be unique")
    return names


def read_manifest(folder: Path) -> list[dict[str, str]]:
    path = folder / MANIFEST
    try:
        rows = list(csv.DictReader(io.StringIO(read_text(path))))
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV ({exc})") from None
    if not rows:
        raise DataError(path, "manifest has no sample")
    missing = [c for c in COLUMNS if c not in rows[0]]
    if missing:
        raise DataError(path, f"manifest is missing columns {missing}; expected header {','.join(COLUMNS)}")
    return rows


def iter_dir(folder: Path) -> Iterable[tuple[str, Sample | None, str | None]]:
    """(file, sample, None) or (file, None, reason) per manifest row, so one bad array never stops the rest."""
    layout = read_layout(folder)
    classes = read_classes(folder)
    index = {c: i for i, c in enumerate(classes)}
    manifest = folder / MANIFEST
    seen: set[str] = set()
    for n, row in enumerate(read_manifest(folder), 2):
        name, rel = (row.get("name") or "").strip(), (row.get("path") or "").strip()
        if not name or not rel:
            yield str(manifest), None, f"line {n}: empty name or path"
            continue
        if name in seen:
            yield str(manifest), None, f"line {n}: duplicate sample name {name!r}"
            continue
        seen.add(name)
        if "\x00" in rel:
            yield str(manifest), None, f"line {n}: path contains a NUL byte"
            continue
        target = (folder / rel).resolve()
        if folder.resolve() not in target.parents:
            yield str(manifest), None, f"line {n}: path {rel!r} leaves the dataset folder"
            continue
        label_name = (row.get("label") or "").strip()
        if label_name and label_name not in index:
            yield str(manifest), None, f"line {n}: label {label_name!r} is not in {CLASSES}"
            continue
        try:
            s = read_npy(target, name)
        except DataError as exc:
            yield str(target), None, exc.problem
            continue
        if s.num_joints != layout.num_joints:
            yield str(target), None, f"{s.num_joints} joints, but layout {layout.name!r} has {layout.num_joints}"
            continue
        s.label = index[label_name] if label_name else None
        s.meta = {"layout": layout.name, "split": (row.get("split") or "").strip()}
        if (row.get("subject") or "").strip():
            s.meta["subject"] = row["subject"].strip()
        yield str(target), s, None


def read_dir(folder: Path) -> list[Sample]:
    """All samples of a generic dataset folder; the first bad one raises DataError."""
    out = []
    for source, sample, reason in iter_dir(folder):
        if sample is None:
            raise DataError(source, reason or "unreadable")
        out.append(sample)
    return out


def read(path: Path, *, limits: ReadLimits = NO_LIMITS) -> list[Sample]:
    if path.is_dir():
        if limits.alone:
            raise DataError(path, "a folder cannot be read as a single file")
        if not is_generic_dir(path):
            raise DataError(path, f"not a generic dataset folder (needs {MANIFEST} and {LAYOUT_FILE})")
        return read_dir(path)
    return [read_npy(path, limits=limits)]


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def write_generic(samples: Sequence[Sample], layout: Layout | str, classes: Sequence[str],
                  splits: Sequence[str] | None, out_dir: str | Path) -> Path:
    """Write samples as a generic dataset folder. splits: one per sample (or None: taken from
    meta["split"], empty when absent). Labels index `classes`. Refuses to overwrite an existing manifest."""
    out = Path(out_dir)
    layout = get_layout(layout)
    if (out / MANIFEST).exists():
        raise DataError(out, f"already holds a {MANIFEST}; choose an empty folder")
    if splits is not None and len(splits) != len(samples):
        raise DataError(out, f"{len(splits)} splits given for {len(samples)} samples")
    if len(set(classes)) != len(classes) or any(not c.strip() or "\n" in c for c in classes):
        raise DataError(out, "class names must be unique, non-empty, single-line")
    (out / "samples").mkdir(parents=True, exist_ok=True)
    layout.to_json(out / LAYOUT_FILE)
    (out / CLASSES).write_text("".join(f"{c}\n" for c in classes))
    used: set[str] = set()
    rows = []
    for i, s in enumerate(samples):
        if s.num_joints != layout.num_joints:
            raise DataError(s.name, f"{s.num_joints} joints, but layout {layout.name!r} has {layout.num_joints}")
        if s.label is not None and not 0 <= s.label < len(classes):
            raise DataError(s.name, f"label {s.label} is outside the {len(classes)} classes")
        stem = _SAFE.sub("_", s.name).strip("._") or f"sample_{i:06d}"
        while stem in used:
            stem = f"{stem}_{i}"
        used.add(stem)
        rel = f"samples/{stem}.npy"
        np.save(out / rel, np.ascontiguousarray(s.joints, dtype=np.float32), allow_pickle=False)
        split = splits[i] if splits is not None else str(s.meta.get("split", ""))
        rows.append({"name": s.name, "label": classes[s.label] if s.label is not None else "",
                     "split": split, "path": rel, "subject": str(s.meta.get("subject", ""))})
    with_subject = any(r["subject"] for r in rows)
    if not with_subject:
        for r in rows:
            del r["subject"]
    with open(out / MANIFEST, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "subject"] if with_subject else COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return out
