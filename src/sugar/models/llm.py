"""The language model of stage 3: any causal LM (Hugging Face name or folder, or a GGUF file), frozen, plus LoRA.

Loading (aliases, GGUF conversion cached once under `sugar.paths.cache_dir("llm")`) is shared with stage 1 in
`sugar.llm_loading`; this module adds stage 3's defaults and the PEFT adapters.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import nn

from sugar.config import LoraConfig
from sugar.llm_loading import SMOLLM2_ALIAS, load_tokenizer
from sugar.llm_loading import load_causal_lm as _load_causal_lm

__all__ = ["SMOLLM2_ALIAS", "add_lora", "load_causal_lm", "load_lora", "load_tokenizer"]


@contextmanager
def _quiet_peft_deprecations() -> Iterator[None]:
    """PEFT still reads transformers' deprecated `is_gradient_checkpointing`; the FutureWarning it raises on
    every wrap is not the user's to act on, so it stays out of their logs (only that one message)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def load_causal_lm(name: str = SMOLLM2_ALIAS, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Any]:
    """(model in eval mode, tokenizer): an alias, GGUF file, local folder or Hugging Face name, in `dtype`
    (float32 by default: LoRA training and the ranking scores are computed in it on CPU)."""
    return _load_causal_lm(name, dtype)


def add_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Freeze the base model and wrap it with fresh LoRA adapters (PEFT)."""
    for p in model.parameters():
        p.requires_grad_(False)
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    with _quiet_peft_deprecations():
        return get_peft_model(model, peft_cfg)


def load_lora(model: nn.Module, adapter_dir: str | Path, trainable: bool = False) -> nn.Module:
    """Wrap a frozen base model with adapters saved by `save_pretrained` (PEFT format)."""
    for p in model.parameters():
        p.requires_grad_(False)
    with _quiet_peft_deprecations():
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
