"""What a dataset is to the rest of the code: a `Benchmark` (its facts and its rules) and how its source files
are read into the sample cache. The named benchmarks live in datasets.py; a user's own folder in own_data.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sugar.errors import DataError, SugarError
from sugar.skeleton import readers
from sugar.skeleton.cache import ParseResult, SampleStore, code_version, source_key
from sugar.skeleton.layouts import Layout, get_layout
from sugar.skeleton.sample import Sample

StoreSource = tuple[str, Callable[[], Iterable[ParseResult]]]  # (cache key, parse results when not cached)


def _read_one(args: tuple[str, str]) -> ParseResult:
    """Read one source file with the project's readers; DataError makes it a reported bad file. The cache
    validates each sample itself (reporting a bad segment of a multi-sample file without losing the rest)."""
    path_str, fmt = args
    try:
        samples = readers.read_file(Path(path_str), format=fmt, validate=False)
    except DataError as exc:
        return path_str, None, exc.problem
    if not samples:
        return path_str, None, "no sample in file"
    return path_str, samples, None


def parse_files(files: Sequence[Path], fmt: str, desc: str) -> Iterator[ParseResult]:
    """Parse files in order; in worker processes when there are many (NTU has ~114k files)."""
    jobs = [(str(f), fmt) for f in files]
    if len(jobs) < 4000:
        yield from tqdm(map(_read_one, jobs), total=len(jobs), desc=desc, disable=None, leave=False)
        return
    workers = max(1, min(8, (os.cpu_count() or 2)))
    with ProcessPoolExecutor(workers) as pool:
        yield from tqdm(pool.map(_read_one, jobs, chunksize=64), total=len(jobs), desc=desc, disable=None)


def reader_version() -> str:
    """Changes whenever a reader's code changes, so cached parses are redone."""
    return "readers:" + code_version(*Path(readers.__file__).parent.glob("*.py"))


@cache
def shipped_class_list(stem: str, num_classes: int | None = None) -> tuple[str, ...]:
    """A class list shipped in sugar/skeleton/classes/<stem>.txt (its first `num_classes` entries)."""
    path = resources.files("sugar.skeleton") / "classes" / f"{stem}.txt"
    if not path.is_file():
        raise SugarError(f"no class list shipped for {stem!r} ({path})")
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    if len(set(names)) != len(names):
        raise SugarError(f"{path}: duplicate class names")
    return names[:num_classes] if num_classes else names


def named_groups(protocol: str) -> tuple[list[str], list[str] | None]:
    """The groups (subjects, views) a protocol names after its colon: training ones, and test ones when `>` names
    them too (a proxy: the rest unused). `xsub:1,3,5` -> (['1', '3', '5'], None); `xview:1>2` -> (['1'], ['2'])."""
    train, arrow, test = protocol.split(":", 1)[1].partition(">")
    train_words, test_words = ([w.strip() for w in part.split(",") if w.strip()] for part in (train, test))
    return train_words, (test_words if arrow else None)


@dataclass(frozen=True)
class Benchmark:
    """One dataset: its facts (name, default layout, protocols, file format, knowledge file; its class list is
    skeleton/classes/<classes>.txt) and its rules (file naming, labels, protocol splits), which subclasses
    fill in."""

    name: str
    layout: str
    protocols: tuple[str, ...]
    reader_format: str
    pattern: str  # glob for source files under root (recursive)
    name_regex: str  # parses a sample name into its ids
    knowledge: str = ""  # shipped knowledge file (sugar/knowledge/shipped/<knowledge>.json); "" = name
    classes: str = ""  # class-list file stem; "" = name
    num_classes: int | None = None  # use the first N entries of the class list (NTU-60 of NTU-120's list)

    @property
    def cache_namespace(self) -> str:
        """Folder name of this dataset's parsed-sample caches."""
        return self.name

    def default_root(self) -> Path | None:
        return None

    def check_protocol(self, protocol: str) -> None:
        if protocol not in self.protocols:
            raise SugarError(f"{self.name} has no protocol {protocol!r}; choose from {', '.join(self.protocols)}")

    def source_files(self, root: Path) -> list[Path]:
        if root.is_file():
            return [root]
        return sorted(p for p in root.rglob(self.pattern) if p.is_file())

    def store_source(self, root: Path) -> StoreSource:
        """The cache key of `root`'s files and how to parse them (once; later opens read the cache)."""
        if not root.exists():
            raise DataError(root, f"{self.name} data not found (pass root=... / --root)")
        files = self.source_files(root)
        if not files:
            raise DataError(root, f"no {self.name} files ({self.pattern}) found")
        key = source_key(root, files, f"{self.name}|{reader_version()}")
        # root may be one container file of another format (e.g. a PYSKL pickle of NTU-named samples)
        fmt = readers.detect_format(root) if root.is_file() else self.reader_format
        return key, lambda: parse_files(files, fmt, f"parsing {self.name}")

    def parse_name(self, name: str) -> dict[str, Any] | None:
        m = re.search(self.name_regex, name)
        if m is None:
            return None
        return {k: (int(v) if v.isdigit() else v) for k, v in m.groupdict().items()}

    def sample_ids(self, sample: Sample) -> dict[str, Any] | None:
        """What the protocol rules look at (subject, camera, ...); None drops the sample."""
        return self.parse_name(sample.name)

    def label(self, ids: dict[str, Any], sample: Sample) -> int | None:
        """Global class index (into all_classes()) of a sample."""
        raise NotImplementedError

    def assign(self, protocol: str, ids: dict[str, Any]) -> str | None:
        """'train', 'test', 'val' (an official validation part) or None (not used by this protocol)."""
        raise NotImplementedError

    def splitter(self, root: Path, protocol: str) -> Callable[[dict[str, Any]], str | None]:
        """The protocol's rule for this root (a dataset may read official split lists found under root)."""
        return lambda ids: self.assign(protocol, ids)

    def class_subset(self, protocol: str) -> list[int] | None:
        """Global class indices a protocol uses (None = all)."""
        return None

    def all_classes(self) -> tuple[str, ...]:
        return shipped_class_list(self.classes or self.name, self.num_classes)

    def open_layout(self, store: SampleStore) -> Layout:
        """The joint layout of the parsed samples."""
        return get_layout(self.layout)

    def knowledge_file(self) -> str:
        """The knowledge this dataset trains with by default (a shipped name or a file path)."""
        return self.knowledge or self.name
