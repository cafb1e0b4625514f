"""Frozen linear weights held in bf16 while a stage trains under CPU bf16 autocast.

Autocast runs an nn.Linear in bf16 by casting its fp32 weight to bf16 at every forward call. For a frozen LLM
that is the same cast of the same tensor, hundreds of times per step (about a fifth of a stage-3 training step on
an AMX Xeon, `benchmarks/recognize.py --profile`). Holding that bf16 copy for the duration of training gives
the identical function (autocast would have made the same round-to-nearest copy) without the repeated copies.
The fp32 originals stay in memory and are put back for everything that is not a training step under autocast:
validation, the saved recogniser and the test report see the fp32 model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class FrozenLinearsInBf16:
    """The frozen nn.Linear weights of `module`, switchable between their fp32 originals and bf16 copies.

    Weights shared with an embedding (a tied LM head) stay fp32: the embedding lookup is not autocast, so a bf16
    table would change the LLM's inputs. `enabled=False` makes every method a no-op (fp32 training, GPUs)."""

    def __init__(self, module: nn.Module, enabled: bool = True):
        tied = {m.weight.data_ptr() for m in module.modules() if isinstance(m, nn.Embedding)}
        self.linears = [m for m in module.modules() if isinstance(m, nn.Linear) and not m.weight.requires_grad
                        and m.weight.dtype == torch.float32 and m.weight.data_ptr() not in tied] if enabled else []
        self.originals: list[torch.Tensor] | None = None  # the fp32 weights while the bf16 copies are in place

    def lower(self) -> None:
        """Swap in bf16 copies, cast from the current fp32 weights."""
        if self.originals is None:
            self.originals = [m.weight.data for m in self.linears]
            for m in self.linears:
                m.weight.data = m.weight.data.to(torch.bfloat16)

    def restore(self) -> None:
        """Put the fp32 originals back."""
        if self.originals is not None:
            for m, original in zip(self.linears, self.originals, strict=True):
                m.weight.data = original
            self.originals = None

    @contextlib.contextmanager
    def held(self) -> Iterator[FrozenLinearsInBf16]:
        """bf16 copies inside the block (training), the fp32 originals after it, also on errors."""
        self.lower()
        try:
            yield self
        finally:
            self.restore()

    @contextlib.contextmanager
    def in_fp32(self) -> Iterator[None]:
        """The fp32 originals inside the block (validation in the middle of training), bf16 copies again after."""
        was_lowered = self.originals is not None
        self.restore()
        try:
            yield
        finally:
            if was_lowered:
                self.lower()
