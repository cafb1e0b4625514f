"""Cached decoding on a causal LM: KV-cache copies, likelihood ranking of a candidate list, greedy generation.

Everything here works on a "context": the model's DynamicCache after [prefix][action tokens][suffix] for a batch
of N samples, the 2-D attention mask of that context [N, Lc] and the logits of its last position [N, V].
Masked (padding) positions inside the context take no position id: a token's position is the number of real
tokens before it, so a sample's result does not depend on the samples it is batched with.

Ranking scores C candidates per sample in ONE forward pass: the candidates' token sequences are merged into a
prefix tree (candidates that share leading tokens share nodes), the tree's nodes are laid out as one sequence
per sample, and a 4-D attention mask lets each node see the context and its own ancestors only (tree attention).
A 10-class list thus costs one pass over ~(total distinct candidate prefixes) tokens per sample instead of C
separate passes. Where the prompt prefix is cached, the tree's nodes even ride in the same pass as the end of the
context (`context_and_tree`), so ranking is one forward per batch, and the rows attend to the prefix held once
(`sugar.models.shared_prefix`) instead of a copy of it each.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache

from sugar.models import shared_prefix


def _cache_kw(model: nn.Module) -> str:
    """transformers 5.x calls the cache argument `cache`; older versions `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def run_cached(model: nn.Module, cache, **kwargs):
    """model(**kwargs) on top of `cache` (None = no past); returns (output, the cache after this call)."""
    if cache is not None:
        kwargs[_cache_kw(model)] = cache
    out = model(use_cache=True, **kwargs)
    new = getattr(out, "cache", None)
    return out, new if new is not None else out.past_key_values


def clone_cache(cache, index: torch.Tensor | None = None, length: int | None = None):
    """A new DynamicCache over the same tensors (batch rows `index`, the first `length` positions; views where
    possible), so forwards on it leave `cache` untouched."""
    layers = []
    for layer in cache.layers:
        k, v = layer.keys, layer.values
        if index is not None:
            k, v = k[index], v[index]
        if length is not None:
            k, v = k[:, :, :length], v[:, :, :length]
        layers.append((k, v))
    return DynamicCache(ddp_cache_data=layers)


def expand_cache(cache, batch: int):
    """Broadcast a batch-1 cache (the shared prompt prefix) to `batch` rows without copying."""
    return DynamicCache(ddp_cache_data=[(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
                                        for layer in cache.layers])


@dataclass(frozen=True)
class CandidateTree:
    """A prefix tree over candidate token sequences, flattened for tree attention."""

    first: torch.Tensor  # [C] first token of each candidate (scored from the context's last logits)
    lengths: torch.Tensor  # [C] token count of each whole candidate: the normaliser of its summed log-likelihood
    node_tokens: torch.Tensor  # [U] input token of each node (a candidate's j-th token, j < len - 1)
    node_depth: torch.Tensor  # [U] position offset after the context
    visible: torch.Tensor  # [U, U] bool: node u may attend to node v (v is an ancestor of u or u itself)
    pairs: torch.Tensor  # [P, 3] (candidate, node, target token): node's output predicts target for candidate

    @classmethod
    def build(cls, candidates: Sequence[Sequence[int]], separating: bool = False) -> CandidateTree:
        """The tree of `candidates`; `separating` cuts each one after its first token that no other candidate
        shares at that place (its shortest unique prefix), so scoring stops where the list is told apart.

        Separating scores are still divided by the whole candidate's length: the tokens after the separating one
        are near-certain continuations (log-probability ~0), so the scores keep the full ranking's scale and a
        fusion weight calibrated on full ranking stays valid (dividing by the scored count made the LLM's
        softmax sharper and cost the fused NW-UCLA recogniser 2.9 points on val)."""
        if any(len(c) == 0 for c in candidates):
            raise ValueError("a candidate has no tokens")
        full = [len(c) for c in candidates]
        if separating:
            candidates = [cand[:separating_length(cand, candidates)] for cand in candidates]
        nodes: dict[tuple[int, ...], int] = {}
        parents: list[int] = []
        tokens: list[int] = []
        depth: list[int] = []
        pairs: list[tuple[int, int, int]] = []
        for ci, cand in enumerate(candidates):
            for j in range(1, len(cand)):
                key = tuple(cand[:j])
                if key not in nodes:
                    nodes[key] = len(tokens)
                    parents.append(nodes[key[:-1]] if j > 1 else -1)
                    tokens.append(cand[j - 1])
                    depth.append(j - 1)
                pairs.append((ci, nodes[key], cand[j]))
        u = len(tokens)
        visible = torch.zeros(u, u, dtype=torch.bool)
        for i in range(u):
            a = i
            while a >= 0:
                visible[i, a] = True
                a = parents[a]
        return cls(torch.tensor([c[0] for c in candidates]), torch.tensor(full),
                   torch.tensor(tokens, dtype=torch.long), torch.tensor(depth, dtype=torch.long), visible,
                   torch.tensor(pairs, dtype=torch.long).reshape(-1, 3))


def separating_length(cand: Sequence[int], candidates: Sequence[Sequence[int]]) -> int:
    """Tokens of `cand` up to and including the first one that no other candidate shares at that place (all of
    them when another candidate starts with the whole of `cand`)."""
    others = [tuple(c) for c in candidates if tuple(c) != tuple(cand)]
    for j in range(1, len(cand) + 1):
        head = tuple(cand[:j])
        if not any(o[:j] == head for o in others):
            return j
    return len(cand)


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill(~mask, torch.finfo(dtype).min)


LOGITS_BUDGET_BYTES = 256 * 2**20  # vocabulary logits held at once while ranking (rows are chunked to fit)


def tree_scores(first_logits: torch.Tensor, node_logits: torch.Tensor | None, tree: CandidateTree) -> torch.Tensor:
    """Length-normalised log-likelihood [N, C] of every candidate from the logits after the context [N, V] and
    at the tree's nodes [N, U, V] (None when the tree has no nodes)."""
    device = first_logits.device
    total = torch.log_softmax(first_logits.float(), -1)[:, tree.first.to(device)]  # [N, C]
    if node_logits is not None and tree.node_tokens.numel():
        cand, node, target = tree.pairs.to(device).unbind(1)
        logp = torch.log_softmax(node_logits.float(), -1)  # [N, U, V]
        total = total.index_add(1, cand, logp[:, node, target])
    return total / tree.lengths.to(device=device, dtype=total.dtype)


def _tree_rows(tree: CandidateTree, context_mask: torch.Tensor, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """What each tree node sees ([k, U, Lc + U] bool: the context's real tokens and its ancestors) and the
    nodes' position ids [k, U] after a context with mask `context_mask` [k, Lc]."""
    k, lc = context_mask.shape
    u = tree.node_tokens.numel()
    visible = torch.cat([context_mask.bool()[:, None, :].expand(k, u, lc),
                         tree.visible.to(device)[None].expand(k, u, u)], dim=2)
    positions = context_mask.long().sum(1, keepdim=True) + tree.node_depth.to(device)[None]
    return visible, positions


def rows_within_budget(positions: int, vocab: int, budget_bytes: int = LOGITS_BUDGET_BYTES) -> int:
    """How many rows' vocabulary logits at `positions` positions each (fp32, plus their log-softmax) fit."""
    return budget_bytes // (2 * max(1, positions) * vocab * 4)


def tree_fits_one_pass(rows: int, tree: CandidateTree, vocab: int, budget_bytes: int = LOGITS_BUDGET_BYTES) -> bool:
    """Whether the vocabulary logits of every row's tree nodes (and its last context position) fit `budget_bytes`."""
    return rows_within_budget(tree.node_tokens.numel() + 1, vocab, budget_bytes) >= rows


@torch.no_grad()
def context_and_tree(model: nn.Module, prefix, inputs_embeds: torch.Tensor, context_mask: torch.Tensor,
                     position_ids: torch.Tensor, tree: CandidateTree, keep_cache: bool = True):
    """The end of the context and the candidate tree in ONE forward on top of `prefix` (the batch-1 cache of the
    context's first Lc - S positions, the shared prompt prefix): the S context tokens attend causally to the real
    context tokens, the tree's nodes to the whole context and their ancestors (tree attention). The rows attend
    to the prefix held once (sugar.models.shared_prefix) where the model's attention allows, else to a copy.

    Returns (the cache after the context only, or None unless `keep_cache`; the logits of its last position
    [N, V]; the candidate scores [N, C]). Against `context` + `rank_candidates` it saves one pass and, with the
    shared prefix, every copy of the prefix's keys and values.
    """
    n, s, _ = inputs_embeds.shape
    lc = context_mask.shape[1]
    device = inputs_embeds.device
    u = tree.node_tokens.numel()
    nodes = model.get_input_embeddings()(tree.node_tokens.to(device))[None].expand(n, -1, -1)
    past = lc - s
    causal = torch.arange(lc, device=device)[None, :] <= (past + torch.arange(s, device=device))[:, None]  # [S, Lc]
    context_rows = torch.cat([context_mask.bool()[:, None, :] & causal[None],
                              torch.zeros(n, s, u, dtype=torch.bool, device=device)], dim=2)
    node_rows, node_positions = _tree_rows(tree, context_mask, device)
    inputs = {"inputs_embeds": torch.cat([inputs_embeds.to(nodes.dtype), nodes], 1),
              "attention_mask": _additive(torch.cat([context_rows, node_rows], 1)[:, None], nodes.dtype),
              "position_ids": torch.cat([position_ids, node_positions], 1), "logits_to_keep": u + 1}
    if shared_prefix.enable(model):
        held = shared_prefix.layers(prefix)
        out, rows = run_cached(model, None, shared_prefix=held, **inputs)  # rows: the batch's own keys and values
        cache = shared_prefix.joined_cache(held, rows, s) if keep_cache else None
    else:
        out, after = run_cached(model, expand_cache(prefix, n), **inputs)
        cache = clone_cache(after, length=lc) if keep_cache else None
    last, node_logits = out.logits[:, 0], out.logits[:, 1:]
    return cache, last, tree_scores(last, node_logits, tree)


@torch.no_grad()
def rank_candidates(model: nn.Module, cache, context_mask: torch.Tensor, last_logits: torch.Tensor,
                    tree: CandidateTree, budget_bytes: int = LOGITS_BUDGET_BYTES) -> torch.Tensor:
    """Length-normalised log-likelihood [N, C] of every candidate after the context, in one forward pass per
    chunk of rows; chunks keep the [rows, nodes, vocabulary] logits under `budget_bytes` (long candidates, such
    as whole answers, would otherwise hold gigabytes)."""
    n = context_mask.shape[0]
    device = last_logits.device
    u = tree.node_tokens.numel()
    if not u:
        return tree_scores(last_logits, None, tree)
    nodes = model.get_input_embeddings()(tree.node_tokens.to(device))[None]  # [1, U, D]
    rows = max(1, rows_within_budget(u, last_logits.shape[-1], budget_bytes))
    chunks = []
    for start in range(0, n, rows):
        idx = torch.arange(start, min(n, start + rows), device=device)
        visible, positions = _tree_rows(tree, context_mask[idx], device)
        sub = clone_cache(cache, idx if idx.numel() < n else None)
        out, _ = run_cached(model, sub, inputs_embeds=nodes.expand(idx.numel(), -1, -1),
                            attention_mask=_additive(visible[:, None], nodes.dtype), position_ids=positions)
        chunks.append(tree_scores(last_logits[idx], out.logits, tree))
        del out
    return torch.cat(chunks)


@torch.no_grad()
def greedy_continue(model: nn.Module, cache, context_mask: torch.Tensor, last_logits: torch.Tensor,
                    max_new_tokens: int, stop_ids: Sequence[int], forced: Sequence[Sequence[int]] | None = None,
                    ) -> tuple[list[list[int]], list[float]]:
    """Greedy tokens after the context (after `forced` tokens per row, when given) until a stop id.

    Returns the generated ids per row (stop id excluded) and the mean log-probability of those tokens.
    The context cache is not modified.
    """
    n, _lc = context_mask.shape
    device = last_logits.device
    cache = clone_cache(cache)
    mask = context_mask.long()
    logits = last_logits
    next_pos = context_mask.long().sum(1)  # positions count real tokens only (padding inside the context)
    if forced is not None and any(len(f) for f in forced):
        width = max(len(f) for f in forced)
        ids = torch.zeros(n, width, dtype=torch.long, device=device)
        fmask = torch.zeros(n, width, dtype=torch.long, device=device)
        pos = next_pos[:, None].repeat(1, width)
        for i, f in enumerate(forced):  # left-padded inside the chunk, so each row's last column is real
            if f:
                ids[i, width - len(f):] = torch.tensor(list(f), device=device)
                fmask[i, width - len(f):] = 1
                pos[i, width - len(f):] = next_pos[i] + torch.arange(len(f), device=device)
        mask = torch.cat([mask, fmask], 1)
        out, cache = run_cached(model, cache, input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
        logits = out.logits[:, -1]
        next_pos = next_pos + torch.tensor([len(f) for f in forced], device=device)
    stop = torch.tensor(sorted(set(stop_ids)), device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    generated: list[list[int]] = [[] for _ in range(n)]
    logprob = torch.zeros(n, device=device)
    for _ in range(max_new_tokens):
        lp = torch.log_softmax(logits.float(), -1)
        tok = lp.argmax(-1)
        hit = torch.isin(tok, stop) if stop.numel() else torch.zeros_like(done)
        for i in torch.nonzero(~done & ~hit).flatten().tolist():
            generated[i].append(int(tok[i]))
            logprob[i] += lp[i, tok[i]]
        done |= hit
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones(n, 1, dtype=torch.long, device=device)], 1)
        out, cache = run_cached(model, cache, input_ids=tok[:, None], attention_mask=mask,
                                position_ids=next_pos[:, None])
        logits = out.logits[:, -1]
        next_pos = next_pos + 1
    means = [float(logprob[i]) / max(1, len(g)) for i, g in enumerate(generated)]
    return generated, means


class PrefixCache:
    """KV caches of prompt prefixes, one per prompt (its token ids), the oldest dropped past `size`."""

    def __init__(self, size: int = 8):
        self.size = size
        self._caches: dict[Any, Any] = {}

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self._caches:
            if len(self._caches) >= self.size:
                self._caches.pop(next(iter(self._caches)))
            self._caches[key] = compute()
        return self._caches[key]

    def clear(self) -> None:
        self._caches.clear()
