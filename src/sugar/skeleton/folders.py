"""Any folder of skeleton files as a set of samples: every readable file read, bad ones reported and skipped.

`scan(path)` is what `sugar data inspect/convert` and the own-data path use; the class names that labels
index come from the folder itself (the generic format's classes file, OpenPose label names) or, for a named
benchmark's file format, from the dataset registry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sugar.errors import DataError, LayoutError
from sugar.skeleton.datasets import class_names, dataset_for_format, get_benchmark
from sugar.skeleton.layouts import get_layout
from sugar.skeleton.own_data import MAX_BONE_METRES, UNITS_PROBE, median_bone_length
from sugar.skeleton.readers import FORMATS, generic, guess_format, resolve_format
from sugar.skeleton.sample import Sample


@dataclass
class ScanResult:
    """What a folder holds: good samples, bad files with reasons, the joint layout name (None when unknown)
    and the class names that sample labels index."""

    samples: list[Sample]
    bad: list[tuple[str, str]] = field(default_factory=list)
    layout: str | None = None
    classes: list[str] = field(default_factory=list)
    format: str | None = None

    def present_classes(self) -> ScanResult:
        """The same samples with the class list cut to the classes that have samples (labels renumbered in
        the list's order): a subset of a 120-class dataset trains and generates knowledge for its own classes."""
        present = sorted({s.label for s in self.samples if s.label is not None})
        position = {old: new for new, old in enumerate(present)}
        samples = [replace(s, label=position[s.label]) if s.label is not None else s for s in self.samples]
        return ScanResult(samples, self.bad, self.layout, [self.classes[i] for i in present], self.format)

    def with_protocol_splits(self, root: str | Path, protocol: str) -> ScanResult:
        """The same samples with meta["split"] from a named benchmark's protocol (NW-UCLA's xview, NTU's xsub,
        ...), so a converted folder keeps the published split as its manifest's split column. Samples the
        protocol does not use get no split (and are not trained or tested on)."""
        dataset = dataset_for_format(self.format or "")
        if dataset is None:
            raise DataError(root, f"format {self.format!r} belongs to no built-in dataset, so it has no protocol "
                                  f"{protocol!r}; write the manifest's split column yourself")
        bench = get_benchmark(dataset)
        bench.check_protocol(protocol)
        rule = bench.splitter(Path(root) if Path(root).is_dir() else Path(root).parent, protocol)
        samples = []
        for s in self.samples:
            ids = bench.sample_ids(s)
            split = rule(ids) if ids is not None else None
            samples.append(replace(s, meta={**s.meta, "split": split or ""}))
        return ScanResult(samples, self.bad, self.layout, self.classes, self.format)

    def coordinates(self) -> str | None:
        """A word on the coordinates' scale when it is not metres (None when it looks right or is unknown)."""
        probe = [s for s in self.samples[:UNITS_PROBE] if s.joints.shape[-1] >= 3]
        if not probe or self.layout is None:
            return None
        try:
            layout = get_layout(self.layout)
        except LayoutError:  # a folder's own layout, not a built-in one: its scale is checked when training
            return None
        median = median_bone_length(probe, layout)
        if median <= MAX_BONE_METRES:
            return None
        return (f"median bone {median:.1f} units: not metres (millimetres, centimetres or pixels?); declare the "
                "units in dataset.json of a converted folder")

    def summary(self) -> dict:
        """Counts for `sugar data inspect`: samples, classes present (with sample counts), splits and subjects
        (from a manifest or file names), frames and persons (min/median/max), a word on the coordinates' scale,
        and the bad files with their reasons."""
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
            "splits": dict(sorted(Counter(str(s.meta["split"]) for s in self.samples if s.meta.get("split")).items())),
            "subjects": len({s.meta["subject"] for s in self.samples if s.meta.get("subject")}),
            "coordinates": self.coordinates(),
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
        guess = guess_format(p)
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
        raise DataError(root, f"files of several formats ({counts}); pass --format (format= in Python) to choose one")
    return next(iter(found.items()))


_LAYOUT_BY_JOINTS = {25: "ntu25", 18: "openpose18", 17: "coco17", 13: "lcrnet13"}


def _class_names(fmt: str, samples: list[Sample], root: Path) -> list[str]:
    labels = [s.label for s in samples if s.label is not None]
    top = max(labels) + 1 if labels else 0
    names: list[str] = []
    dataset = dataset_for_format(fmt)
    if fmt == "generic":
        names = generic.read_classes(root)
    elif dataset is not None:
        names = list(class_names(dataset))
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
            fmt, files = resolve_format(root, format), [root]
        for f in tqdm(files, desc=f"reading {fmt}", disable=None if progress else True, leave=False):
            try:
                _keep(str(f), FORMATS[fmt].read(f), None, good, bad)
            except DataError as exc:
                _keep(str(f), None, exc.problem, good, bad)
        layout = FORMATS[fmt].layout
    if layout is None and good:
        layout = good[0].meta.get("layout") or _LAYOUT_BY_JOINTS.get(good[0].num_joints)
    _fill_subjects(fmt, good)
    return ScanResult(good, bad, layout, _class_names(fmt, good, root if root.is_dir() else root.parent), fmt)


def _fill_subjects(fmt: str, samples: list[Sample]) -> None:
    """meta["subject"] from a named benchmark's file names (MSR's s01, NTU's P001, ...), so a converted folder
    keeps the cross-subject protocol."""
    dataset = dataset_for_format(fmt)
    if dataset is None:
        return
    bench = get_benchmark(dataset)
    for s in samples:
        ids = bench.parse_name(s.name) or {}
        subject = ids.get("subject", ids.get("performer"))
        if subject is not None and "subject" not in s.meta:
            s.meta["subject"] = str(subject)


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
