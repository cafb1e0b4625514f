"""The text bridge (tqp.TextBridge) and its map (text_map): frozen stage-2 head + ridge map into the LLM's name
embeddings; only its gain and LoRA train."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from stage3helpers import session_tokenizer, tiny_config, tiny_llm_dir
from sugar.config import BridgeConfig
from sugar.errors import ConfigError
from sugar.models import text_map
from sugar.models.text_map import fit_text_map, init_text_bridge, name_embedding, ridge, training_pairs
from sugar.models.tqp import TextBridge, build_bridge, pad_tokens


def _bridge(seed: int = 0) -> TextBridge:
    g = torch.Generator().manual_seed(seed)
    bridge = build_bridge(BridgeConfig(kind="text", text_dim=8), 12, 20)
    assert isinstance(bridge, TextBridge)
    with torch.no_grad():
        bridge.head.load_state_dict(nn.Linear(12, 8).state_dict())
        bridge.map.weight.copy_(torch.randn(20, 8, generator=g))
        bridge.map.bias.copy_(torch.randn(20, generator=g))
    return bridge.eval()


def test_one_token_through_the_unit_text_feature_and_padding_ignored() -> None:
    bridge = _bridge()
    x = torch.randn(2, 9, 12)
    out, mask = bridge(x)
    assert out.shape == (2, 1, 20) and mask.all()
    # the token depends on the text feature's direction only (it is normalised before the map)
    text = nn.functional.normalize(nn.functional.linear(x.mean(1), bridge.head.weight, bridge.head.bias), dim=-1)
    expected = nn.functional.linear(text, bridge.map.weight, bridge.map.bias)
    assert torch.allclose(out[:, 0], expected, atol=1e-5)
    padded, m = pad_tokens([x[0, :4], x[1]])
    padded[0, 4:] = 50.0
    assert torch.allclose(bridge(padded, m)[0][0], bridge(x[:1, :4])[0][0], atol=1e-5)


def test_only_the_gain_trains_and_the_state_round_trips() -> None:
    bridge = _bridge()
    assert [n for n, p in bridge.named_parameters() if p.requires_grad] == ["gain"]
    fresh = build_bridge(BridgeConfig(kind="text", text_dim=8), 12, 20)
    fresh.load_state_dict(bridge.state_dict())
    x = torch.randn(3, 5, 12)
    assert torch.equal(fresh.eval()(x)[0], bridge(x)[0])


def test_a_head_of_another_width_is_refused() -> None:
    bridge = build_bridge(BridgeConfig(kind="text", text_dim=8), 12, 20)
    with pytest.raises(ConfigError, match="text_dim"):
        init_text_bridge(bridge, nn.Linear(12, 16), "all-MiniLM-L6-v2", [], nn.Embedding(4, 20), None)


def test_ridge_recovers_a_linear_map() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g)
    w, b = torch.randn(4, 6, generator=g), torch.randn(4, generator=g)
    weight, bias = ridge(x, x @ w.T + b, 1e-8)
    assert torch.allclose(weight, w, atol=1e-4) and torch.allclose(bias, b, atol=1e-4)


def test_the_fitted_map_retrieves_names_it_was_not_fitted_on() -> None:
    """Classes share one linear relation between their texts and their names: held-out names are found."""
    g = torch.Generator().manual_seed(1)
    names = torch.randn(40, 10, generator=g)
    relation = torch.randn(12, 10, generator=g)
    groups = torch.arange(40).repeat_interleave(3)
    x = nn.functional.normalize(names[groups] @ relation.T + 0.1 * torch.randn(120, 12, generator=g), dim=-1)
    _, _, record = fit_text_map(x, names[groups], groups)
    assert record["classes"] == 40 and record["rows"] == 120
    assert record["heldout_name_retrieval"][str(record["penalty"])] > 0.8  # chance: ~1/8 per fold


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    tok = session_tokenizer(tmp_path_factory)
    folder = tiny_llm_dir(tmp_path_factory.getbasetemp(), tok)
    return folder, tok, AutoModelForCausalLM.from_pretrained(folder)


def test_pairs_leave_out_every_label_holding_an_excluded_name(tiny) -> None:
    _, tok, llm = tiny
    emb = llm.get_input_embeddings()
    x, y, groups = training_pairs("all-MiniLM-L6-v2", ["Sit Down"], emb, tok, datasets=["nw-ucla"])
    assert int(groups.max()) + 1 == 9  # NW-UCLA's 10 classes less "sit down"
    assert x.shape[1] == 384 and y.shape == (len(x), 64)
    assert torch.allclose(x.norm(dim=-1), torch.ones(len(x)), atol=1e-5)
    sit = name_embedding(emb, tok, "sit down")
    assert not any(torch.allclose(row, sit) for row in y)
    assert any(torch.allclose(row, name_embedding(emb, tok, "stand up")) for row in y)


def test_tune_with_the_text_bridge_keeps_the_head_and_map_fixed(tiny, tmp_path, monkeypatch) -> None:
    from sugar.models.evidence import TextEvidence, TextHead
    from sugar.models.recognizer_io import load_recognizer
    from sugar.training import instruct
    from sugar.training.instruct import tune
    from test_tune import CLASSES, _data

    folder, _, _ = tiny
    head = TextHead(16, 384, 20.0)
    evidence = TextEvidence(head, CLASSES, nn.functional.normalize(torch.randn(len(CLASSES), 384), dim=-1),
                            "all-MiniLM-L6-v2")
    monkeypatch.setattr(instruct, "text_evidence", lambda run, device="cpu": evidence)
    monkeypatch.setattr(instruct, "encoder_evidence", lambda run, device="cpu": (evidence, None))
    monkeypatch.setattr(instruct, "require_pretrain_run", lambda run: run)  # no stage-2 run on disk
    monkeypatch.setattr(text_map, "shipped_datasets", lambda: ["nw-ucla"])
    cfg = replace(tiny_config(str(folder), "text"), knowledge="none", epochs=1, batch_size=4, lr=3e-3,
                  warmup_steps=2, encoder_run="stage2-run", exclude_classes=(CLASSES[3],))
    report = tune(cfg, tmp_path / "run", progress=False, data=_data())
    fit = json.loads((tmp_path / "run" / "text_map.json").read_text())
    assert fit["classes"] == 9 and fit["penalty"] in text_map.RIDGE_GRID  # "walk around" is NW-UCLA's
    assert report["excluded"] == [CLASSES[3]] and "test_unseen" in report
    rec = load_recognizer(tmp_path / "run", with_encoder=False)
    assert torch.equal(rec.bridge.head.weight, head.linear.weight)
    assert rec.bridge.map.weight.abs().sum() > 0


def test_a_label_shared_by_two_files_is_one_class(tiny) -> None:
    """NTU-60's classes are NTU-120's first 60: counted twice, a class would sit on both sides of a fold."""
    _, tok, llm = tiny
    _, _, groups = training_pairs("all-MiniLM-L6-v2", [], llm.get_input_embeddings(), tok,
                                  datasets=["ntu60", "ntu120"])
    assert int(groups.max()) + 1 == 120
