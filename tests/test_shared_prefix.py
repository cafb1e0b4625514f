"""Attention to a shared prompt prefix held once (sugar.models.shared_prefix) computes ordinary attention: the
same outputs as sdpa over the prefix copied into every row, and the same ranking scores and continuations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from stage3helpers import ACTIONS, random_tokens
from sugar.models import decoding, shared_prefix
from sugar.models.answering import ranked_context
from sugar.models.prompt import candidate_ids


@pytest.mark.parametrize("heads, kv_heads", [(6, 2), (4, 4)])
def test_attention_equals_sdpa_over_the_copied_prefix(heads, kv_heads) -> None:
    torch.manual_seed(0)
    n, p, q, own, d = 3, 7, 4, 5, 8
    module = SimpleNamespace(layer_idx=1, num_key_value_groups=heads // kv_heads, is_causal=True, training=False)
    query = torch.randn(n, heads, q, d)
    prefix = [(torch.randn(1, kv_heads, p, d), torch.randn(1, kv_heads, p, d)) for _ in range(2)]
    key, value = torch.randn(n, kv_heads, own, d), torch.randn(n, kv_heads, own, d)
    visible = torch.rand(n, 1, q, p + own) > 0.3
    visible[..., 0] = True  # every query sees something
    mask = torch.zeros(visible.shape).masked_fill(~visible, torch.finfo(torch.float32).min)
    held, _ = shared_prefix.attention(module, query, key, value, mask, scaling=d ** -0.5, shared_prefix=prefix)
    pk, pv = prefix[1]
    copied, _ = sdpa_attention_forward(module, query, torch.cat([pk.expand(n, -1, -1, -1), key], 2),
                                       torch.cat([pv.expand(n, -1, -1, -1), value], 2), mask, scaling=d ** -0.5)
    assert held.shape == copied.shape == (n, q, heads, d)
    assert torch.allclose(held, copied, atol=1e-5)


def test_other_attention_implementations_are_left_alone() -> None:
    model = SimpleNamespace(config=SimpleNamespace(_attn_implementation="eager"))
    assert not shared_prefix.enable(model)
    assert model.config._attn_implementation == "eager"


@torch.no_grad()
@pytest.mark.parametrize("separating", [False, True])
def test_ranking_on_the_held_prefix_equals_ranking_on_copies(rec, tok, monkeypatch, separating) -> None:
    parts = rec.prompt(ACTIONS)
    tree = decoding.CandidateTree.build([candidate_ids(tok, a) for a in ACTIONS], separating=separating)
    embeds, amask = rec.action_tokens(random_tokens(4, seed=7))
    amask = amask.clone()
    amask[2, -2:] = False  # a row with padded action tokens
    (cache, mask, last), held = ranked_context(rec, embeds, amask, parts, tree=tree)
    assert rec.llm.get_base_model().config._attn_implementation == shared_prefix.NAME
    (none, _, _), _ = ranked_context(rec, embeds, amask, parts, tree=tree, keep_cache=False)
    assert none is None
    monkeypatch.setattr(shared_prefix, "enable", lambda model: False)  # the copying path
    (cache_c, mask_c, last_c), copied = ranked_context(rec, embeds, amask, parts, tree=tree)
    assert torch.allclose(held, copied, atol=1e-5) and torch.allclose(last, last_c, atol=1e-5)
    assert cache.get_seq_length() == cache_c.get_seq_length()
    for a, b in zip(cache.layers, cache_c.layers, strict=True):
        assert torch.allclose(a.keys, b.keys, atol=1e-5) and torch.allclose(a.values, b.values, atol=1e-5)
    forced = [candidate_ids(tok, "throw")] * 4
    assert (decoding.greedy_continue(rec.llm, cache, mask, last, 4, [], forced)[0]
            == decoding.greedy_continue(rec.llm, cache_c, mask_c, last_c, 4, [], forced)[0])
