"""How a recogniser answers: the prompt context (with its cached prefix), rank and generate decoding.

- rank (default): every list entry is scored by the LLM's length-normalised log-likelihood of "{label}." as
  the answer, for all entries in one batched pass (sugar.models.decoding); gives top-k, never answers off list.
- generate (the paper): greedy answer, label parsed out of it and matched to the list
  (sugar.models.matching); label None with "match": "none" when no entry fits.

The prompt prefix (chat preamble + instruction + action list) is identical for every sample of one list; its
KV cache is computed once per list and broadcast to each batch (`Recognizer.use_prefix_cache`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from sugar.errors import ConfigError, SugarError
from sugar.models import decoding
from sugar.models.evidence import fuse, with_bonus
from sugar.models.list_prior import applies, corrected, mean_log_prior
from sugar.models.matching import match_label
from sugar.models.prompt import PromptParts, candidate_ids
from sugar.models.sentences import whole_sentence
from sugar.skeleton.sample import Sample

if TYPE_CHECKING:  # the recogniser calls into this module; this module only reads its parts
    from sugar.models.recognizer import Recognizer

RANK_BY = ("label", "answer")
Context = tuple[Any, torch.Tensor, torch.Tensor]  # (KV cache or None, 2-D attention mask, logits of the last position)


def check_rank_by(value: str | None, name: str = "rank_by") -> str | None:
    """`value` if it is a known rank_by (or None); else a ConfigError naming the option."""
    if value is not None and value not in RANK_BY:
        raise ConfigError(f"{name} {value!r}: choose one of {', '.join(RANK_BY)}")
    return value


def descriptions_from(knowledge: Any) -> dict[str, str]:
    """label -> description from a Knowledge object, a {label: description} mapping, or None."""
    if knowledge is None:
        return {}
    if isinstance(knowledge, Mapping):
        return {str(k): str(v) for k, v in knowledge.items()}
    classes = getattr(knowledge, "classes", None)
    if classes is None:
        raise ConfigError(f"knowledge must be a Knowledge object or a label->description mapping, got "
                          f"{type(knowledge).__name__}")
    return {c.label: c.description for c in classes}


@torch.no_grad()
def context(rec: Recognizer, embeds: torch.Tensor, amask: torch.Tensor, parts: PromptParts) -> Context:
    """Run [prefix][action tokens][suffix] for a batch: (cache, 2-D mask, logits of the last position)."""
    return ranked_context(rec, embeds, amask, parts)[0]


@torch.no_grad()
def ranked_context(rec: Recognizer, embeds: torch.Tensor, amask: torch.Tensor, parts: PromptParts,
                   tree: decoding.CandidateTree | None = None, keep_cache: bool = True
                   ) -> tuple[Context, torch.Tensor | None]:
    """`context`, and given `tree`, the candidates' scores [N, C] from the same forward pass where the prompt
    prefix is cached and the tree's logits fit the budget (else None: score them with rank_candidates). With the
    scores, the context's cache is None unless `keep_cache` (only generating text after the context needs it)."""
    n, device = embeds.shape[0], rec.device
    embed = rec.llm.get_input_embeddings()
    suffix = embed(torch.tensor(parts.suffix_ids, device=device))[None].expand(n, -1, -1)
    x = torch.cat([embeds.to(suffix.dtype), suffix], 1)
    p = len(parts.prefix_ids)
    mask = torch.cat([torch.ones(n, p, dtype=torch.long, device=device), amask.long(),
                      torch.ones(n, len(parts.suffix_ids), dtype=torch.long, device=device)], 1)
    positions = mask.cumsum(1) - 1  # padded action tokens take no position
    if not rec.use_prefix_cache:
        prefix = embed(torch.tensor(parts.prefix_ids, device=device))[None].expand(n, -1, -1)
        out, cache = decoding.run_cached(rec.llm, None, inputs_embeds=torch.cat([prefix, x], 1),
                                         attention_mask=mask, position_ids=positions, logits_to_keep=1)
        return (cache, mask, out.logits[:, -1]), None

    def compute() -> Any:
        ids = torch.tensor([parts.prefix_ids], device=device)
        return decoding.run_cached(rec.llm, None, input_ids=ids, logits_to_keep=1)[1]

    prefix_cache = rec.prefix_cache.get(parts.prefix_ids, compute)  # the exact prompt: list, glosses, instruction
    if tree is not None and decoding.tree_fits_one_pass(n, tree, embed.num_embeddings):
        cache, last, scores = decoding.context_and_tree(rec.llm, prefix_cache, x, mask, positions[:, p:], tree,
                                                        keep_cache)
        return (cache, mask, last), scores
    out, cache = decoding.run_cached(rec.llm, decoding.expand_cache(prefix_cache, n), inputs_embeds=x,
                                     attention_mask=mask,
                                     position_ids=positions[:, p:], logits_to_keep=1)
    return (cache, mask, out.logits[:, -1]), None


def _stop_ids(rec: Recognizer, parts: PromptParts) -> list[int]:
    stops = list(parts.end_ids[:1])
    if rec.tokenizer.eos_token_id is not None:
        stops.append(rec.tokenizer.eos_token_id)
    return stops


def rank(rec: Recognizer, ctx: Context, parts: PromptParts, tree: decoding.CandidateTree, actions: list[str],
         describe: bool, top_k: int, text_logits: torch.Tensor | None = None, weight: float = 0.0,
         scores: torch.Tensor | None = None, bonus: list[float] | None = None,
         ce_logits: torch.Tensor | None = None, ce_weight: float = 0.0,
         log_prior: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """Score every list entry (the LLM's list prior divided out when `log_prior` is given; fused with the text
    head's and the classifier's logits when given; `scores`: already computed with the context; `bonus`: added to
    each entry's fused log-probability); the best one's description is generated after its forced label."""
    cache, mask, last = ctx
    if scores is None:
        scores = decoding.rank_candidates(rec.llm, cache, mask, last, tree)  # [N, C]
    llm = scores if log_prior is None else corrected(scores, log_prior)
    logp = fuse(llm, text_logits, weight, ce_logits, ce_weight)
    probs = (logp if bonus is None else with_bonus(logp, bonus)).exp().float().to(scores.device)
    order = probs.argsort(-1, descending=True)[:, :top_k]
    best = order[:, 0].tolist()
    descriptions: list[str | None] = [None] * len(best)
    if describe:
        forced = [candidate_ids(rec.tokenizer, actions[b]) for b in best]
        budget = rec.cfg.max_description_tokens
        ids, _ = decoding.greedy_continue(rec.llm, cache, mask, last, budget, _stop_ids(rec, parts), forced=forced)
        # an LLM that stops at once (little training) falls back to the knowledge it was trained to write
        descriptions = [whole_sentence(rec.tokenizer.decode(t, skip_special_tokens=True), len(t) >= budget)
                        or whole_sentence(rec.descriptions.get(actions[b], ""), False)
                        for t, b in zip(ids, best, strict=True)]
    out = []
    for i, b in enumerate(best):
        top = [(actions[j], float(probs[i, j])) for j in order[i].tolist()]
        out.append({"label": actions[b], "score": float(probs[i, b]), "top5": top, "description": descriptions[i],
                    "match": "rank", "loglik": float(scores[i, b])})
    return out


def generate(rec: Recognizer, ctx: Context, parts: PromptParts, actions: list[str]) -> list[dict[str, Any]]:
    """Greedy answers, each matched to the list (the paper's decoding)."""
    cache, mask, last = ctx
    budget = rec.cfg.max_answer_tokens + rec.cfg.max_description_tokens
    ids, mean_lp = decoding.greedy_continue(rec.llm, cache, mask, last, budget, _stop_ids(rec, parts))
    out = []
    for t, lp in zip(ids, mean_lp, strict=True):
        answer = rec.tokenizer.decode(t, skip_special_tokens=True).strip()
        m = match_label(answer, actions)
        score = math.exp(lp) if m.label is not None else 0.0
        description = whole_sentence(m.description, len(t) >= budget) if m.description else m.description
        out.append({"label": m.label, "score": score, "top5": [(m.label, score)] if m.label else [],
                    "description": description, "match": m.match, "similarity": m.similarity, "answer": answer})
    return out


@torch.no_grad()
def recognize(rec: Recognizer, samples: Sequence[Sample | torch.Tensor], actions: Sequence[str] | None = None,
              knowledge: Any = None, mode: str | None = None, batch_size: int | None = None, describe: bool = True,
              top_k: int = 5, zero_shot_prompt: bool | None = None, rank_by: str | None = None,
              fusion: float | None = None, list_prior: bool | None = None, batch_prior: bool = False
              ) -> list[dict[str, Any]]:
    """One result per sample (see `Recognizer.recognize`)."""
    mode = mode or rec.cfg.decode
    actions = list(actions) if actions is not None else list(rec.actions)
    if len(actions) < 1 or len(set(actions)) != len(actions):
        raise ConfigError("the action list must be non-empty and without duplicates")
    if batch_prior:
        return _with_batch_prior(rec, samples, actions, knowledge, mode, batch_size, describe, top_k,
                                 zero_shot_prompt, rank_by, fusion, list_prior)
    return _recognize(rec, samples, actions, knowledge, mode, batch_size, describe, top_k, zero_shot_prompt,
                      rank_by, fusion, list_prior)


def _recognize(rec: Recognizer, samples: Sequence[Sample | torch.Tensor], actions: list[str], knowledge: Any,
               mode: str, batch_size: int | None, describe: bool, top_k: int, zero_shot_prompt: bool | None,
               rank_by: str | None, fusion: float | None, list_prior: bool | None,
               shift: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """`recognize` on a checked list; `shift`: added to each entry's fused log-probability (the batch prior)."""
    weight, ce_weight = rec.fusion_weights(actions, fusion)
    if weight > 0 and rec.evidence is None:
        raise ConfigError("fusion needs the encoder's text head; this recogniser has none (see `sugar calibrate`)")
    if mode != "rank":
        weight = ce_weight = 0.0
    if mode not in ("rank", "generate"):
        raise ConfigError(f"mode {mode!r}: choose rank or generate")
    rank_by = check_rank_by(rank_by or rec.cfg.rank_by)
    stacked = new_class_bonus(rec, actions) if fusion is None and mode == "rank" else None
    bonus = stacked
    if shift is not None:
        bonus = [b + d for b, d in zip(stacked or [0.0] * len(actions), shift, strict=True)]
    if list_prior and rec.list_prior is None:
        raise ConfigError("this recogniser stores no reference samples for its list prior (it was tuned before "
                          "they were stored): `sugar list-prior RECOGNISER` draws them from the training data its "
                          "encoder records (`sugar calibrate RUN` also adds them to a tuned run)")
    refs = {**rec.descriptions, **descriptions_from(knowledge)}
    parts, tree = list_question(rec, actions, refs, rank_by, zero_shot_prompt)
    log_prior = (list_log_prior(rec, parts, tree)
                 if mode == "rank" and applies(rec.actions, actions, list_prior) else None)
    was_training = rec.training
    rec.eval()
    results: list[dict[str, Any]] = []
    step = batch_size or rec.cfg.eval_batch_size
    try:
        for start in range(0, len(samples), step):
            chunk = samples[start:start + step]
            if all(isinstance(s, Sample) for s in chunk):
                tokens = rec.encode(chunk)  # type: ignore[arg-type]
            elif all(isinstance(s, torch.Tensor) for s in chunk):
                tokens = list(chunk)  # type: ignore[arg-type]
            else:
                raise SugarError("recognize() takes Sample objects or token tensors [T', d], not a mix")
            embeds, amask = rec.action_tokens(tokens)
            ctx, scores = ranked_context(rec, embeds, amask, parts, tree if mode == "rank" else None,
                                         keep_cache=describe)
            if mode == "rank":
                text = rec.evidence.logits(tokens, actions, knowledge) if weight > 0 and rec.evidence else None
                ce = rec.classifier.logits(tokens, actions) if ce_weight > 0 and rec.classifier else None
                results += rank(rec, ctx, parts, tree, actions, describe, top_k, text, weight, scores, bonus, ce,
                                ce_weight, log_prior)
            else:
                results += generate(rec, ctx, parts, actions)
    finally:
        rec.train(was_training)
    for r in results:
        r["knowledge"] = refs.get(r["label"]) if r["label"] is not None else None
        if mode == "rank":
            r["fusion"] = weight
            if ce_weight > 0:
                r["fusion_ce"] = ce_weight
            if stacked is not None:
                r["new_class_bias"] = rec.new_class_bias
            if log_prior is not None:
                r["list_prior"] = True
    return results


def _with_batch_prior(rec: Recognizer, samples: Sequence[Sample | torch.Tensor], actions: list[str], knowledge: Any,
                      mode: str, batch_size: int | None, describe: bool, top_k: int, zero_shot_prompt: bool | None,
                      rank_by: str | None, fusion: float | None, list_prior: bool | None) -> list[dict[str, Any]]:
    """`recognize` with the samples' own mean answer divided out of the ranking (sugar.models.list_prior,
    `batch_corrected`): a first pass ranks every entry for every sample, a second answers (and describes) with that
    mean taken off each entry as a bonus. Why two passes: the descriptions follow the corrected label."""
    if mode != "rank":
        raise ConfigError("the batch prior corrects a ranking: use it with mode rank")
    if len(samples) < 2:
        raise ConfigError("the batch prior is the mean answer of the samples given together: it needs at least 2 "
                          "(and a set that covers the list roughly evenly)")
    first = _recognize(rec, samples, actions, knowledge, mode, batch_size, False, len(actions), zero_shot_prompt,
                       rank_by, fusion, list_prior)
    probs = torch.zeros(len(first), len(actions), dtype=torch.float64)
    for row, r in enumerate(first):
        for label, p in r["top5"]:
            probs[row, actions.index(label)] = p
    shift = (-mean_log_prior(torch.log(probs.clamp_min(1e-30)))).tolist()
    results = _recognize(rec, samples, actions, knowledge, mode, batch_size, describe, top_k, zero_shot_prompt,
                         rank_by, fusion, list_prior, shift)
    for r in results:
        r["batch_prior"] = True
    return results


def list_question(rec: Recognizer, actions: Sequence[str], refs: Mapping[str, str], rank_by: str | None,
                  zero_shot: bool | None = None) -> tuple[PromptParts, decoding.CandidateTree]:
    """The prompt for a list and the tree of its answers as ranking scores them (rank_by "answer": each entry
    with its description from `refs`)."""
    parts = rec.prompt(actions, zero_shot, refs)  # zero_shot None: the recogniser's setting
    tree = decoding.CandidateTree.build([
        candidate_ids(rec.tokenizer, a, refs.get(a) if rank_by == "answer" else None, rec.cfg.max_answer_tokens)
        for a in actions], separating=rec.rank_separating)
    return parts, tree


def list_log_prior_for(rec: Recognizer, actions: Sequence[str], knowledge: Any = None, rank_by: str | None = None
                       ) -> torch.Tensor | None:
    """`list_log_prior` of the list as `recognize` asks it (same descriptions, rank_by and prompt)."""
    refs = {**rec.descriptions, **descriptions_from(knowledge)}
    return list_log_prior(rec, *list_question(rec, actions, refs, check_rank_by(rank_by or rec.cfg.rank_by)))


@torch.no_grad()
def list_log_prior(rec: Recognizer, parts: PromptParts, tree: decoding.CandidateTree) -> torch.Tensor | None:
    """[C] the LLM's log prior over a list (sugar.models.list_prior): the log of its mean answer distribution for
    the recogniser's reference samples, computed once per prompt and answer tree; None without reference samples."""
    prior = rec.list_prior
    if prior is None:
        return None

    def compute() -> torch.Tensor:
        rows = []
        step = rec.cfg.eval_batch_size
        for start in range(0, len(prior), step):
            embeds = prior.embeds[start:start + step].to(rec.device)
            amask = prior.mask[start:start + step].to(rec.device)
            (cache, mask, last), scores = ranked_context(rec, embeds, amask, parts, tree, keep_cache=False)
            if scores is None:
                scores = decoding.rank_candidates(rec.llm, cache, mask, last, tree)
            rows.append(scores.float().cpu())
        return mean_log_prior(torch.cat(rows))

    key = (parts.prefix_ids, parts.suffix_ids, tuple(tree.first.tolist()), tuple(tree.lengths.tolist()),
           tuple(tree.node_tokens.tolist()), tuple(map(tuple, tree.pairs.tolist())))
    return rec.prior_cache.get(key, compute)


def new_class_bonus(rec: Recognizer, actions: Sequence[str]) -> list[float] | None:
    """The recogniser's never-seen-class bias for each list entry outside its tuning list (calibrated stacking,
    docs/recognizer.md), or None when it has no bias or the list holds no such entry."""
    tuned = set(rec.actions)
    if not rec.new_class_bias or all(a in tuned for a in actions):
        return None
    return [0.0 if a in tuned else rec.new_class_bias for a in actions]
