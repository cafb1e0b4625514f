"""An exponential moving average of the weights a run trains, validated and kept in place of the raw weights.

Why: the raw SGD weights at lr 0.1 move a lot from one epoch to the next, so choosing the best epoch on a small
validation part (NW-UCLA's 102 samples, MSR's 33) partly picks noise; averaging the weights over the last few
epochs gives flatter minima, which hold up better on views and subjects never trained on (SWA, Izmailov et al.
2018; SWAD, Cha et al. 2021, on domain shift). The raw weights keep training; the average only follows them.

Only what changes is averaged: the trained parameters and the floating-point buffers (BatchNorm statistics), so
a frozen LLM of stage 3 is neither copied nor averaged. The update is torch's own EMA (swa_utils).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from sugar.errors import ConfigError


class WeightAverage:
    """EMA with `decay` per optimizer step of `model`'s trained parameters and floating-point buffers."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema_decay must lie in [0, 1) (0: no average), got {decay}")
        # DistributedDataParallel yields its module's own tensors, so a wrapped model needs no unwrapping
        self.tracked = [p for p in model.parameters() if p.requires_grad] + \
            [b for b in model.buffers() if b.is_floating_point()]
        self.average = [t.detach().clone() for t in self.tracked]
        self.updates = 0
        self._lerp = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(self) -> None:
        current = [t.detach() for t in self.tracked]
        if self.updates == 0:  # the first average is the weights themselves, as torch's AveragedModel starts
            torch._foreach_copy_(self.average, current)
        else:
            self._lerp(self.average, current, self.updates)
        self.updates += 1

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block (to validate and save them), its own after."""
        with torch.no_grad():
            own = [t.detach().clone() for t in self.tracked]
            torch._foreach_copy_(self.tracked, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.tracked, own)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "average": [t.detach().cpu() for t in self.average]}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:
            raise ConfigError("its checkpoint holds no weight average; resume it without ema_decay or start a new "
                              "run directory")
        saved = state.get("average")
        if saved is None or "updates" not in state:
            raise ConfigError("the checkpoint's weight average is in another format (an earlier version of this "
                              "option); finish the run with that version or start a new run directory")
        if len(saved) != len(self.average) or any(a.shape != s.shape for a, s in zip(self.average, saved,
                                                                                   strict=True)):
            raise ConfigError("the checkpoint's weight average does not fit this model (another architecture?)")
        with torch.no_grad():
            torch._foreach_copy_(self.average, [s.to(a.device, a.dtype) for a, s in zip(self.average, saved,
                                                                                       strict=True)])
        self.updates = int(state["updates"])
