"""Inference-time transforms of a recogniser: LoRA folded into the base weights, the LLM cast to bf16 (CPUs with
native bf16: AVX512-BF16/AMX, and GPUs), int8 dynamic quantisation; `set_precision` picks one by name.
`set_encoder_precision` runs the skeleton encoder under bf16 autocast.

All three change the LLM in place and invalidate the cached prompt prefixes and list priors. Training never runs
on a merged or quantised LLM: `Recognizer.train()` unmerges, and refuses after quantisation.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from sugar.errors import ConfigError, SugarError

if TYPE_CHECKING:  # the recogniser calls merge_lora; this module only reads its parts
    from sugar.models.recognizer import Recognizer


def merge_lora(rec: Recognizer, merge: bool = True) -> None:
    """Fold the LoRA weights into the base weights (faster inference) or take them out again.

    Training never merges: repeated merge/unmerge would let rounding drift into the frozen base weights.
    `load_recognizer` merges, and `.train()` unmerges.
    """
    if rec.int8 or rec.bf16:
        return  # LoRA is already folded into the quantised / cast weights for good
    if merge and not rec.merged:
        rec.llm.merge_adapter()
    elif not merge and rec.merged:
        rec.llm.unmerge_adapter()
    rec.merged = merge
    rec.clear_cache()


# Linear layers left in float32 by `quantize_int8`: the MLP output projections read the LLM's "massive
# activations" (layer 11's inputs reach 1405x the median token's largest value in SmolLM2, layer 28's 68x;
# benchmarks/activations.py), which the one dynamic int8 scale per input tensor cannot hold. On the NW-UCLA
# recogniser (val, LLM alone; docs/benchmarks.md): fp32 80.4 %, every linear int8 41.2 %, these kept float 78.4 %.
FLOAT_LINEARS = ("down_proj",)


def quantize_int8(rec: Recognizer) -> Recognizer:
    """Inference on CPU with the LLM's linear layers in int8 (PyTorch dynamic quantisation, fbgemm kernels):
    LoRA is folded into the base weights for good, then the LLM's nn.Linear layers are quantised with one scale
    per output channel, except those named in FLOAT_LINEARS. The bridge and the embeddings stay float32.
    Training, saving and merging are refused afterwards."""
    if rec.device.type != "cpu":
        raise SugarError("int8 dynamic quantisation runs on CPU only; use bf16/fp16 on a GPU")
    if rec.int8:
        return rec
    if rec.bf16:
        raise SugarError("this recogniser is already cast to bf16; quantise the float one it was made from")
    merge_lora(rec, False)
    plain = rec.llm.merge_and_unload()
    with warnings.catch_warnings():  # torch marks quantised tensor creation deprecated (torchao replaces it)
        warnings.simplefilter("ignore", UserWarning)
        rec.llm = quantize_dynamic(plain, int8_linears(plain), dtype=torch.qint8)
    rec.int8, rec.merged = True, True
    rec.clear_cache()
    return rec


def int8_linears(model: nn.Module) -> dict[str, Any]:
    """quantize_dynamic's spec: every nn.Linear not named in FLOAT_LINEARS, per-channel weight scales."""
    return {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and not any(part in name for part in FLOAT_LINEARS)}


PRECISIONS = ("auto", "fp32", "bf16", "int8")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic is native here (then it is faster than fp32; emulated bf16 is slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cast_bf16(rec: Recognizer) -> Recognizer:
    """Inference with the LLM in bf16: LoRA folded into the base weights for good, every LLM weight cast to
    bf16 (half the memory; native bf16 matmuls). The bridge stays float32 and the scores are computed in
    float32 from the bf16 logits. Training, saving and merging are refused afterwards."""
    if rec.int8 or rec.bf16:
        return rec
    merge_lora(rec, False)
    rec.llm = rec.llm.merge_and_unload().to(torch.bfloat16)
    rec.bf16, rec.merged = True, True
    rec.clear_cache()
    return rec


def set_precision(rec: Recognizer, precision: str = "auto") -> str:
    """Apply an inference precision by name and return the one used: fp32 (as trained), bf16 (`cast_bf16`),
    int8 (`quantize_int8`, CPU), or auto = bf16 on a GPU with native bf16, else fp32. On CPUs, even with
    AVX512-BF16, bf16 weights measured no faster than fp32 for this LLM (docs/benchmarks.md), so auto keeps fp32
    there; int8 is the fast CPU choice, but approximate, so it is asked for by name."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = "bf16" if rec.device.type == "cuda" and native_bf16(rec.device) else "fp32"
    if precision == "bf16":
        cast_bf16(rec)
    elif precision == "int8":
        quantize_int8(rec)
    return precision


ENCODER_PRECISIONS = ("auto", "fp32", "bf16")


def set_encoder_precision(rec: Recognizer, precision: str = "auto") -> str:
    """Run the frozen skeleton encoder under bf16 autocast (bf16) or as trained (fp32) and return the one used;
    auto = bf16 where the device has native bf16 (AVX512-BF16/AMX CPUs, GPUs), where it is faster than fp32.
    Its tokens reach the bridge and the text head in float32 either way; the accuracy cost is measured in
    docs/benchmarks.md."""
    if precision not in ENCODER_PRECISIONS:
        raise ConfigError(f"encoder precision {precision!r}: choose one of {', '.join(ENCODER_PRECISIONS)}")
    if precision == "auto":
        precision = "bf16" if native_bf16(rec.device) else "fp32"
    rec.encoder_bf16 = precision == "bf16"
    return precision
