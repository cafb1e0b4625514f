"""Skeleton file readers: one module per format, a plain registry of formats, and format detection.

    read_file(path, format=None, alone=False, max_bytes=None) -> list[Sample]
                                                       one file (or a generic dataset folder), validated
    detect_format(path) -> str                         a format name of FORMATS, from the name, else the content

Format names: ntu, nw-ucla, msr, pku-mmd, toyota, openpose, openpose-frames (a folder of OpenPose *_keypoints.json,
one sample), pyskl, ctrgcn-npz, generic (a folder), npy.
Scanning a whole folder (bad files reported, class names attached) is sugar.skeleton.folders.scan.
Every reader returns float32 [M, T, V, C] samples (metres for 3D; x, y, score for 2D) and raises
sugar.errors.DataError naming the file and the problem for anything it cannot read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sugar.errors import DataError
from sugar.skeleton.readers import ctrgcn_npz, generic, msr, ntu, nw_ucla, openpose, pku_mmd, pyskl, toyota
from sugar.skeleton.readers._common import ReadLimits
from sugar.skeleton.sample import Sample

__all__ = ["FORMATS", "Format", "ReadLimits", "detect_format", "guess_format", "read_file", "resolve_format",
           "write_generic"]
write_generic = generic.write_generic


@dataclass(frozen=True)
class Format:
    """One file format: its reader, the joint layout it produces (None = depends on the file) and the file
    suffixes it uses. Which class list its labels index is the dataset registry's business
    (sugar.skeleton.datasets.dataset_for_format)."""

    read: Callable[..., list[Sample]]  # read(path, *, limits=ReadLimits())
    layout: str | None
    suffixes: tuple[str, ...]
    description: str


FORMATS: dict[str, Format] = {
    "ntu": Format(ntu.read, "ntu25", (".skeleton",), "NTU RGB+D raw .skeleton"),
    "nw-ucla": Format(nw_ucla.read, "kinect20", (".json",), "NW-UCLA json (CTR-GCN release)"),
    "msr": Format(msr.read, "msr20", (".txt",), "MSR Action3D *_skeleton3D.txt"),
    "pku-mmd": Format(pku_mmd.read, "ntu25", (".txt",), "PKU-MMD skeleton + label text"),
    "toyota": Format(toyota.read, "lcrnet13", (".json",), "Toyota Smarthome LCR-Net json"),
    "openpose": Format(openpose.read, "openpose18", (".json",), "Kinetics-Skeleton json (OpenPose 18)"),
    "openpose-frames": Format(openpose.read_frames, "openpose18", (),
                              "OpenPose output folder (*_keypoints.json)"),
    "pyskl": Format(pyskl.read, None, (".pkl", ".pickle"), "PYSKL annotation pickle"),
    "ctrgcn-npz": Format(ctrgcn_npz.read, None, (".npz",), "CTR-GCN preprocessed .npz"),
    "generic": Format(generic.read, None, (), "SUGAR generic dataset folder"),
    "npy": Format(generic.read, None, (".npy",), "one .npy array [M,T,V,C] or [T,V,C]"),
}

_NTU_NAME = re.compile(ntu.NAME_RE)
_UCLA_NAME = re.compile(r"^a\d+_s\d+_e\d+_v\d+$")
_MSR_NAME = re.compile(r"^a\d+_s\d+_e\d+(_skeleton3?D?)?$")
_PKU_NAME = re.compile(r"^\d{4}-[LMR]$")


def _sniff(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(size).decode("utf-8", errors="replace")
    except OSError:
        return ""


def guess_format(path: Path) -> str | None:
    """The format of a path, or None when it is not a skeleton file we know (e.g. a README or label file)."""
    if path.is_dir():
        if generic.is_generic_dir(path):
            return "generic"
        return "openpose-frames" if openpose.is_keypoints_dir(path) else None
    suffix, stem = path.suffix.lower(), path.stem
    if suffix == ".skeleton":
        return "ntu"
    if suffix in (".pkl", ".pickle"):
        return "pyskl"
    if suffix == ".npz":
        return "ctrgcn-npz"
    if suffix == ".npy":
        return "npy"
    if suffix == ".json":
        if path.name.endswith(openpose.KEYPOINTS_SUFFIX):
            return "openpose-frames"
        if stem.endswith("_pose3d") or toyota.NAME_RE.fullmatch(stem):
            return "toyota"
        if _UCLA_NAME.match(stem):
            return "nw-ucla"
        head = _sniff(path)
        for key, fmt in (('"skeletons"', "nw-ucla"), ('"njts"', "toyota"), ('"frames"', "toyota"),
                         ('"data"', "openpose")):
            if key in head:
                return fmt
        return None
    if suffix == ".txt":
        if _MSR_NAME.match(stem):
            return "msr"
        if _PKU_NAME.match(stem):
            return None if pku_mmd.is_label_file(path) else "pku-mmd"
        first = next((ln.split() for ln in _sniff(path).splitlines() if ln.strip()), [])
        try:
            [float(v) for v in first]
        except ValueError:
            return None
        return {4: "msr", pku_mmd.VALUES: "pku-mmd"}.get(len(first))
    return None


def detect_format(path: str | Path) -> str:
    """A FORMATS name for the file or folder; DataError when it is not a skeleton format we know."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, "no such file or folder")
    fmt = guess_format(p)
    if fmt is None:
        what = ("folder (not a generic dataset: no manifest.csv + layout.json; no *_keypoints.json; use scan)"
                if p.is_dir() else "file")
        raise DataError(p, f"cannot tell the skeleton format of this {what}; pass --format (format= in Python), "
                           f"one of {', '.join(FORMATS)}")
    return fmt


def resolve_format(path: Path, format: str | None) -> str:
    if format is None:
        return detect_format(path)
    if format not in FORMATS:
        raise DataError(path, f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    return format


def read_file(path: str | Path, format: str | None = None, *, validate: bool = True, alone: bool = False,
              max_bytes: int | None = None) -> list[Sample]:
    """The samples of one file (or generic dataset folder). validate=False skips the per-sample checks of
    container formats (callers that validate and report each sample themselves, like the dataset cache).
    alone=True reads this one file and never looks beside it (uploads: no PKU-MMD label file, no folder);
    max_bytes bounds the decoded size a compressed or binary file may declare (see ReadLimits)."""
    p = Path(path)
    fmt = resolve_format(p, format)
    if not p.exists():
        raise DataError(p, "no such file or folder")
    if alone and p.is_dir():
        raise DataError(p, "a folder cannot be read as a single file")
    samples = FORMATS[fmt].read(p, limits=ReadLimits(max_bytes=max_bytes, alone=alone))
    if validate:
        for s in samples:
            try:
                s.validate()
            except DataError as exc:
                raise DataError(p, exc.problem if len(samples) == 1 else f"{s.name}: {exc.problem}") from None
    return samples
