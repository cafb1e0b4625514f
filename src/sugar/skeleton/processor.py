"""The data pipeline a model is saved with: any Sample in, the model's input tensor [C, T, V, M] out.

A `Processor` holds the model's joint layout, its input channels and the transform settings it was trained
with (frames, persons, centring, alignment, stream; the augmentation ranges used at training). Training,
feature extraction, evaluation, the recogniser and the service all turn samples into tensors through it, so
a model can never be fed data prepared differently from how it was trained. It is saved beside the weights
as processor.json (`save_pretrained` / `from_pretrained`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sugar.config import DataConfig
from sugar.errors import DataError, SugarError
from sugar.fileio import atomic_write_text, read_json_object
from sugar.skeleton.layouts import Layout, convert_joints
from sugar.skeleton.sample import Sample
from sugar.skeleton.torchdata import SkeletonTensorDataset
from sugar.skeleton.transforms import Compose, build_transform

PROCESSOR_FILE = "processor.json"
PROCESSOR_FORMAT = "sugar-processor/1"


@dataclass(frozen=True)
class TransformSettings:
    """The DataConfig keys that decide how a sample becomes a tensor (and nothing about where data lives)."""

    frames: int = 64
    max_persons: int = 2
    centre: bool = True
    align: bool = True
    random_crop: tuple[float, float] = (0.5, 1.0)
    random_rotate: float = 0.3
    random_scale: tuple[float, float] = (1.0, 1.0)
    stream: str = "joint"
    sampling: str = "crop"  # absent (= crop) in processors saved before frame sampling
    rotate_axes: str = "xyz"
    normalize: str = "none"

    @classmethod
    def from_data_config(cls, data: DataConfig) -> TransformSettings:
        return cls(**{f.name: getattr(data, f.name) for f in fields(cls)})


class Processor:
    """Sample -> float32 [C, T, V, M] for one model (see the module docstring)."""

    def __init__(self, layout: Layout, in_channels: int, settings: TransformSettings, dims: int = 3):
        self.layout = layout
        self.in_channels = int(in_channels)
        self.settings = settings
        self.dims = int(dims)  # coordinate channels the geometric steps touch (3D: 3; x, y, score: 2)
        self._transforms = {train: build_transform(settings, layout, train, dims=self.dims) for train in (False, True)}

    @classmethod
    def from_config(cls, data: DataConfig, layout: Layout, in_channels: int, dims: int = 3) -> Processor:
        return cls(layout, in_channels, TransformSettings.from_data_config(data), dims)

    def transform(self, train: bool = False) -> Compose:
        """The transform chain on joint arrays [M, T, V, C] (train adds the random crop and rotation)."""
        return self._transforms[bool(train)]

    def joints(self, sample: Sample) -> np.ndarray:
        """The sample's joints in the model's layout (converted by joint name when the sample names another
        layout), checked for the model's joints and channels."""
        source = sample.meta.get("path", sample.name)
        joints = sample.joints
        named = sample.meta.get("layout")
        if named and named != self.layout.name:
            joints = convert_joints(joints, named, self.layout)
        checked = Sample(sample.name, joints, sample.label, sample.meta).validate(
            num_joints=self.layout.num_joints, source=source)
        if checked.joints.shape[-1] != self.in_channels:
            raise DataError(source, f"the model takes {self.in_channels} channels per joint, this sample has "
                                    f"{checked.joints.shape[-1]}")
        return checked.joints

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None, train: bool = False) -> np.ndarray:
        return self.transform(train)(self.joints(sample), rng)

    def batch(self, samples: Sequence[Sample]) -> torch.Tensor:
        """The test-time tensor [N, C, T, V, M] of several samples (deterministic)."""
        rng = np.random.default_rng(0)
        return torch.from_numpy(np.stack([self(s, rng) for s in samples]))

    def dataset(self, samples: Sequence[Sample], train: bool, seed: int = 0, repeat: int = 1
                ) -> SkeletonTensorDataset:
        """A torch Dataset of (tensor, label) with per-sample, per-epoch seeded augmentation; `repeat` copies
        of every sample per epoch, each augmented differently."""
        return SkeletonTensorDataset(samples, self.transform(train), seed, repeat)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"format": PROCESSOR_FORMAT, "layout": self.layout.to_dict(), "in_channels": self.in_channels,
                "dims": self.dims, "transform": {k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in asdict(self.settings).items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Processor:
        if data.get("format") != PROCESSOR_FORMAT:
            raise SugarError(f"{source}: unknown processor format {data.get('format')!r}, expected {PROCESSOR_FORMAT}")
        try:
            settings = dict(data["transform"])
            settings["random_crop"] = tuple(settings.get("random_crop", (0.5, 1.0)))
            settings["random_scale"] = tuple(settings.get("random_scale", (1.0, 1.0)))  # absent before scaling
            return cls(Layout.from_dict(data["layout"], source=source), int(data["in_channels"]),
                       TransformSettings(**settings), int(data.get("dims", 3)))
        except (KeyError, TypeError, ValueError) as exc:
            raise SugarError(f"{source}: unreadable processor description ({exc})") from None

    def save_pretrained(self, folder: str | Path) -> None:
        atomic_write_text(Path(folder) / PROCESSOR_FILE, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Processor:
        path = Path(folder) / PROCESSOR_FILE
        if not path.is_file():
            raise SugarError(f"{folder}: no {PROCESSOR_FILE} (not a saved model folder)")
        return cls.from_dict(read_json_object(path, "the processor description"), str(path))

    def __repr__(self) -> str:
        return (f"Processor(layout={self.layout.name!r}, in_channels={self.in_channels}, "
                f"frames={self.settings.frames}, stream={self.settings.stream!r})")
