"""A user's own dataset: any folder in the generic format (`sugar data convert` writes one) is a dataset that
every command takes wherever it takes a dataset name (`--dataset DIR`, `data.dataset: DIR`).

The folder says everything: classes.txt (class names in label order), layout.json (the joints), manifest.csv
(one row per sample; `split` and an optional `subject` column give the protocols), and optionally
knowledge.json (the knowledge it trains with) and dataset.json ({"units": "m" | "cm" | "mm" | "px"}).

Protocols:
- `split`: the manifest's split column (train / val / test; training/validation/dev/testing also read).
- `xsub`: by the subject column; `xsub` trains on every other subject in sorted order (1, 3, 5, 7, 9 of
  subjects 1-10: MSR Action3D's convention), `xsub:1,3,5` names the training subjects, `xsub:1,3>5` the training
  and test subjects (the rest unused: a cross-subject proxy inside the training subjects, for choosing settings
  without reading the real test subjects).

Units: 3-D coordinates are in metres throughout the project. Centimetres or millimetres declared in
dataset.json are converted on reading; undeclared coordinates whose bones are metres long are refused,
because a model trained on them would silently learn nothing that transfers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import DataError, SugarError
from sugar.skeleton.benchmark import Benchmark, StoreSource, named_groups, reader_version
from sugar.skeleton.cache import ParseResult, SampleStore, source_key
from sugar.skeleton.layouts import Layout
from sugar.skeleton.readers import generic
from sugar.skeleton.sample import Sample

INFO_FILE = "dataset.json"
KNOWLEDGE_FILE = "knowledge.json"
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "px": 1.0}
MAX_BONE_METRES = 1.5  # median bone length above this is not metres (a human's longest bone is ~0.5 m)
UNITS_PROBE = 32  # samples whose bones are measured when units are not declared


def read_units(folder: Path) -> str | None:
    """The declared coordinate units, or None when dataset.json does not say."""
    path = folder / INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"unreadable ({exc})") from None
    units = info.get("units") if isinstance(info, dict) else None
    if units is not None and units not in UNITS:
        raise DataError(path, f"units {units!r}: choose one of {', '.join(UNITS)}")
    return units


def median_bone_length(samples: list[Sample], layout: Layout) -> float:
    """Median length of the layout's bones over the frames of `samples` (x, y, z channels)."""
    lengths = []
    for s in samples:
        xyz = s.joints[..., :3]
        for child, parent in layout.bones:
            d = np.linalg.norm(xyz[:, :, child] - xyz[:, :, parent], axis=-1)
            lengths.append(d[np.isfinite(d) & (d > 0)])
    values = np.concatenate(lengths) if lengths else np.zeros(0)
    return float(np.median(values)) if len(values) else 0.0


def _natural(value: str) -> tuple[int, Any]:
    return (0, int(value)) if value.isdigit() else (1, value)


@dataclass(frozen=True)
class FolderBenchmark(Benchmark):
    """A generic-format folder as a benchmark; `name` is the folder's absolute path."""

    subjects: tuple[str, ...] = ()  # every subject in the manifest, sorted

    @classmethod
    def from_path(cls, path: str | Path) -> FolderBenchmark:
        folder = Path(path).expanduser().resolve()
        if not generic.is_generic_dir(folder):
            raise DataError(folder, f"not a dataset folder: needs {generic.MANIFEST} and {generic.LAYOUT_FILE} "
                                    "(write one with `sugar data convert`; see docs/own-data.md)")
        return _folder_benchmark(str(folder), (folder / generic.MANIFEST).stat().st_mtime_ns)

    @property
    def folder(self) -> Path:
        return Path(self.name)

    @property
    def cache_namespace(self) -> str:
        return "folder-" + hashlib.sha1(self.name.encode()).hexdigest()[:12]

    def default_root(self) -> Path:
        return self.folder

    def check_protocol(self, protocol: str) -> None:
        base = protocol.split(":", 1)[0]
        if base not in self.protocols:
            why = {"split": "its manifest's split column has no train and test rows",
                   "xsub": "its manifest has no subject column"}.get(base, "")
            raise SugarError(f"{self.name} has no protocol {protocol!r}{f' ({why})' if why else ''}; choose from "
                             f"{', '.join(self.protocols)}")
        if base == "xsub" and ":" in protocol:
            train, test = self.xsub_subjects(protocol)
            unknown = [s for s in (*train, *(test or ())) if s not in self.subjects]
            if unknown:
                raise SugarError(f"{self.name}: subjects {unknown} are not in the manifest "
                                 f"({', '.join(self.subjects)})")
            if test is not None and (not train or not test or set(train) & set(test)):
                raise SugarError(f"{self.name} protocol {protocol!r}: name training and test subjects, none in "
                                 "both, e.g. xsub:1,3>5")

    def xsub_subjects(self, protocol: str) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        """(training subjects, test subjects or None for "every other one") of an xsub protocol."""
        if ":" not in protocol:
            return self.subjects[::2], None
        train, test = named_groups(protocol)
        return tuple(train), (tuple(test) if test is not None else None)

    def source_files(self, root: Path) -> list[Path]:
        files = [root / generic.MANIFEST, root / generic.LAYOUT_FILE, root / generic.CLASSES, root / INFO_FILE]
        files += [root / row["path"].strip() for row in generic.read_manifest(root) if row.get("path")]
        return [f for f in files if f.is_file()]

    def store_source(self, root: Path) -> StoreSource:
        units = read_units(root)
        key = source_key(root, self.source_files(root), f"folder|{reader_version()}|{units}")
        layout = generic.read_layout(root)

        def results() -> Iterator[ParseResult]:
            scale = UNITS.get(units or "m", 1.0)
            probe: list[Sample] = []
            for source, sample, reason in generic.iter_dir(root):
                if sample is None:
                    yield source, None, reason
                    continue
                if scale != 1.0:
                    sample.joints[..., :3] *= scale
                if units is None and len(probe) < UNITS_PROBE and sample.joints.shape[-1] >= 3:
                    probe.append(sample)
                    if len(probe) == UNITS_PROBE:
                        check_metres(root, probe, layout)
                yield source, [sample], None
            if units is None and 0 < len(probe) < UNITS_PROBE:
                check_metres(root, probe, layout)

        return key, results

    def sample_ids(self, sample: Sample) -> dict[str, Any] | None:
        return {"split": SPLIT_WORDS.get(str(sample.meta.get("split", "")).strip().lower()),
                "subject": str(sample.meta.get("subject", "")).strip() or None}

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        return sample.label  # samples without a label cannot be trained or scored on; they are left out

    def splitter(self, root: Path, protocol: str) -> Callable[[dict[str, Any]], str | None]:
        if protocol == "split":
            return lambda ids: ids["split"]
        names, tested = self.xsub_subjects(protocol)
        train = set(names)

        def rule(ids: dict[str, Any]) -> str | None:
            subject = ids["subject"]
            if subject is None:
                return None
            if subject in train:
                return "train"
            return "test" if tested is None or subject in tested else None

        return rule

    def all_classes(self) -> tuple[str, ...]:
        names = generic.read_classes(self.folder)
        if not names:
            raise DataError(self.folder / generic.CLASSES, "missing or empty: list the class names, one a line, "
                                                           "in label order")
        return tuple(names)

    def open_layout(self, store: SampleStore) -> Layout:
        return generic.read_layout(self.folder)

    def knowledge_file(self) -> str:
        path = self.folder / KNOWLEDGE_FILE
        if not path.is_file():
            raise DataError(path, "no knowledge for this dataset; write it with `sugar knowledge motion --actions "
                                  f"{self.folder} --out {path}` or pass knowledge=FILE (loss=ce trains without)")
        return str(path)


def check_metres(folder: Path, samples: list[Sample], layout: Layout) -> None:
    """Refuse undeclared coordinates whose bones say centimetres or millimetres (or pixels)."""
    median = median_bone_length(samples, layout)
    if median > MAX_BONE_METRES:
        guess = "millimetres" if median > 50 else "centimetres or pixels"
        raise DataError(folder, f"the median bone is {median:.1f} units long, so coordinates look like {guess}, "
                                f"not metres; say which in {folder / INFO_FILE} ({{\"units\": \"mm\"}}, \"cm\" or "
                                "\"px\" for image coordinates) and they are converted on reading")


@cache
def _folder_benchmark(folder: str, manifest_mtime: int) -> FolderBenchmark:
    """Built once per manifest version: the protocols come from what the manifest holds."""
    rows = generic.read_manifest(Path(folder))
    splits = {SPLIT_WORDS.get((r.get("split") or "").strip().lower()) for r in rows}
    subjects = sorted({(r.get("subject") or "").strip() for r in rows} - {""}, key=_natural)
    protocols = tuple(p for p, ok in (("split", {"train", "test"} <= splits), ("xsub", len(subjects) > 1)) if ok)
    if not protocols:
        raise DataError(Path(folder) / generic.MANIFEST,
                        "no protocol: fill the split column with train and test (val optional), or add a subject "
                        "column with at least two subjects")
    return FolderBenchmark(folder, "", protocols, "generic", "*.npy", "", subjects=tuple(subjects))
