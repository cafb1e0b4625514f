"""Recognizer on a tiny random LLaMA: ranking equals the plain likelihood, cached decoding equals uncached,
rank never answers off the list, save/load symmetry, generate-mode output."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stage3helpers import ACTIONS, build_tiny, random_tokens
from sugar.models import decoding
from sugar.models.answering import context
from sugar.models.inference import quantize_int8
from sugar.models.prompt import candidate_ids
from sugar.models.recognizer import Recognizer
from sugar.models.recognizer_io import load_recognizer, save_recognizer

_tokens = random_tokens


@torch.no_grad()
def _full_sequence(rec: Recognizer, tokens: torch.Tensor, parts, tail: list[int]) -> torch.Tensor:
    """Log-softmax over the plain, uncached sequence [prefix][action][suffix][tail] (batch of one)."""
    emb = rec.llm.get_input_embeddings()
    action, _ = rec.action_tokens([tokens])
    x = torch.cat([emb(torch.tensor([parts.prefix_ids])), action,
                   emb(torch.tensor([list(parts.suffix_ids) + tail]))], 1)
    return torch.log_softmax(rec.llm(inputs_embeds=x).logits[0].float(), -1), x.shape[1] - len(tail)


@torch.no_grad()
def test_tree_ranking_equals_plain_likelihood(rec, tok) -> None:
    actions = ACTIONS[:6]
    parts = rec.prompt(actions)
    cands = [candidate_ids(tok, a) for a in actions]
    tokens = _tokens(3)
    embeds, amask = rec.action_tokens(tokens)
    cache, mask, last = context(rec, embeds, amask, parts)
    scores = decoding.rank_candidates(rec.llm, cache, mask, last, decoding.CandidateTree.build(cands))
    for i, t in enumerate(tokens):
        for c, ids in enumerate(cands):
            logp, start = _full_sequence(rec, t, parts, ids)
            plain = sum(float(logp[start - 1 + j, tok_id]) for j, tok_id in enumerate(ids)) / len(ids)
            assert scores[i, c].item() == pytest.approx(plain, abs=1e-4)


@torch.no_grad()
def test_prefix_cache_gives_the_same_answers(rec) -> None:
    tokens = _tokens(4, seed=1)
    rec.use_prefix_cache = True
    a = rec.recognize(tokens, describe=True)
    rec.use_prefix_cache = False
    try:
        b = rec.recognize(tokens, describe=True)
    finally:
        rec.use_prefix_cache = True
    for x, y in zip(a, b, strict=True):
        assert x["label"] == y["label"] and x["description"] == y["description"]
        assert x["loglik"] == pytest.approx(y["loglik"], abs=1e-4)


def test_prefix_cache_lives_across_calls_until_training(rec, monkeypatch) -> None:
    """The prompt prefix runs once per action list, not once per call (a call used to clear it by switching to
    eval mode, doubling the latency of one sample); training mode drops it (LoRA weights change)."""
    from sugar.models import answering, decoding

    built = []
    real = decoding.run_cached

    def counting(model, cache, **kwargs):
        if "input_ids" in kwargs and cache is None:
            built.append(1)  # the prefix: token ids with no past
        return real(model, cache, **kwargs)

    monkeypatch.setattr(answering.decoding, "run_cached", counting)
    rec.eval().clear_cache()
    with torch.no_grad():
        rec.recognize(_tokens(2, seed=1), describe=False)
        rec.recognize(_tokens(2, seed=2), describe=False)
    assert len(built) == 1
    rec.train()
    rec.eval()
    with torch.no_grad():
        rec.recognize(_tokens(2, seed=1), describe=False)
    assert len(built) == 2


@torch.no_grad()
def test_forced_description_equals_plain_greedy(rec, tok) -> None:
    """Batched greedy continuation after labels of different lengths == one-by-one uncached greedy decoding."""
    parts = rec.prompt(ACTIONS)
    tokens = _tokens(2, seed=2)
    forced = [candidate_ids(tok, "throw"), candidate_ids(tok, "pick up with two hands")]
    embeds, amask = rec.action_tokens(tokens)
    cache, mask, last = context(rec, embeds, amask, parts)
    got, _ = decoding.greedy_continue(rec.llm, cache, mask, last, 5, stop_ids=[], forced=forced)
    for i in range(2):
        tail = list(forced[i])
        for _ in range(5):
            logp, _ = _full_sequence(rec, tokens[i], parts, tail)
            tail.append(int(logp[-1].argmax()))
        assert got[i] == tail[len(forced[i]):]


@settings(max_examples=8, deadline=None)
@given(subset=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=6, unique=True),
       seed=st.integers(0, 10_000), n=st.integers(1, 3))
def test_rank_never_answers_off_the_list(rec, subset, seed, n) -> None:
    results = rec.recognize(_tokens(n, seed), actions=subset, describe=False)
    assert len(results) == n
    for r in results:
        assert r["label"] in subset
        assert next(lab for lab, _ in r["top5"]) == r["label"] and len(r["top5"]) == min(5, len(subset))
        assert all(lab in subset for lab, _ in r["top5"])
        assert sum(p for _, p in r["top5"]) <= 1 + 1e-5


def test_generate_mode_reports_its_match(rec) -> None:
    results = rec.recognize(_tokens(2, seed=3), mode="generate")
    for r in results:
        assert r["match"] in ("exact", "normalised", "fuzzy", "none")
        assert (r["label"] is None) == (r["match"] == "none")
        assert r["label"] is None or r["label"] in ACTIONS
        assert isinstance(r["answer"], str)


def test_save_load_symmetry(rec, tmp_path, tok) -> None:
    tokens = _tokens(3, seed=4)
    save_recognizer(rec, tmp_path)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "bridge.safetensors").is_file()
    assert not any(p.name.startswith("model") for p in tmp_path.rglob("*.safetensors"))  # no base weights
    again = load_recognizer(tmp_path, with_encoder=False, merge_lora=False)
    with torch.no_grad():
        assert torch.equal(rec.loss(tokens, [0, 1, 2]), again.loss(tokens, [0, 1, 2]))
        a, b = rec.recognize(tokens), again.recognize(tokens)
    assert [(x["label"], x["loglik"], x["description"]) for x in a] == [(x["label"], x["loglik"], x["description"])
                                                                        for x in b]
    # the default load folds LoRA into the base weights: same answers up to rounding; .train() undoes it
    merged = load_recognizer(tmp_path, with_encoder=False)
    c = merged.recognize(tokens)
    assert [x["label"] for x in c] == [x["label"] for x in a]
    assert [x["loglik"] for x in c] == pytest.approx([x["loglik"] for x in a], abs=1e-4)
    merged.train()
    with torch.no_grad():
        assert torch.allclose(merged.loss(tokens, [0, 1, 2]), rec.loss(tokens, [0, 1, 2]), atol=1e-5)
    # and the adapters matter: a fresh LoRA/bridge gives different outputs
    with torch.no_grad():
        other = build_tiny_other(tmp_path, tok)
        assert not torch.equal(rec.loss(tokens, [0, 1, 2]), other.loss(tokens, [0, 1, 2]))


def build_tiny_other(tmp_path, tok):
    from stage3helpers import DESCRIPTIONS, tiny_config, tiny_llm_dir

    torch.manual_seed(123)
    cfg = tiny_config(str(tiny_llm_dir(tmp_path, tok)))
    return Recognizer.build(cfg, 16, ACTIONS, DESCRIPTIONS).eval()


def test_linear_bridge_with_variable_lengths(tmp_path_factory, tok) -> None:
    rec = build_tiny(tmp_path_factory, tok, kind="linear")
    tokens = _tokens(3, seed=5)
    results = rec.recognize(tokens, describe=False)
    # a sample's answer does not depend on what it is batched with (padding is masked)
    alone = rec.recognize(tokens[:1], describe=False)
    assert results[0]["loglik"] == pytest.approx(alone[0]["loglik"], abs=1e-4)


def test_loss_trains_only_bridge_and_lora(rec) -> None:
    rec.train()
    try:
        rec.zero_grad()
        rec.loss(_tokens(2, seed=6), [1, 4]).backward()
        trainable = {n for n, p in rec.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in n or n.startswith("bridge.") for n in trainable)
        assert all(p.grad is not None for n, p in rec.named_parameters() if p.requires_grad)
    finally:
        rec.zero_grad()
        rec.eval()


def test_int8_quantised_ranking_stays_close_and_is_inference_only(tmp_path_factory, tok) -> None:
    from sugar.errors import SugarError

    float_rec = build_tiny(tmp_path_factory, tok, seed=3)
    int8_rec = quantize_int8(build_tiny(tmp_path_factory, tok, seed=3))
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    assert sum(isinstance(m, DynamicInt8Linear) for m in int8_rec.llm.modules()) >= 6 * 2  # q k v o gate up
    kept = [n for n, m in int8_rec.llm.named_modules() if type(m) is torch.nn.Linear]
    assert kept and all(n.endswith("down_proj") for n in kept)  # massive activations: kept in float
    tokens = _tokens(6, seed=4)
    a = float_rec.recognize(tokens, describe=False, top_k=len(ACTIONS))
    b = int8_rec.recognize(tokens, describe=False, top_k=len(ACTIONS))
    for x, y in zip(a, b, strict=True):
        fx, fy = dict(x["top5"]), dict(y["top5"])
        assert max(abs(fx[k] - fy[k]) for k in ACTIONS) < 0.05
        assert y["label"] in ACTIONS
    with pytest.raises(SugarError, match="inference only"):
        int8_rec.train()
    with pytest.raises(SugarError, match="cannot be saved"):
        save_recognizer(int8_rec, tmp_path_factory.mktemp("int8"))


def test_answer_candidates_extend_the_label_candidate(tok) -> None:
    label = candidate_ids(tok, "sit down")
    full = candidate_ids(tok, "sit down", "The person bends the knees and lowers onto a chair.")
    assert full[:len(label)] == label and len(full) > len(label)
    assert candidate_ids(tok, "sit down", "The person bends the knees.", max_tokens=4) == full[:4]
    assert candidate_ids(tok, "sit down", "") == label


@torch.no_grad()
def test_rank_by_answer_scores_label_and_knowledge_description(rec, tok) -> None:
    # new actions with their knowledge (zero-shot), mixed with one trained action whose description is stored
    knowledge = {"jump": "Both feet leave the ground at once.", "kick": "One leg swings forward from the hip."}
    actions = ["jump", "kick", ACTIONS[0]]
    tokens = _tokens(2, seed=3)
    got = rec.recognize(tokens, actions=actions, knowledge=knowledge, rank_by="answer", describe=False, top_k=3)
    parts = rec.prompt(actions)
    texts = {**knowledge, ACTIONS[0]: rec.descriptions[ACTIONS[0]]}
    for t, result in zip(tokens, got, strict=True):
        plain = {}
        for a in actions:
            ids = candidate_ids(tok, a, texts[a], rec.cfg.max_answer_tokens)
            logp, start = _full_sequence(rec, t, parts, ids)
            plain[a] = sum(float(logp[start - 1 + j, i]) for j, i in enumerate(ids)) / len(ids)
        assert result["label"] == max(plain, key=plain.get)
        expected = torch.softmax(torch.tensor([plain[a] for a in actions]), 0)
        for label, score in result["top5"]:
            assert score == pytest.approx(float(expected[actions.index(label)]), abs=1e-4)
    by_label = rec.recognize(tokens, actions=actions, knowledge=knowledge, describe=False)
    assert [r["score"] for r in by_label] != [r["score"] for r in got]


def test_rank_by_rejects_unknown_values(rec) -> None:
    from sugar.errors import ConfigError

    with pytest.raises(ConfigError, match="rank_by"):
        rec.recognize(_tokens(1), rank_by="description")
