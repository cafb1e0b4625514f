"""Inference-time transforms of a recogniser: LoRA folded into the base weights, int8 dynamic quantisation.

Both change the LLM in place and invalidate the cached prompt prefixes. Training never runs on a merged or
quantised LLM: `Recognizer.train()` unmerges, and refuses after quantisation.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic

from sugar.errors import SugarError

if TYPE_CHECKING:  # the recogniser calls merge_lora; this module only reads its parts
    from sugar.models.recognizer import Recognizer


def merge_lora(rec: Recognizer, merge: bool = True) -> None:
    """Fold the LoRA weights into the base weights (faster inference) or take them out again.

    Training never merges: repeated merge/unmerge would let rounding drift into the frozen base weights.
    `load_recognizer` merges, and `.train()` unmerges.
    """
    if rec.int8:
        return  # LoRA is already folded into the quantised weights for good
    if merge and not rec.merged:
        rec.llm.merge_adapter()
    elif not merge and rec.merged:
        rec.llm.unmerge_adapter()
    rec.merged = merge
    rec.prefix_cache.clear()


def quantize_int8(rec: Recognizer) -> Recognizer:
    """Inference on CPU with the LLM's linear layers in int8 (PyTorch dynamic quantisation, fbgemm kernels):
    LoRA is folded into the base weights for good, then every nn.Linear of the LLM is quantised per tensor.
    The bridge and the embeddings stay float32. Training, saving and merging are refused afterwards."""
    if rec.device.type != "cpu":
        raise SugarError("int8 dynamic quantisation runs on CPU only; use bf16/fp16 on a GPU")
    if rec.int8:
        return rec
    merge_lora(rec, False)
    plain = rec.llm.merge_and_unload()
    with warnings.catch_warnings():  # torch marks quantised tensor creation deprecated (torchao replaces it)
        warnings.simplefilter("ignore", UserWarning)
        rec.llm = quantize_dynamic(plain, {nn.Linear}, dtype=torch.qint8)
    rec.int8, rec.merged = True, True
    rec.prefix_cache.clear()
    return rec
