"""Tiny random-weight LLaMA + the real SmolLM2 tokenizer, for fast stage-3 tests."""

from __future__ import annotations

from pathlib import Path

import torch

from sugar.config import BridgeConfig, LoraConfig, TuneConfig

ACTIONS = ["pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
           "stand up", "donning", "doffing", "throw", "carry"]
DESCRIPTIONS = {a: f"The person performs {a} with a clear motion." for a in ACTIONS}


def tiny_llm_dir(root: Path, tokenizer) -> Path:
    """Save a 2-layer random LLaMA with `tokenizer` to root/tiny-llama (a loadable Hugging Face folder)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = root / "tiny-llama"
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=len(tokenizer), max_position_embeddings=1024,
                      tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_config(llm: str, kind: str = "tqp", **bridge) -> TuneConfig:
    b = BridgeConfig(kind=kind, num_queries=4, chunk_frames=4, hidden_size=32, num_layers=1, num_heads=2,
                     dropout=0.0, **bridge)
    return TuneConfig(llm=llm, bridge=b, lora=LoraConfig(r=4, alpha=8, dropout=0.0), max_description_tokens=6,
                      max_answer_tokens=24, eval_batch_size=4)
