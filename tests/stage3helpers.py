"""Tiny random-weight LLaMA + the real SmolLM2 tokenizer, for fast stage-3 tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sugar.config import BridgeConfig, LoraConfig, TuneConfig
from sugar.evaluation.metrics import save_scores

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


def session_tokenizer(tmp_path_factory):
    """The real SmolLM2 tokenizer, converted into this test session's cache (the conftest cache path)."""
    import os

    from sugar.models.llm import load_tokenizer

    old = os.environ.get("SUGAR_CACHE")
    os.environ["SUGAR_CACHE"] = str(tmp_path_factory.getbasetemp() / "sugar-cache")
    try:
        return load_tokenizer("smollm2-135m")
    finally:
        if old is None:
            os.environ.pop("SUGAR_CACHE", None)
        else:
            os.environ["SUGAR_CACHE"] = old


def build_tiny(tmp_path_factory, tokenizer, kind: str = "tqp", encoder_dim: int = 16, seed: int = 0, **bridge):
    """A Recognizer on a tiny random LLaMA (fresh LoRA + bridge, seeded)."""
    from sugar.models.recognizer import Recognizer

    folder = tiny_llm_dir(tmp_path_factory.getbasetemp(), tokenizer)
    cfg = tiny_config(str(folder), kind, **bridge)
    torch.manual_seed(seed)
    rec = Recognizer.build(cfg, encoder_dim, ACTIONS, DESCRIPTIONS)
    # LoRA B matrices start at zero; give them values so that adapters matter in save/load tests
    with torch.no_grad():
        for name, p in rec.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return rec.eval()


def build_tiny_with_encoder(tmp_path_factory, tokenizer):
    """A Recognizer on a tiny random LLaMA that reads skeletons: an untrained kinect20 (NW-UCLA's layout, with its
    derived joints) CTR-GCN encoder of the `cpu` preset, seeded, and its processor (16 frames, one person)."""
    from sugar.config import DataConfig, EncoderConfig
    from sugar.models.encoder import build_encoder
    from sugar.models.recognizer import Recognizer
    from sugar.skeleton.layouts import get_layout
    from sugar.skeleton.processor import Processor

    llm = str(tiny_llm_dir(tmp_path_factory.getbasetemp(), tokenizer))
    torch.manual_seed(0)
    layout = get_layout("kinect20")
    encoder = build_encoder(EncoderConfig(preset="cpu"), layout, 3)
    processor = Processor.from_config(DataConfig(frames=16, max_persons=1), layout, 3)
    return Recognizer.build(tiny_config(llm), encoder.dim, ACTIONS, DESCRIPTIONS, encoder=encoder,
                            processor=processor)


def random_tokens(n: int, seed: int = 0) -> list[torch.Tensor]:
    """n action-token sequences of 5-12 steps, 16 features (build_tiny's encoder_dim)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(int(t), 16, generator=g) for t in torch.randint(5, 13, (n,), generator=g)]


def proxy_run(root: Path, name: str, llm_right: float, text_right: float, seed: int,
              classes: list[str], n: int = 60) -> Path:
    """A proxy folder with saved test scores on its whole list: the LLM right on a `llm_right` share of the
    samples, the text head on a `text_right` share, drawn independently."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(classes), n)
    folder = root / name / "evaluation" / "test"
    folder.mkdir(parents=True)
    names = [f"{name}-{i}" for i in range(n)]
    for kind, share in (("llm", llm_right), ("text", text_right)):
        scores = rng.normal(size=(n, len(classes)))
        right = rng.random(n) < share
        scores[right, y[right]] += 5.0
        save_scores(folder / f"scores-{kind}-all.npz", scores, y, names, classes)
    return root / name
