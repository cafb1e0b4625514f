"""Skeleton file readers: one module per format, a plain registry, format detection and folder scanning.

    read_file(path, format=None) -> list[Sample]     one file (or a generic dataset folder), validated
    scan(path, format=None) -> ScanResult              every readable file under a folder; bad ones reported
    detect_format(path) -> str                         a format name of FORMATS, from the name, else the content

Format names: ntu, nw-ucla, msr, pku-mmd, toyota, openpose, openpose-frames (a folder of OpenPose *_keypoints.json,
one sample), pyskl, ctrgcn-npz, generic (a folder), npy.
Every reader returns float32 [M, T, V, C] samples (metres for 3D; x, y, score for 2D) and raises
sugar.errors.DataError naming the file and the problem for anything it cannot read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sugar.errors import DataError, KnowledgeError
from sugar.skeleton.readers import ctrgcn_npz, generic, msr, ntu, nw_ucla, openpose, pku_mmd, pyskl, toyota
from sugar.skeleton.sample import Sample

__all__ = ["FORMATS", "Format", "ScanResult", "detect_format", "read_file", "scan", "write_generic"]
write_generic = generic.write_generic


@dataclass(frozen=True)
class Format:
    """One file format: its reader, the joint layout it produces (None = depends on the file), the
    action list its labels index (a sugar.knowledge dataset name), and the file suffixes it uses."""

    read: Callable[[Path], list[Sample]]
    layout: str | None
    dataset: str | None
    suffixes: tuple[str, ...]
    description: str


FORMATS: dict[str, Format] = {
    "ntu": Format(ntu.read, "ntu25", "ntu120", (".skeleton",), "NTU RGB+D raw .skeleton"),
    "nw-ucla": Format(nw_ucla.read, "kinect20", "nw-ucla", (".json",), "NW-UCLA json (CTR-GCN release)"),
    "msr": Format(msr.read, "msr20", "msr-action3d", (".txt",), "MSR Action3D *_skeleton3D.txt"),
    "pku-mmd": Format(pku_mmd.read, "ntu25", "pku-mmd", (".txt",), "PKU-MMD skeleton + label text"),
    "toyota": Format(toyota.read, "lcrnet13", "toyota", (".json",), "Toyota Smarthome LCR-Net json"),
    "openpose": Format(openpose.read, "openpose18", None, (".json",), "Kinetics-Skeleton json (OpenPose 18)"),
    "openpose-frames": Format(openpose.read_frames, "openpose18", None, (),
                              "OpenPose output folder (*_keypoints.json)"),
    "pyskl": Format(pyskl.read, None, None, (".pkl", ".pickle"), "PYSKL annotation pickle"),
    "ctrgcn-npz": Format(ctrgcn_npz.read, None, None, (".npz",), "CTR-GCN preprocessed .npz"),
    "generic": Format(generic.read, None, None, (), "SUGAR generic dataset folder"),
    "npy": Format(generic.read, None, None, (".npy",), "one .npy array [M,T,V,C] or [T,V,C]"),
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


def _guess(path: Path) -> str | None:
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
    fmt = _guess(p)
    if fmt is None:
        what = ("folder (not a generic dataset: no manifest.csv + layout.json; no *_keypoints.json; use scan)"
                if p.is_dir() else "file")
        raise DataError(p, f"cannot tell the skeleton format of this {what}; pass format= one of {', '.join(FORMATS)}")
    return fmt


def _format(path: Path, format: str | None) -> str:
    if format is None:
        return detect_format(path)
    if format not in FORMATS:
        raise DataError(path, f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    return format


def read_file(path: str | Path, format: str | None = None, *, validate: bool = True) -> list[Sample]:
    """The samples of one file (or generic dataset folder). validate=False skips the per-sample checks of
    container formats (callers that validate and report each sample themselves, like the dataset cache)."""
    p = Path(path)
    fmt = _format(p, format)
    if not p.exists():
        raise DataError(p, "no such file or folder")
    samples = FORMATS[fmt].read(p)
    if validate:
        for s in samples:
            try:
                s.validate()
            except DataError as exc:
                raise DataError(p, exc.problem if len(samples) == 1 else f"{s.name}: {exc.problem}") from None
    return samples


@dataclass
class ScanResult:
    """What a folder holds: good samples, bad files with reasons, the joint layout name (None when unknown)
    and the class names that sample labels index."""

    samples: list[Sample]
    bad: list[tuple[str, str]] = field(default_factory=list)
    layout: str | None = None
    classes: list[str] = field(default_factory=list)
    format: str | None = None

    def summary(self) -> dict:
        """Counts for `sugar data inspect`: samples, classes present (with sample counts), frames and persons
        (min/median/max), and the bad files with their reasons."""
        import numpy as np

        frames = np.array([s.num_frames for s in self.samples] or [0])
        persons = np.array([s.num_persons for s in self.samples] or [0])
        labels = Counter(s.label for s in self.samples if s.label is not None)
        stats = lambda a: {"min": int(a.min()), "median": float(np.median(a)), "max": int(a.max())}  # noqa: E731
        return {
            "format": self.format,
            "layout": self.layout,
            "samples": len(self.samples),
            "unlabelled": sum(s.label is None for s in self.samples),
            "classes": [{"label": int(k), "name": self.classes[k] if k < len(self.classes) else f"class_{k}",
                         "samples": labels[k]} for k in sorted(labels)],
            "frames": stats(frames),
            "persons": stats(persons),
            "bad": [{"file": f, "reason": r} for f, r in self.bad],
        }


def _files(root: Path, format: str | None) -> tuple[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    frame_dirs: set[Path] = set()
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        guess = _guess(p)
        if guess == "openpose-frames":  # each folder of per-frame files is one sample
            if p.parent in frame_dirs:
                continue
            p = p.parent
            frame_dirs.add(p)
        if format is not None and guess is None and p.suffix.lower() in FORMATS[format].suffixes:
            guess = format  # unreadable by its content: read it and report why it is bad
        if guess is not None:
            found.setdefault(guess, []).append(p)
    if format is not None:
        if not found.get(format):
            raise DataError(root, f"no {format} files found")
        return format, found[format]
    if not found:
        raise DataError(root, "no skeleton file of a known format found")
    if len(found) > 1:
        counts = ", ".join(f"{k}: {len(v)}" for k, v in sorted(found.items()))
        raise DataError(root, f"files of several formats ({counts}); pass format= to choose one")
    return next(iter(found.items()))


_LAYOUT_BY_JOINTS = {25: "ntu25", 18: "openpose18", 17: "coco17", 13: "lcrnet13"}


def _class_names(fmt: str, samples: list[Sample], root: Path) -> list[str]:
    labels = [s.label for s in samples if s.label is not None]
    top = max(labels) + 1 if labels else 0
    names: list[str] = []
    dataset = FORMATS[fmt].dataset
    if fmt == "generic":
        names = generic.read_classes(root)
    elif dataset is not None:
        from sugar.knowledge.actions import load_action_list

        try:
            names = list(load_action_list(dataset))
        except KnowledgeError:
            names = list(toyota.ACTIONS) if fmt == "toyota" else []
    elif fmt == "openpose":
        given = {s.label: s.meta.get("label_name") for s in samples if s.label is not None}
        names = [str(given.get(i) or f"class_{i}") for i in range(top)]
    if len(names) < top:
        names += [f"class_{i}" for i in range(len(names), top)]
    return names


def scan(path: str | Path, format: str | None = None, *, progress: bool = False) -> ScanResult:
    """Read every skeleton file under a folder (or one file). Files and samples that fail are listed in
    `bad` with the reason and skipped; a folder that holds no readable format raises DataError."""
    root = Path(path)
    if not root.exists():
        raise DataError(root, "no such file or folder")
    good: list[Sample] = []
    bad: list[tuple[str, str]] = []
    if root.is_dir() and (format == "generic" or (format is None and generic.is_generic_dir(root))):
        fmt = "generic"
        for source, sample, reason in generic.iter_dir(root):
            _keep(source, [sample] if sample is not None else None, reason, good, bad)
        layout: str | None = generic.read_layout(root).name
    else:
        if root.is_dir():
            fmt, files = _files(root, format)
        else:
            fmt, files = _format(root, format), [root]
        from tqdm import tqdm

        for f in tqdm(files, desc=f"reading {fmt}", disable=None if progress else True, leave=False):
            try:
                _keep(str(f), FORMATS[fmt].read(f), None, good, bad)
            except DataError as exc:
                _keep(str(f), None, exc.problem, good, bad)
        layout = FORMATS[fmt].layout
    if layout is None and good:
        layout = good[0].meta.get("layout") or _LAYOUT_BY_JOINTS.get(good[0].num_joints)
    return ScanResult(good, bad, layout, _class_names(fmt, good, root if root.is_dir() else root.parent), fmt)


def _keep(source: str, samples: list[Sample] | None, reason: str | None, good: list[Sample],
          bad: list[tuple[str, str]]) -> None:
    if samples is None:
        bad.append((source, reason or "unreadable"))
        return
    if not samples:
        bad.append((source, "no sample in file"))
    for s in samples:
        try:
            good.append(s.validate())
        except DataError as exc:
            bad.append((source, exc.problem if len(samples) == 1 else f"{s.name}: {exc.problem}"))
