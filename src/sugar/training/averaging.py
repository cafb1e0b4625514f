"""An exponential moving average of the weights a run trains (torch.optim.swa_utils), validated and kept in
place of the raw weights.

Why: the raw SGD weights at lr 0.1 move a lot from one epoch to the next, so choosing the best epoch on a small
validation part (NW-UCLA's 102 samples, MSR's 33) partly picks noise; averaging the weights over the last few
epochs gives flatter minima, which hold up better on views and subjects never trained on (SWA, Izmailov et al.
2018; SWAD, Cha et al. 2021, on domain shift). The raw weights keep training; the average only follows them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from sugar.errors import ConfigError


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself under DistributedDataParallel (whose state_dict keys carry a `module.` prefix)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class WeightAverage:
    """EMA of `model`'s parameters and buffers (BatchNorm statistics included) with `decay` per optimizer step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema_decay must lie in [0, 1) (0: no average), got {decay}")
        self.model = unwrap(model)
        self.average = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def update(self) -> None:
        self.average.update_parameters(self.model)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block (to validate and save them), its own after."""
        own = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.average.module.state_dict())
        try:
            yield
        finally:
            self.model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().cpu() for k, v in self.average.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average.load_state_dict(state)
