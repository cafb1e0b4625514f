"""The bridge to PyTorch: Datasets of (tensor, label) with reproducible per-sample randomness, seeded subsets
and class subsets. Both training stages and evaluation select data through these helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from sugar.skeleton.sample import Sample

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class SkeletonTensorDataset(Dataset):
    """Wrap a sequence of Samples (e.g. a SkeletonDataset) and a transform from `build_transform`.

    Each item's generator is seeded from (seed, epoch, index), so an epoch's augmentations are the same no
    matter how many DataLoader workers there are or in which order items are fetched, and they change from
    epoch to epoch. Call `set_epoch(e)` before iterating each epoch (worker copies are made when iteration
    starts, so this also reaches non-persistent workers).
    """

    def __init__(self, dataset: Sequence[Sample], transform: Transform, seed: int = 0, repeat: int = 1):
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.dataset = dataset
        self.transform = transform
        self.seed = int(seed)
        self.repeat = int(repeat)  # copies of each sample per epoch (CTR-GCN's NW-UCLA recipe repeats 5x)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset) * self.repeat

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)  # also ends plain iteration over the dataset
        sample = self.dataset[index % len(self.dataset)]
        x = self.transform(sample.joints, self.rng(index))  # copies of a sample differ: their index differs
        label = -1 if sample.label is None else int(sample.label)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), label


def seeded_subset(ds: Dataset, n: int | None, seed: int) -> tuple[Dataset, np.ndarray]:
    """At most `n` items drawn reproducibly from `seed` (in their original order), and their positions."""
    size = len(ds)  # type: ignore[arg-type]
    if n is None or n >= size:
        return ds, np.arange(size)
    keep = np.sort(np.random.default_rng(seed).permutation(size)[:n])
    return Subset(ds, keep.tolist()), keep


class ClassSubset(Dataset):
    """The items whose label is in `keep` (class indices), labels renumbered 0..len(keep)-1 in `keep`'s order:
    the seen classes for training, or the held-out ones for a zero-shot test."""

    def __init__(self, base: Dataset, labels: Sequence[int] | np.ndarray, keep: Sequence[int]):
        self.base = base
        new = {int(c): i for i, c in enumerate(keep)}
        labels = np.asarray(labels)
        self.index = [i for i, y in enumerate(labels.tolist()) if y in new]
        self.labels = np.array([new[int(labels[i])] for i in self.index], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.base[self.index[i]][0], int(self.labels[i])

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)
