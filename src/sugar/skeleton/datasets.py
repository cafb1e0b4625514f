"""Named benchmarks (where their files are, class names, the official train/test rules) and opening any
dataset, named or a folder of the user's own (own_data.py), as splits.

`open_dataset(name, root, protocol, split)` parses the source once into a memory-mapped cache (see
cache.py), then selects the protocol's samples. Splits: "train", "val", "trainval", "test". "val" is carved
from the training part (seeded, stratified by class) and never touches test, so model selection never sees
test data; "train" is training minus val and "trainval" the whole training part. (Toyota Smarthome's
cross-view protocols have an official validation camera, 5, which is used as "val" there instead.)

Class subsets for zero-shot work: `exclude_classes` drops classes (seen-class training) and `only_classes`
keeps just the given ones (e.g. the unseen classes' test samples). Labels always index `dataset.classes`,
which lists the remaining classes in the dataset's own order. Rules and sources are documented per dataset
below and in docs/datasets.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np

from sugar.errors import DataError, SugarError
from sugar.paths import shared_data_dir
from sugar.skeleton import synthetic
from sugar.skeleton.benchmark import Benchmark, StoreSource, named_groups
from sugar.skeleton.cache import ParseResult, SampleStore, code_version, open_store, source_key
from sugar.skeleton.layouts import Layout, get_layout, joint_mapping
from sugar.skeleton.own_data import FolderBenchmark
from sugar.skeleton.readers import ntu as ntu_reader
from sugar.skeleton.readers import pku_mmd as pku_reader
from sugar.skeleton.readers import toyota as toyota_reader
from sugar.skeleton.sample import Sample

SPLITS: tuple[str, ...] = ("train", "val", "trainval", "test")


# --------------------------------------------------------------------------- the named benchmarks


def _ids(values: Iterable[int]) -> frozenset[int]:
    return frozenset(values)


class NWUCLA(Benchmark):
    """Northwestern-UCLA (CTR-GCN json distribution). xview: views 1 and 2 train, view 3 test.

    `xview:1>2` names the training and test views instead (here: train on view 1, test on view 2, view 3
    unused): a cross-view proxy for choosing a recipe without the official test view, since the usual
    validation part, carved from the training views, cannot show a gain in view invariance."""

    ACTION_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)  # file-name action ids in class order
    VIEWS = (1, 2, 3)

    def check_protocol(self, protocol: str) -> None:
        if protocol.startswith("xview:"):
            self.views(protocol)
            return
        super().check_protocol(protocol)

    def views(self, protocol: str) -> tuple[frozenset[int], frozenset[int]]:
        """(training views, test views) of `xview` ({1, 2}, {3}) or `xview:TRAIN>TEST` (e.g. xview:1>2)."""
        if ":" not in protocol:
            return frozenset({1, 2}), frozenset({3})
        train, test = named_groups(protocol)
        sides = [train, test or []]
        if not all(words and all(w.isdigit() and int(w) in self.VIEWS for w in words) for words in sides):
            raise SugarError(f"nw-ucla protocol {protocol!r}: name training and test views from 1-3, e.g. xview:1>2")
        chosen = tuple(frozenset(int(w) for w in words) for words in sides)
        if chosen[0] & chosen[1]:
            raise SugarError(f"nw-ucla protocol {protocol!r}: a view cannot both train and test")
        return chosen[0], chosen[1]

    def default_root(self) -> Path:
        return shared_data_dir() / "nw_ucla" / "all_sqe"

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        return self.ACTION_IDS.index(ids["action"]) if ids["action"] in self.ACTION_IDS else None

    def assign(self, protocol: str, ids: dict[str, Any]) -> str | None:
        train, test = self.views(protocol)
        return "train" if ids["view"] in train else "test" if ids["view"] in test else None


class MSRAction3D(Benchmark):
    """MSR Action3D: all 20 actions, subjects 1,3,5,7,9 train and 2,4,6,8,10 test, restricted to the 557
    sequences of files_used_in_cvpr12_paper.txt (the common protocol; 10 noisy sequences dropped).

    `xsub:2,3,5,7,10` names the training subjects instead (the others test): the random subject splits that
    the Lie group paper (Vemulapalli et al., CVPR 2014) averages over. `xsub:1,3,5,7>9` names the test subjects
    too (the rest unused): a cross-subject proxy inside the official training subjects, for choosing settings
    without the official test subjects, since the usual validation part shares its subjects with training."""

    ID_LIST = "files_used_in_cvpr12_paper.txt"
    SUBJECTS = tuple(range(1, 11))

    def default_root(self) -> Path:
        return shared_data_dir() / "msr_action3d" / "real_world_coordinates"

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        return ids["action"] - 1 if 1 <= ids["action"] <= 20 else None

    def check_protocol(self, protocol: str) -> None:
        if protocol.startswith("xsub:"):
            self.subjects(protocol)
            return
        super().check_protocol(protocol)

    def subjects(self, protocol: str) -> tuple[frozenset[int], frozenset[int]]:
        """(training subjects, test subjects) of `xsub` (odd / even), `xsub:1,2,...` (the named ones / the
        others) or `xsub:TRAIN>TEST` (e.g. xsub:1,3,5,7>9)."""
        if ":" not in protocol:
            return frozenset(s for s in self.SUBJECTS if s % 2 == 1), frozenset(s for s in self.SUBJECTS if s % 2 == 0)
        train, test = named_groups(protocol)
        sides = [train] if test is None else [train, test]
        if not all(words and all(w.isdigit() and int(w) in self.SUBJECTS for w in words) for words in sides):
            raise SugarError(f"msr-action3d protocol {protocol!r}: name training subjects from 1-10, e.g. "
                             "xsub:1,3,5,7,9 (or training and test subjects, e.g. xsub:1,3,5,7>9)")
        chosen = frozenset(int(w) for w in train)
        tested = frozenset(self.SUBJECTS) - chosen if test is None else frozenset(int(w) for w in test)
        if not tested:
            raise SugarError(f"msr-action3d protocol {protocol!r} leaves no subject to test on")
        if chosen & tested:
            raise SugarError(f"msr-action3d protocol {protocol!r}: a subject cannot both train and test")
        return chosen, tested

    def assign(self, protocol: str, ids: dict[str, Any]) -> str | None:
        train, test = self.subjects(protocol)
        return "train" if ids["subject"] in train else "test" if ids["subject"] in test else None

    def splitter(self, root: Path, protocol: str) -> Callable[[dict[str, Any]], str | None]:
        path = (root if root.is_dir() else root.parent) / self.ID_LIST
        if not path.is_file():
            raise DataError(path, "MSR Action3D's list of the 557 sequences of the common protocol is missing")
        used = frozenset(line.strip() for line in path.read_text().splitlines() if line.strip())

        def rule(ids: dict[str, Any]) -> str | None:
            sid = f"a{ids['action']:02d}_s{ids['subject']:02d}_e{ids['episode']:02d}"
            return self.assign(protocol, ids) if sid in used else None

        return rule


class NTU(Benchmark):
    """NTU RGB+D 60/120 raw .skeleton files (or one file holding many samples named like NTU files)."""

    max_action: int = 60
    missing_list: str = "NTU_RGBD_samples_with_missing_skeletons.txt"

    XSUB60_TRAIN = _ids([1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38])
    XSUB120_TRAIN = _ids([
        1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50, 52, 53, 54,
        55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
    ])  # fmt: skip

    def source_files(self, root: Path) -> list[Path]:
        files = super().source_files(root)
        if root.is_file():
            return files
        missing = self.missing_ids(root)
        keep = []
        for f in files:
            ids = self.parse_name(f.stem)
            if ids is None or ids["action"] > self.max_action or f.stem in missing:
                continue
            keep.append(f)
        return keep

    def missing_ids(self, root: Path) -> frozenset[str]:
        """The official list of samples without skeletons: from root if present, else the shared copy."""
        near = [root, root.parent] if root.is_dir() else [root.parent]
        candidates = [p for folder in near for p in sorted(folder.glob(f"*{self.missing_list}"))]
        candidates.append(shared_data_dir() / "ntu_rgbd" / "meta" / f"official_{self.missing_list}")
        for path in candidates:
            if path.is_file():
                return ntu_reader.read_missing_list(path)
        return frozenset()

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        return ids["action"] - 1 if 1 <= ids["action"] <= self.max_action else None

    def assign(self, protocol: str, ids: dict[str, Any]) -> str | None:
        if protocol == "xsub":
            train = self.XSUB60_TRAIN if self.max_action == 60 else self.XSUB120_TRAIN
            return "train" if ids["performer"] in train else "test"
        if protocol == "xview":
            return "train" if ids["camera"] in (2, 3) else "test"
        if protocol == "xset":
            return "train" if ids["setup"] % 2 == 0 else "test"
        raise AssertionError(protocol)


class NTU120(NTU):
    max_action = 120
    missing_list = "NTU_RGBD120_samples_with_missing_skeletons.txt"


class PKUMMD(Benchmark):
    """PKU-MMD phase 1, action segments cut from the long videos (51 classes).

    xview: train on the middle and right cameras (-M, -R), test on the left (-L). xsub: the official
    cross-subject.txt ("Training videos:" / "Validataion videos:" = test) when it is found under root; else the
    built-in rule: test = videos 0291-0334 (all three cameras), as used by third-party reproductions; this
    fallback could not be checked against the official file, so place cross-subject.txt under root.
    """

    def source_files(self, root: Path) -> list[Path]:
        files = super().source_files(root)
        return [f for f in files if re.search(r"\d{4}-[LMR]", f.stem) and not pku_reader.is_label_file(f)]

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        if sample.label is None or not 0 <= sample.label < 51:
            return None
        return int(sample.label)

    def official_split(self, root: Path, protocol: str) -> dict[str, str] | None:
        fname = {"xsub": "cross-subject.txt", "xview": "cross-view.txt"}[protocol]
        found = [root / fname] if (root / fname).is_file() else list(root.rglob(fname)) if root.is_dir() else []
        if not found:
            return None
        text = found[0].read_text()
        parts = re.split(r"Validataion videos:|Validation videos:", text)
        if len(parts) != 2 or "Training videos:" not in parts[0]:
            raise DataError(found[0], "expected 'Training videos:' and 'Validataion videos:' sections")
        train = re.findall(r"\d{4}-[LMR]", parts[0])
        test = re.findall(r"\d{4}-[LMR]", parts[1])
        return {**{v: "train" for v in train}, **{v: "test" for v in test}}

    def assign(self, protocol: str, ids: dict[str, Any]) -> str | None:
        if protocol == "xview":
            return "test" if ids["camera"] == "L" else "train"
        return "test" if 291 <= ids["video"] <= 334 else "train"

    def splitter(self, root: Path, protocol: str) -> Callable[[dict[str, Any]], str | None]:
        official = self.official_split(root, protocol)
        if official is None:
            return super().splitter(root, protocol)
        return lambda ids: official.get(f"{ids['video']:04d}-{ids['camera']}")


class Toyota(Benchmark):
    """Toyota Smarthome (trimmed, 31 classes). Das et al., ICCV 2019 protocols:
    cs: train subjects 3,4,6,7,9,12,13,15,17,19,25, test the other 7 (all 31 classes);
    cv1: train camera 1, validation camera 5, test camera 2; cv2: train cameras 1,3,4,6,7, validation 5,
    test 2; both cross-view protocols use the 19 classes seen from cameras 1, 2 and 5."""

    RAW = toyota_reader.ACTIONS
    CV_CLASSES = (
        "Cutbread", "Drink.Frombottle", "Drink.Fromcan", "Drink.Fromcup", "Drink.Fromglass", "Eat.Attable",
        "Eat.Snack", "Enter", "Getup", "Leave", "Pour.Frombottle", "Pour.Fromcan", "Readbook", "Sitdown",
        "Takepills", "Uselaptop", "Usetablet", "Usetelephone", "Walk",
    )  # fmt: skip
    CS_TRAIN = _ids([3, 4, 6, 7, 9, 12, 13, 15, 17, 19, 25])

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        action = str(ids["action"])
        lookup = {a.lower(): i for i, a in enumerate(self.RAW)}
        return lookup.get(action.lower())

    def class_subset(self, protocol: str) -> list[int] | None:
        if protocol == "cs":
            return None
        return [self.RAW.index(a) for a in self.CV_CLASSES]

    def open_layout(self, store: SampleStore) -> Layout:
        names = {m.get("layout") for m in store.meta if m.get("layout")}
        if len(names) == 1:
            return get_layout(names.pop())
        raise DataError(store.root, "the Toyota Smarthome reader did not say which joint layout its files use")

    def assign(self, protocol: str, ids: dict[str, Any]) -> str | None:
        if protocol == "cs":
            return "train" if ids["subject"] in self.CS_TRAIN else "test"
        cam = ids["camera"]
        train_cams = (1,) if protocol == "cv1" else (1, 3, 4, 6, 7)
        return "train" if cam in train_cams else "val" if cam == 5 else "test" if cam == 2 else None


class Synthetic(Benchmark):
    """Procedural actions (sugar.skeleton.synthetic): a fixed seeded train set and a disjoint test set."""

    TRAIN_PER_CLASS = 40
    TEST_PER_CLASS = 10
    TRAIN_SEED = 1000
    TEST_SEED = 2000

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        return sample.label

    def assign(self, protocol: str, ids: dict[str, Any]) -> str | None:
        return ids["part"]

    def store_source(self, root: Path) -> StoreSource:
        version = code_version(Path(synthetic.__file__))
        key = source_key(root, [], f"synthetic|{version}|{self.TRAIN_PER_CLASS}|{self.TEST_PER_CLASS}")

        def results() -> Iterator[ParseResult]:
            for part, n, seed in (("train", self.TRAIN_PER_CLASS, self.TRAIN_SEED),
                                  ("test", self.TEST_PER_CLASS, self.TEST_SEED)):
                samples = synthetic.make_synthetic(n, seed)
                for s in samples:
                    s.name = f"{part}/{s.name}"
                yield f"<synthetic {part}>", samples, None

        return key, results



_NTU_RE = r"S(?P<setup>\d{3})C(?P<camera>\d{3})P(?P<performer>\d{3})R(?P<replication>\d{3})A(?P<action>\d{3})"
BENCHMARKS: dict[str, Benchmark] = {
    "ntu60": NTU("ntu60", "ntu25", ("xsub", "xview"), "ntu", "*.skeleton", _NTU_RE, classes="ntu120",
                 num_classes=60),
    "ntu120": NTU120("ntu120", "ntu25", ("xsub", "xset"), "ntu", "*.skeleton", _NTU_RE),
    "pku-mmd": PKUMMD("pku-mmd", "ntu25", ("xsub", "xview"), "pku-mmd", "*.txt",
                      r"(?P<video>\d{4})-(?P<camera>[LMR])"),
    "toyota": Toyota("toyota", "toyota", ("cs", "cv1", "cv2"), "toyota", "*.json",
                     r"(?P<action>[A-Za-z.]+)_p(?P<subject>\d+)_r(?P<rep>\d+)_v(?P<var>\d+)_c(?P<camera>\d+)"),
    "nw-ucla": NWUCLA("nw-ucla", "kinect20", ("xview",), "nw-ucla", "a*_s*_e*_v*.json",
                      r"a(?P<action>\d+)_s(?P<subject>\d+)_e(?P<episode>\d+)_v(?P<view>\d+)"),
    "msr-action3d": MSRAction3D("msr-action3d", "msr20", ("xsub",), "msr", "a*_s*_e*_skeleton3D.txt",
                                r"a(?P<action>\d+)_s(?P<subject>\d+)_e(?P<episode>\d+)"),
    "synthetic": Synthetic("synthetic", "ntu25", ("default",), "", "", r"^(?P<part>train|test)/"),
}  # fmt: skip


DATASETS: tuple[str, ...] = tuple(BENCHMARKS)


def list_datasets() -> list[str]:
    return list(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    """A named benchmark, or a dataset folder in the generic format (a user's own data, see own_data.py)."""
    bench = BENCHMARKS.get(name)
    if bench is not None:
        return bench
    if Path(name).expanduser().is_dir():
        return FolderBenchmark.from_path(name)
    raise SugarError(f"unknown dataset {name!r}; known: {', '.join(BENCHMARKS)}, or a dataset folder in the "
                     "generic format (`sugar data convert` writes one; see docs/own-data.md)")


def class_names(dataset: str) -> tuple[str, ...]:
    """Class names of a dataset (a named one or a dataset folder), in class-index order (NTU-60: the first 60
    of NTU-120's)."""
    return get_benchmark(dataset).all_classes()


def dataset_label(dataset: str) -> str:
    """A short name for file names and titles: the name of a named dataset, the folder name of a folder."""
    return dataset if dataset in BENCHMARKS else Path(dataset).name


def knowledge_name(dataset: str) -> str:
    """The knowledge a dataset trains with by default: a shipped name, or a folder's knowledge.json."""
    return get_benchmark(dataset).knowledge_file()


def tuned_knowledge(knowledge: str | None, source: DataSource | None, dataset: str) -> str:
    """The knowledge a recogniser tunes with: its config's, else its encoder's (when tuned on the encoder's
    dataset), else the dataset's default."""
    if knowledge:
        return knowledge
    if source is not None and source.dataset == dataset:
        return source.knowledge_file
    return knowledge_name(dataset)


def dataset_for_format(fmt: str) -> str | None:
    """The named dataset whose class list a file format's labels index (the longest list when several
    datasets share a format: NTU-120's for .skeleton files), or None for formats without one."""
    matches = [b for b in BENCHMARKS.values() if b.reader_format == fmt]
    if not matches:
        return None
    return max(matches, key=lambda b: len(class_names(b.name))).name


# --------------------------------------------------------------------------- the dataset object


class SkeletonDataset(Sequence[Sample]):
    """The samples of one split of one protocol. Labels index `classes`; samples are memmap views."""

    def __init__(self, name: str, layout: Layout, classes: list[str], protocol: str, split: str,
                 store: SampleStore, indices: np.ndarray, labels: np.ndarray, bad: list[tuple[str, str]],
                 joint_map: np.ndarray | None = None):
        self.name = name
        self.layout = layout
        self.classes = classes
        self.protocol = protocol
        self.split = split
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.bad = bad
        self.joint_map = joint_map  # set by as_layout: source joint index of each of `layout`'s joints

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> list[Sample]: ...

    def __getitem__(self, i: int | slice) -> Sample | list[Sample]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        s = self.store.sample(int(self.indices[i]))
        s.label = int(self.labels[i])
        s.meta = {**s.meta, "dataset": self.name}
        if self.joint_map is not None:
            s.joints = np.ascontiguousarray(s.joints[:, :, self.joint_map])
            s.meta["layout"] = self.layout.name
        return s

    def with_classes(self, classes: Sequence[str]) -> SkeletonDataset:
        """The same samples with labels indexing `classes` (a superset of this dataset's classes, matched by
        name): a split opened without some classes, labelled in the full list that text embeddings follow."""
        missing = [c for c in self.classes if c not in classes]
        if missing:
            raise SugarError(f"{self.name}: classes {missing} are not in the given class list")
        position = np.array([list(classes).index(c) for c in self.classes], dtype=np.int64)
        return SkeletonDataset(self.name, self.layout, list(classes), self.protocol, self.split, self.store,
                               self.indices, position[self.labels] if len(self.labels) else self.labels, self.bad,
                               self.joint_map)

    def on_list(self, names: Sequence[str]) -> SkeletonDataset:
        """The samples whose class is in `names`, labelled by position in `names` (an action list given by a
        user: entries this dataset has no samples of stay candidates)."""
        names = list(names)
        position = np.array([names.index(c) if c in names else -1 for c in self.classes], dtype=np.int64)
        if not (position >= 0).any():
            raise SugarError(f"{self.name}: none of its classes is in the given action list")
        relabelled = position[self.labels] if len(self.labels) else self.labels
        keep = relabelled >= 0
        return SkeletonDataset(self.name, self.layout, names, self.protocol, self.split, self.store,
                               self.indices[keep], relabelled[keep], self.bad, self.joint_map)

    def as_layout(self, layout: Layout | str) -> SkeletonDataset:
        """This dataset with every sample's joints in `layout`'s order (matched by joint name), for testing a
        model of one layout on another dataset (e.g. NW-UCLA kinect20 -> MSR Action3D msr20)."""
        target = get_layout(layout)
        if target.name == self.layout.name:
            return self
        mapping = joint_mapping(self.layout, target)
        if self.joint_map is not None:
            mapping = self.joint_map[mapping]
        return SkeletonDataset(self.name, target, self.classes, self.protocol, self.split, self.store,
                               self.indices, self.labels, self.bad, mapping)

    @cached_property
    def names(self) -> list[str]:
        return [self.store.names[int(j)] for j in self.indices]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def max_persons(self) -> int:
        return int(self.store.persons[self.indices].max()) if len(self) else 0

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def subset(self, positions: Sequence[int] | np.ndarray) -> SkeletonDataset:
        """A dataset of the given positions of this one (same classes), e.g. for quick runs."""
        pos = np.asarray(positions, dtype=np.int64)
        return SkeletonDataset(self.name, self.layout, self.classes, self.protocol, self.split, self.store,
                               self.indices[pos], self.labels[pos], self.bad, self.joint_map)

    def __repr__(self) -> str:
        return (f"SkeletonDataset({self.name!r}, protocol={self.protocol!r}, split={self.split!r}, "
                f"samples={len(self)}, classes={len(self.classes)})")


def _stratified_val(labels: np.ndarray, fraction: float, seed: int, min_per_class: int = 1) -> np.ndarray:
    """bool mask of the validation part: per class, a seeded random `fraction` (at least `min_per_class`
    samples, never all of it). Seeded per class, so dropping other classes leaves it unchanged."""
    mask = np.zeros(len(labels), dtype=bool)
    if fraction <= 0:
        return mask
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = len(members)
        if n < 2:
            continue
        k = min(n - 1, max(min_per_class, round(fraction * n)))
        rng = np.random.default_rng([seed, int(c)])
        mask[rng.choice(members, size=k, replace=False)] = True
    return mask


def _resolve_classes(all_names: Sequence[str], usable: list[int], exclude: Sequence[str],
                     only: Sequence[str] | None, dataset: str) -> list[int]:
    names = list(all_names)
    usable_names = {names[i] for i in usable}
    for what, given in (("exclude_classes", exclude), ("only_classes", only or ())):
        unknown = [c for c in given if c not in usable_names]
        if unknown:
            raise SugarError(f"{what}: {unknown} are not classes of {dataset} in this protocol")
    keep = [i for i in usable if names[i] not in set(exclude)]
    if only is not None:
        keep = [i for i in keep if names[i] in set(only)]
    if not keep:
        raise SugarError(f"no class of {dataset} is left after exclude_classes/only_classes")
    return keep


def _load_store(bench: Benchmark, root: Path) -> SampleStore:
    key, results = bench.store_source(root)

    def label_of(sample: Sample) -> tuple[int, dict[str, Any]] | None:
        ids = bench.sample_ids(sample)
        if ids is None:
            return None
        label = bench.label(ids, sample)
        if label is None:
            return None
        meta = {k: v for k, v in sample.meta.items() if isinstance(v, str | int | float | bool)}
        meta["ids"] = ids
        return label, meta

    store, _ = open_store(bench.cache_namespace, root, key, results, label_of)
    return store


def open_dataset(name: str, root: str | Path | None = None, protocol: str | None = None, split: str = "train",
                 *, seed: int = 0, val_fraction: float = 0.1, val_min_per_class: int = 1,
                 exclude_classes: Sequence[str] = (), only_classes: Sequence[str] | None = None) -> SkeletonDataset:
    """One split of a named benchmark, parsed once and cached.

    name: ntu60, ntu120, pku-mmd, toyota, nw-ucla, msr-action3d, synthetic. root: the dataset folder (nw-ucla and
    msr-action3d default to the shared copies). protocol: the dataset's protocol (first one when None).
    split: train | val | trainval | test; val = a seeded, class-stratified `val_fraction` of the training part.
    exclude_classes: class names to drop; only_classes: keep just these (e.g. unseen classes for zero-shot
    testing). Labels index the returned dataset's `classes`.
    """
    bench = get_benchmark(name)
    protocol = protocol or bench.protocols[0]
    bench.check_protocol(protocol)
    if split not in SPLITS:
        raise SugarError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0 <= val_fraction < 1:
        raise SugarError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if root is None:
        default = bench.default_root()
        if default is None and not isinstance(bench, Synthetic):
            raise SugarError(f"dataset {name} needs root=... (the folder holding its files)")
        root_path = Path(default) if default is not None else Path(".")
    else:
        root_path = Path(root).expanduser()

    store = _load_store(bench, root_path)
    layout = bench.open_layout(store)
    all_names = bench.all_classes()
    if len(store.labels) and int(store.labels.max()) >= len(all_names):
        raise DataError(store.root, f"labels go up to {int(store.labels.max())} but {name}'s action list has "
                                    f"{len(all_names)} classes")
    usable = bench.class_subset(protocol) or list(range(len(all_names)))
    keep = _resolve_classes(all_names, usable, tuple(exclude_classes), only_classes, bench.name)
    remap = np.full(len(all_names), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    usable_set = set(usable)

    rule = bench.splitter(root_path, protocol)
    part = np.array([rule(m["ids"]) for m in store.meta], dtype=object)
    in_protocol = np.array([int(lab) in usable_set for lab in store.labels], dtype=bool)
    train = np.flatnonzero((part == "train") & in_protocol)
    official_val = np.flatnonzero((part == "val") & in_protocol)
    test = np.flatnonzero((part == "test") & in_protocol)

    if official_val.size:
        val_mask_train = np.zeros(len(train), dtype=bool)
        val = official_val
    else:
        val_mask_train = _stratified_val(store.labels[train], val_fraction, seed, val_min_per_class)
        val = train[val_mask_train]
    chosen = {
        "train": train[~val_mask_train],
        "val": val,
        "trainval": np.sort(np.concatenate([train, official_val])),
        "test": test,
    }[split]
    chosen = chosen[remap[store.labels[chosen]] >= 0]
    return SkeletonDataset(bench.name, layout, [all_names[i] for i in keep], protocol, split, store, chosen,
                           remap[store.labels[chosen]], list(store.bad))


# --------------------------------------------------------------------------- where a model's data came from


@dataclass(frozen=True)
class DataSource:
    """Which dataset, protocol and validation carve a model was trained on: enough to reopen the same splits
    (stage 3 on a stage-2 encoder, evaluation, extraction). Saved in every encoder folder."""

    dataset: str
    protocol: str | None = None
    root: str | None = None
    seed: int = 0
    val_fraction: float = 0.1
    exclude_classes: tuple[str, ...] = ()  # classes held out of training (zero-shot)
    knowledge: str | None = None  # knowledge file or dataset name the texts came from; None = the dataset's
    val_min_per_class: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "protocol": self.protocol, "root": self.root, "seed": self.seed,
                "val_fraction": self.val_fraction, "val_min_per_class": self.val_min_per_class,
                "exclude_classes": list(self.exclude_classes), "knowledge": self.knowledge}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSource:
        return cls(str(data["dataset"]), data.get("protocol"), data.get("root"), int(data.get("seed", 0)),
                   float(data.get("val_fraction", 0.1)), tuple(data.get("exclude_classes") or ()),
                   data.get("knowledge"), int(data.get("val_min_per_class", 1)))

    @property
    def knowledge_file(self) -> str:
        """The knowledge to use with this data: the explicit file, else the dataset's shipped one."""
        return self.knowledge or knowledge_name(self.dataset)

    def open_split(self, split: str, exclude: Sequence[str] = (), *, dataset: str | None = None,
                   protocol: str | None = None, root: str | None = None,
                   layout: Layout | None = None) -> SkeletonDataset:
        """A split of this source, or of another dataset (its own default root and protocol unless given),
        with the same seed and validation carve. layout: convert samples to it by joint name."""
        name = dataset or self.dataset
        same = name == self.dataset
        ds = open_dataset(name, root=root if root is not None else (self.root if same else None),
                          protocol=protocol if protocol is not None else (self.protocol if same else None),
                          split=split, seed=self.seed, val_fraction=self.val_fraction,
                          val_min_per_class=self.val_min_per_class, exclude_classes=exclude)
        return ds.as_layout(layout) if layout is not None else ds
