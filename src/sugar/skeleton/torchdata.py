"""The bridge to PyTorch: a Dataset of (tensor [C,T,V,M], label) with reproducible per-sample randomness."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sugar.skeleton.sample import Sample

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class SkeletonTensorDataset(Dataset):
    """Wrap a sequence of Samples (e.g. a SkeletonDataset) and a transform from `build_transform`.

    Each item's generator is seeded from (seed, epoch, index), so an epoch's augmentations are the same no
    matter how many DataLoader workers there are or in which order items are fetched, and they change from
    epoch to epoch. Call `set_epoch(e)` before iterating each epoch (worker copies are made when iteration
    starts, so this also reaches non-persistent workers).
    """

    def __init__(self, dataset: Sequence[Sample], transform: Transform, seed: int = 0):
        self.dataset = dataset
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.dataset[index]
        x = self.transform(sample.joints, self.rng(index))
        label = -1 if sample.label is None else int(sample.label)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), label
