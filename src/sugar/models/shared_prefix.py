"""Attention to a prompt prefix that every row of a batch shares, held once instead of copied into every row.

Ranking a batch puts the same ~80-token prompt prefix (chat preamble, instruction, action list) before each
sample's few own tokens. Broadcasting its batch-1 KV cache to the batch (`decoding.expand_cache`) still makes
the model copy it into every row: the cache append concatenates it with the row's new keys and values, and
grouped-query attention repeats them per head. Most of a ranking pass was those copies (docs/benchmarks.md).
Here the rows' queries attend to the prefix's keys in one matrix product per key/value head (all rows' queries
stacked) and to their own keys per row; one softmax over both key sets, so the result equals ordinary attention.

It is a transformers attention implementation (`AttentionInterface`, registered under NAME) that behaves like
"sdpa" unless a forward is given `shared_prefix=` (the prefix's per-layer keys and values), so training and
generation through the same model are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface, DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "sugar_shared_prefix"
PrefixLayers = Sequence[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, kv heads, P, head dim]


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
              shared_prefix: PrefixLayers | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query [N, H, Q, D] against the shared prefix's keys [1, Hkv, P, D] and the rows' own keys [N, Hkv, L, D];
    attention_mask: additive [N, 1, Q, P + L] (prefix columns first). Returns [N, Q, H, D] like sdpa."""
    if shared_prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    prefix_keys, prefix_values = shared_prefix[module.layer_idx]
    n, heads, q, d = query.shape
    kv_heads, p = prefix_keys.shape[1], prefix_keys.shape[2]
    group = heads // kv_heads  # query heads per key/value head (grouped-query attention)
    grouped = query.reshape(n, kv_heads, group * q, d)
    stacked = grouped.transpose(0, 1).reshape(kv_heads, n * group * q, d)  # every row's queries, per kv head
    to_prefix = (stacked @ prefix_keys[0].transpose(1, 2)).reshape(kv_heads, n, group * q, p).transpose(0, 1)
    to_own = grouped @ key.transpose(2, 3)  # [N, Hkv, G*Q, L]
    logits = torch.cat([to_prefix, to_own], -1).mul_(scaling).reshape(n, kv_heads, group, q, -1)
    if attention_mask is not None:
        logits = logits + attention_mask[:, :, None]
    weights = torch.softmax(logits, -1, dtype=torch.float32).to(query.dtype).reshape(n, kv_heads, group * q, -1)
    if dropout:  # the caller passes 0 outside training
        weights = nn.functional.dropout(weights, p=dropout)
    from_prefix = weights[..., :p].transpose(0, 1).reshape(kv_heads, n * group * q, p) @ prefix_values[0]
    out = from_prefix.reshape(kv_heads, n, group * q, d).transpose(0, 1) + weights[..., p:] @ value
    return out.reshape(n, heads, q, d).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, attention)
AttentionMaskInterface.register(NAME, sdpa_mask)  # masks are built as for sdpa, which it falls back to


def _base(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def enable(model: nn.Module) -> bool:
    """Switch `model` from sdpa to this implementation (it falls back to sdpa); True when it now uses it.
    Models on another implementation (eager, flash) are left alone and keep copying the prefix."""
    base = _base(model)
    current = getattr(base.config, "_attn_implementation", None)
    if current == "sdpa":
        base.set_attn_implementation(NAME)
        current = NAME
    return current == NAME


def layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The per-layer keys and values of a batch-1 prefix cache, as `attention` reads them."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def joined_cache(prefix: PrefixLayers, rows: Any, length: int) -> DynamicCache:
    """An ordinary cache of [prefix][the rows' first `length` tokens] for every row (this copies the prefix into
    each row; only continuations that generate text need it)."""
    data = []
    for (pk, pv), layer in zip(prefix, rows.layers, strict=True):
        n = layer.keys.shape[0]
        data.append((torch.cat([pk.expand(n, -1, -1, -1), layer.keys[:, :, :length]], 2),
                     torch.cat([pv.expand(n, -1, -1, -1), layer.values[:, :, :length]], 2)))
    return DynamicCache(ddp_cache_data=data)
