"""Parse a dataset once, keep it as one memory-mapped float32 file plus a JSON index.

Layout on disk (a folder under sugar.paths.cache_dir("datasets", NAME)):
  joints.f32   every sample's joints [M_i, T_i, V, C] written one after the other (C order), float32
  index.json   names, labels, offsets (in floats), persons, frames, meta per sample; the files that could
               not be read (`bad`) with the reason; the source key.
Each sample is stored with its own person count, so nothing is padded and a sample is one contiguous block:
`Sample.joints` is a read-only np.memmap view, no copy. The folder is built under a temporary name and
renamed into place only when complete, so a killed build never leaves a half-written cache behind.
The key covers the sorted source files with sizes and modification times plus the parser code version,
so editing, adding or removing a file, or changing a reader, rebuilds the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import DataError
from sugar.paths import cache_dir
from sugar.skeleton.sample import Sample

CACHE_FORMAT = 1
log = logging.getLogger("sugar.data")

# What one parsed source file gives: (samples read from it, or None with the reason it is bad).
ParseResult = tuple[str, list[Sample] | None, str | None]


def source_key(root: Path, files: Sequence[Path], version: str) -> str:
    """Hash of (relative path, size, mtime) of every source file plus the parser version."""
    h = hashlib.sha256(f"{CACHE_FORMAT}|{version}".encode())
    for f in sorted(files):
        st = f.stat()
        try:
            rel = f.relative_to(root).as_posix()
        except ValueError:
            rel = f.name
        h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def code_version(*paths: Path) -> str:
    """Hash of source files (the readers), so a parser change invalidates caches built with the old one."""
    h = hashlib.sha256()
    for p in sorted(paths):
        with contextlib.suppress(OSError):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


class SampleStore:
    """Read side of a cache folder: random access to samples as memmap views."""

    def __init__(self, directory: Path):
        self.directory = directory
        try:
            index = json.loads((directory / "index.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(directory / "index.json", f"unreadable dataset cache index ({exc})") from None
        self.key: str = index["key"]
        self.root: str = index.get("root", "")
        self.num_joints: int = index["num_joints"]
        self.channels: int = index["channels"]
        self.names: list[str] = index["names"]
        self.labels = np.asarray(index["labels"], dtype=np.int64)
        self.offsets = np.asarray(index["offsets"], dtype=np.int64)
        self.persons = np.asarray(index["persons"], dtype=np.int64)
        self.frames = np.asarray(index["frames"], dtype=np.int64)
        self.meta: list[dict[str, Any]] = index["meta"]
        self.bad: list[tuple[str, str]] = [(str(f), str(r)) for f, r in index["bad"]]
        self.info: dict[str, Any] = index.get("info", {})
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """The flat float32 memmap (opened lazily, so stores pickle cheaply to DataLoader workers)."""
        if self._array is None:
            path = self.directory / "joints.f32"
            if path.stat().st_size == 0:
                self._array = np.zeros(0, dtype=np.float32)
            else:
                self._array = np.memmap(path, dtype=np.float32, mode="r")
        return self._array

    def __len__(self) -> int:
        return len(self.names)

    def joints(self, i: int) -> np.ndarray:
        m, t = int(self.persons[i]), int(self.frames[i])
        start = int(self.offsets[i])
        size = m * t * self.num_joints * self.channels
        return self.array[start : start + size].reshape(m, t, self.num_joints, self.channels)

    def sample(self, i: int) -> Sample:
        label = int(self.labels[i])
        return Sample(self.names[i], self.joints(i), label if label >= 0 else None, dict(self.meta[i]))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None
        return state


def _clean_stale_builds(parent: Path) -> None:
    """Remove temporary build folders left by processes that no longer run."""
    for tmp in parent.glob(".build-*"):
        try:
            pid = int(tmp.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(tmp, ignore_errors=True)


def _write(tmp: Path, key: str, root: Path, results: Iterable[ParseResult],
           label_of: Callable[[Sample], tuple[int, dict[str, Any]] | None], info: dict[str, Any]) -> None:
    names: list[str] = []
    labels: list[int] = []
    offsets: list[int] = []
    persons: list[int] = []
    frames: list[int] = []
    metas: list[dict[str, Any]] = []
    bad: list[tuple[str, str]] = []
    shape: tuple[int, int] | None = None
    offset = 0
    seen: set[str] = set()
    with open(tmp / "joints.f32", "wb") as out:
        for source, samples, reason in results:
            if samples is None:
                bad.append((source, reason or "unreadable"))
                continue
            for s in samples:
                try:
                    s.validate(source=source)
                except DataError as exc:
                    bad.append((source, exc.problem if len(samples) == 1 else f"{s.name}: {exc.problem}"))
                    continue
                vc = (s.num_joints, int(s.joints.shape[3]))
                if shape is None:
                    shape = vc
                elif vc != shape:
                    bad.append((source, f"{s.name}: {vc[0]} joints x {vc[1]} channels, others have {shape}"))
                    continue
                labelled = label_of(s)
                if labelled is None:
                    bad.append((source, f"{s.name}: name does not follow the dataset's naming scheme"))
                    continue
                if s.name in seen:
                    bad.append((source, f"{s.name}: duplicate sample name"))
                    continue
                seen.add(s.name)
                label, meta = labelled
                arr = np.ascontiguousarray(s.joints, dtype=np.float32)
                out.write(arr.tobytes())
                names.append(s.name)
                labels.append(int(label))
                offsets.append(offset)
                persons.append(int(arr.shape[0]))
                frames.append(int(arr.shape[1]))
                metas.append(meta)
                offset += arr.size
        out.flush()
        os.fsync(out.fileno())
    index = {
        "format": CACHE_FORMAT,
        "key": key,
        "root": str(root),
        "num_joints": shape[0] if shape else 0,
        "channels": shape[1] if shape else 0,
        "names": names,
        "labels": labels,
        "offsets": offsets,
        "persons": persons,
        "frames": frames,
        "meta": metas,
        "bad": bad,
        "info": info,
    }
    with open(tmp / "index.json", "w") as f:
        json.dump(index, f)
        f.flush()
        os.fsync(f.fileno())


def open_store(namespace: str, root: Path, key: str, results: Callable[[], Iterable[ParseResult]],
               label_of: Callable[[Sample], tuple[int, dict[str, Any]] | None],
               info: dict[str, Any] | None = None) -> tuple[SampleStore, bool]:
    """The cached store for `key`, building it from `results()` when missing. Returns (store, was_built)."""
    parent = cache_dir("datasets", namespace)
    final = parent / key[:24]
    if (final / "index.json").is_file():
        return SampleStore(final), False
    _clean_stale_builds(parent)
    tmp = parent / f".build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(tmp, key, root, results(), label_of, info or {})
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "index.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same cache first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store = SampleStore(final)
    for source, reason in store.bad:
        log.warning("skipped %s: %s", source, reason)
    _drop_superseded(parent, final, store.root)
    return store, True


def _drop_superseded(parent: Path, keep: Path, root: str) -> None:
    """Delete older caches of the same source folder (their files changed since)."""
    for other in parent.iterdir():
        if other == keep or other.name.startswith(".") or not other.is_dir():
            continue
        try:
            other_root = json.loads((other / "index.json").read_text()).get("root")
        except (OSError, json.JSONDecodeError):
            continue
        if other_root == root:
            shutil.rmtree(other, ignore_errors=True)
