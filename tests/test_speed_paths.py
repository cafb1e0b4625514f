"""The fast paths of issue 16 compute the same function as the plain ones: the shared-prefix training loss, the
row-chunked ranking, bf16 inference (close), CPU bf16 autocast chosen by default where it is native, the
separating-prefix candidate tree; the allocator setting `sugar tune` applies."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from stage3helpers import ACTIONS, build_tiny, build_tiny_with_encoder, random_tokens
from sugar.config import PretrainConfig, TuneConfig
from sugar.errors import ConfigError, SugarError
from sugar.models import decoding, inference
from sugar.models.answering import context, ranked_context
from sugar.models.prompt import candidate_ids
from sugar.models.recognizer_io import save_recognizer
from sugar.training import loop
from sugar.training.allocator import on_glibc

_tokens = random_tokens


def test_shared_prefix_loss_equals_the_full_sequence_loss(rec) -> None:
    """Running the prompt prefix once per batch gives the same loss and the same gradients."""
    tokens, labels = _tokens(3, seed=2), [0, 5, 8]
    rec.train()
    try:
        results = []
        for share in (False, True):
            rec.share_prefix = share
            rec.zero_grad()
            loss = rec.loss(tokens, labels)
            loss.backward()
            grads = {n: p.grad.clone() for n, p in rec.named_parameters() if p.requires_grad}
            results.append((float(loss.detach()), grads))
    finally:
        rec.share_prefix = True
        rec.zero_grad()
        rec.eval()
    (plain, g_plain), (shared, g_shared) = results
    assert shared == pytest.approx(plain, abs=1e-5)
    for name, g in g_plain.items():
        assert torch.allclose(g, g_shared[name], atol=1e-5, rtol=1e-4), name


@torch.no_grad()
def test_row_chunked_ranking_equals_one_pass(rec, tok) -> None:
    parts = rec.prompt(ACTIONS)
    tree = decoding.CandidateTree.build([candidate_ids(tok, a, f"{a} done slowly and with care.") for a in ACTIONS])
    embeds, amask = rec.action_tokens(_tokens(5, seed=3))
    cache, mask, last = context(rec, embeds, amask, parts)
    whole = decoding.rank_candidates(rec.llm, cache, mask, last, tree)
    chunked = decoding.rank_candidates(rec.llm, cache, mask, last, tree, budget_bytes=1)  # one row per pass
    assert torch.allclose(whole, chunked, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("separating", [False, True])
def test_context_and_tree_in_one_pass_equal_two_passes(rec, tok, separating) -> None:
    parts = rec.prompt(ACTIONS)
    tree = decoding.CandidateTree.build([candidate_ids(tok, a) for a in ACTIONS], separating=separating)
    embeds, amask = rec.action_tokens(_tokens(4, seed=6))
    amask = amask.clone()
    amask[1, -3:] = False  # a row with padded action tokens
    (cache, mask, last), none = ranked_context(rec, embeds, amask, parts)
    two_pass = decoding.rank_candidates(rec.llm, cache, mask, last, tree)
    (cache1, mask1, last1), one_pass = ranked_context(rec, embeds, amask, parts, tree=tree)
    assert none is None and one_pass is not None
    assert torch.allclose(one_pass, two_pass, atol=1e-5)
    assert torch.equal(mask1, mask) and torch.allclose(last1, last, atol=1e-5)
    assert cache1.get_seq_length() == cache.get_seq_length()  # the tree's nodes are not left in the cache
    forced = [candidate_ids(tok, "throw")] * 4
    assert (decoding.greedy_continue(rec.llm, cache1, mask1, last1, 4, [], forced)[0]
            == decoding.greedy_continue(rec.llm, cache, mask, last, 4, [], forced)[0])


def test_separating_tree_cuts_each_candidate_after_its_first_unique_token(tok) -> None:
    cands = [candidate_ids(tok, a) for a in ACTIONS]
    tree = decoding.CandidateTree.build(cands, separating=True)
    assert tree.lengths.tolist() == [len(c) for c in cands]  # the normaliser: the whole entry's length
    scored = 1 + torch.bincount(tree.pairs[:, 0], minlength=len(cands))  # the first token, then one per pair
    for cand, length in zip(cands, scored.tolist(), strict=True):
        assert 1 <= length <= len(cand)
        head = tuple(cand[:length])
        assert sum(tuple(c[:length]) == head for c in cands) == 1  # unique at that length ...
        if length > 1:  # ... and not before
            assert sum(tuple(c[:length - 1]) == head[:-1] for c in cands) > 1
    assert tree.node_tokens.numel() < decoding.CandidateTree.build(cands).node_tokens.numel()
    assert decoding.separating_length([1, 2], [[1, 2], [1, 2, 3]]) == 2  # a prefix of another: all of it


def test_bf16_ranking_stays_close_and_is_inference_only(tmp_path_factory, tok) -> None:
    float_rec = build_tiny(tmp_path_factory, tok, seed=3)
    bf16_rec = inference.cast_bf16(build_tiny(tmp_path_factory, tok, seed=3))
    assert all(p.dtype == torch.bfloat16 for p in bf16_rec.llm.parameters())
    tokens = _tokens(6, seed=4)
    a = float_rec.recognize(tokens, describe=False, top_k=len(ACTIONS))
    b = bf16_rec.recognize(tokens, describe=True, top_k=len(ACTIONS))
    for x, y in zip(a, b, strict=True):
        fx, fy = dict(x["top5"]), dict(y["top5"])
        assert max(abs(fx[k] - fy[k]) for k in ACTIONS) < 0.05
        assert isinstance(y["description"], str)
    with pytest.raises(SugarError, match="inference only"):
        bf16_rec.train()
    with pytest.raises(SugarError, match="cannot be saved"):
        save_recognizer(bf16_rec, tmp_path_factory.mktemp("bf16"))


def test_precision_auto_keeps_fp32_on_cpu_and_names_are_checked(tmp_path_factory, tok, monkeypatch) -> None:
    monkeypatch.setattr(inference, "native_bf16", lambda device: True)  # even with native bf16: measured no faster
    r = build_tiny(tmp_path_factory, tok)
    assert inference.set_precision(r, "auto") == "fp32" and not r.bf16
    assert inference.set_precision(r, "bf16") == "bf16" and r.bf16
    with pytest.raises(ConfigError, match="precision"):
        inference.set_precision(r, "fp8")


def test_cpu_bf16_autocast_is_the_default_where_native(monkeypatch) -> None:
    assert PretrainConfig().cpu_bf16 and TuneConfig().cpu_bf16  # stage 3 uses it on AMX CPUs only (instruct.py)
    cpu = torch.device("cpu")
    monkeypatch.setattr(loop, "cpu_supports_bf16", lambda: True)
    with loop.autocast(cpu, False, True):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(loop, "cpu_supports_bf16", lambda: False)  # emulated bf16 is slower: stay in fp32
    with loop.autocast(cpu, False, True):
        assert not torch.is_autocast_enabled("cpu")


def test_encoder_under_bf16_autocast_stays_close_to_fp32() -> None:
    from sugar.models.encoder import SkeletonEncoder
    from sugar.skeleton.layouts import get_layout

    torch.manual_seed(0)
    enc = SkeletonEncoder(get_layout("kinect20"), 3, "cpu", "stock").eval()
    x = torch.randn(4, 3, 16, 20, 1)
    with torch.no_grad():
        full = enc(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = enc(x).float()
    assert half.shape == full.shape
    cos = torch.nn.functional.cosine_similarity(full.flatten(1), half.flatten(1))
    assert float(cos.min()) > 0.99


def test_encoder_bf16_autocast_stays_close_to_fp32(tmp_path_factory, tok, monkeypatch) -> None:
    """--encoder-precision bf16 runs the encoder under bf16 autocast; its tokens stay near fp32's, in float32."""
    from sugar.skeleton.sample import Sample

    r = build_tiny_with_encoder(tmp_path_factory, tok).eval()
    layout = r.processor.layout
    g = torch.Generator().manual_seed(4)
    samples = [Sample(f"s{i}", torch.rand((1, 24, layout.num_joints, 3), generator=g).numpy()) for i in range(3)]
    monkeypatch.setattr(inference, "native_bf16", lambda device: False)
    assert inference.set_encoder_precision(r, "auto") == "fp32" and not r.encoder_bf16
    plain = torch.stack(r.encode(samples))
    monkeypatch.setattr(inference, "native_bf16", lambda device: True)
    assert inference.set_encoder_precision(r, "auto") == "bf16" and r.encoder_bf16
    half = torch.stack(r.encode(samples))
    assert half.dtype == torch.float32 and not torch.equal(half, plain)
    assert torch.nn.functional.cosine_similarity(half.flatten(1), plain.flatten(1)).min() > 0.99
    with pytest.raises(ConfigError, match="encoder precision"):
        inference.set_encoder_precision(r, "int8")


def test_frozen_linears_held_in_bf16_give_autocasts_function_and_come_back(rec) -> None:
    """Under CPU bf16 autocast, bf16 copies of the frozen weights compute what autocast's own casts compute (the
    same loss and LoRA/bridge gradients, bit for bit); afterwards the fp32 originals are back, the same tensors."""
    from sugar.training.frozen_bf16 import FrozenLinearsInBf16

    tokens, labels = _tokens(3, seed=4), [1, 4, 7]
    frozen = FrozenLinearsInBf16(rec.llm)
    assert frozen.linears, "the tiny LLaMA's frozen projections are found"
    embedding = rec.llm.get_input_embeddings().weight
    assert all(m.weight.data_ptr() != embedding.data_ptr() for m in frozen.linears), "the tied LM head stays fp32"
    assert all(not m.weight.requires_grad for m in frozen.linears), "LoRA and bridge weights are never cast"
    originals = [(m.weight.data_ptr(), m.weight.detach().clone()) for m in frozen.linears]
    rec.train()
    try:
        results = []
        for hold in (False, True):
            rec.zero_grad()
            with frozen.held() if hold else contextlib.nullcontext():
                if hold:
                    assert all(m.weight.dtype == torch.bfloat16 for m in frozen.linears)
                    with frozen.in_fp32():
                        assert all(m.weight.dtype == torch.float32 for m in frozen.linears)
                    assert all(m.weight.dtype == torch.bfloat16 for m in frozen.linears)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = rec.loss(tokens, labels)
                loss.backward()
            results.append((loss.detach(), {n: p.grad.clone() for n, p in rec.named_parameters()
                                            if p.requires_grad and p.grad is not None}))
    finally:
        rec.zero_grad()
        rec.eval()
    (plain, g_plain), (held, g_held) = results
    assert torch.equal(plain, held)
    assert g_plain.keys() == g_held.keys() and g_plain
    for name in g_plain:
        assert torch.equal(g_plain[name], g_held[name]), name
    for m, (pointer, weight) in zip(frozen.linears, originals, strict=True):
        assert m.weight.dtype == torch.float32 and m.weight.data_ptr() == pointer and torch.equal(m.weight, weight)
    assert FrozenLinearsInBf16(rec.llm, enabled=False).linears == []


def _hold_in_fresh_process(env_extra: dict[str, str]) -> str:
    code = "from sugar.training.allocator import hold_freed_memory; print(hold_freed_memory())"
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not on_glibc(), reason="glibc only")
def test_freed_memory_is_held_on_glibc_unless_opted_out() -> None:
    assert _hold_in_fresh_process({}) == "True"
    assert _hold_in_fresh_process({"SUGAR_SYSTEM_MALLOC": "1"}) == "False"


def test_label_smoothing_reaches_the_answer_loss(rec) -> None:
    """TuneConfig.label_smoothing moves the loss as cross-entropy's smoothing does: linear in its share."""
    tokens, labels = _tokens(2, seed=4), [1, 6]
    cfg = rec.cfg
    losses = {}
    try:
        with torch.no_grad():
            for eps in (0.0, 0.1, 0.3):
                rec.cfg = dataclasses.replace(cfg, label_smoothing=eps)
                losses[eps] = float(rec.loss(tokens, labels))
    finally:
        rec.cfg = cfg
    assert losses[0.1] != pytest.approx(losses[0.0], abs=1e-4)
    uniform = (losses[0.1] - 0.9 * losses[0.0]) / 0.1  # mean -log p over the vocabulary
    assert losses[0.3] == pytest.approx(0.7 * losses[0.0] + 0.3 * uniform, rel=1e-4)
