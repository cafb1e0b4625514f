"""End to end on real pieces: tune the real SmolLM2-135M-Instruct on real NW-UCLA encoder tokens (slow)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from sugar.config import BridgeConfig, DataConfig, EncoderConfig, TuneConfig


class _Items(torch.utils.data.Dataset):
    def __init__(self, tokens: list[torch.Tensor], labels: np.ndarray):
        self.tokens, self.labels = tokens, labels

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int):
        return self.tokens[i], int(self.labels[i])


def _knowledge_setting() -> str:
    try:
        from sugar.knowledge.schema import load_knowledge

        load_knowledge("nw-ucla")
        return "nw-ucla"
    except Exception:  # knowledge files not shipped yet: label-only answers
        return "none"


@pytest.mark.slow
def test_tune_smollm2_on_nw_ucla_tokens_lowers_the_loss(shared_data, tmp_path) -> None:
    encoder_mod = pytest.importorskip("sugar.models.encoder", reason="stage-2 encoder not installed")
    from sugar.models.recognizer import Recognizer
    from sugar.models.recognizer_io import load_recognizer
    from sugar.skeleton.datasets import open_dataset
    from sugar.skeleton.transforms import build_transform
    from sugar.training.instruct import TuneData, tune

    ds = open_dataset("nw-ucla", split="train")
    pick = np.concatenate([np.flatnonzero(ds.labels == c)[:2] for c in range(len(ds.classes))])  # 2 per class
    torch.manual_seed(0)
    encoder = encoder_mod.build_encoder(EncoderConfig(), ds.layout).eval()  # random init: a stand-in encoder
    transform = build_transform(DataConfig(dataset="nw-ucla", frames=32), ds.layout, train=False)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.stack([transform(ds[int(i)].joints, rng) for i in pick]))
    with torch.no_grad():
        tokens = list(encoder(x))
    labels = ds.labels[pick]
    data = TuneData("nw-ucla", list(ds.classes), {"train": _Items(tokens, labels)}, {"train": labels},
                    encoder.dim)
    cfg = TuneConfig(llm="smollm2-135m", knowledge=_knowledge_setting(), epochs=3, batch_size=4, lr=2e-3,
                     warmup_steps=2, bridge=BridgeConfig(num_queries=8, chunk_frames=4, hidden_size=64,
                                                         num_layers=1, num_heads=4, dropout=0.0))
    cfg = replace(cfg, lora=replace(cfg.lora, dropout=0.0))

    torch.manual_seed(cfg.seed)  # tune() builds its recogniser from the same seed
    before = Recognizer.build(cfg, encoder.dim, list(ds.classes)).eval()
    with torch.no_grad():
        loss_before = float(before.loss(tokens, labels.tolist()))
    del before

    tune(cfg, tmp_path / "run", progress=False, data=data)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    after = load_recognizer(tmp_path / "run", with_encoder=False, merge_lora=False)
    with torch.no_grad():
        loss_after = float(after.loss(tokens, labels.tolist()))
    assert loss_after < 0.8 * loss_before, (loss_before, loss_after)
    out = after.recognize(tokens[:4], describe=True)
    assert all(r["label"] in ds.classes and isinstance(r["description"], str) for r in out)
