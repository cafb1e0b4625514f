"""A second opinion for the recogniser: the stage-2 encoder's text head, fused with the LLM's ranking.

Why: with a 135M LLM and CPU budgets the LLM reads the frozen encoder's tokens less well than the stage-2 text
head does (docs/RESULTS.md), and the two are evidence about the same sample from different models. The
recogniser therefore ranks a list by a convex mix of the two log-probabilities over the list,

    log p(c) ∝ (1 - w) · log_softmax(LLM score)_c + w · log_softmax(text-head logit)_c,

w chosen on the validation split (`choose_weight`, by sugar.training.instruct / `sugar calibrate`) and saved
with the recogniser. w = 0 is the LLM alone, w = 1 the text head alone. The text head is stage 2's: mean of
the encoder tokens, a linear map into the text space, then the encoder's own scoring rule (`text_score`,
sugar.models.text_scoring): cosine to each class's text prototype (the normalised mean of its knowledge embeddings
and its name), or the log-mean-exp over its texts ("mil"), times the learnt MIL-NCE scale. It scores any list
whose classes have knowledge texts, or at least names.

The encoder's CE classifier (`ClassifierEvidence`) can be a third opinion on lists of the classes it was trained on:

    log p(c) ∝ (1 - w - v) · log_softmax(LLM)_c + w · log_softmax(text)_c + v · log_softmax(CE)_c,

(w, v) chosen together on validation over the simplex (`choose_weights`). On a list with a class the classifier
never learnt, v is dropped and w rescaled to w / (1 - v), so the LLM and the text head keep their proportion.
An encoder trained with the classifier alone (loss: ce, CTR-GCN's own objective) has no text head: w = 0 and only
v is chosen; on lists it cannot score the LLM ranks alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sugar.errors import ConfigError
from sugar.models.text import embed_knowledge, get_text_encoder, label_texts
from sugar.models.text_scoring import TextScorer, check_text_score

WEIGHT_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # candidate fusion weights, 0 (LLM) .. 1 (text head)


def mean_tokens(tokens: Sequence[torch.Tensor] | torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """Token sequences ([T_i, d] each, or [N, T', d]) -> their means [N, d] on `linear`'s device and dtype: the input
    of both stage-2 heads."""
    pooled = (tokens.mean(1) if isinstance(tokens, torch.Tensor) and tokens.dim() == 3
              else torch.stack([t.float().mean(0) for t in tokens]))
    return pooled.to(linear.weight.device, linear.weight.dtype)


class TextHead(nn.Module):
    """Stage 2's projection head without its training machinery: tokens -> unit vector in the text space."""

    def __init__(self, dim: int, text_dim: int, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(dim, text_dim)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, tokens: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Token sequences ([T_i, d] each, or [N, T', d]) -> normalised features [N, text_dim]."""
        return nn.functional.normalize(self.linear(mean_tokens(tokens, self.linear)), dim=-1)


class TextEvidence(nn.Module):
    """The text head plus the class texts it compares with, scored by the encoder's `text_score` rule.

    `texts` holds, for every class of the encoder's dataset (held-out ones included), its prototype ("prototype":
    one row per class) or all its text embeddings ("mil"; `owners` gives each row's class), so the usual lists
    need no text encoder at inference; classes outside it are embedded from the knowledge given with the list, or
    from their name alone.
    """

    def __init__(self, head: TextHead, labels: Sequence[str], texts: torch.Tensor, text_model: str,
                 use_motion: bool = True, use_visual: bool = True, text_score: str = "prototype",
                 owners: torch.Tensor | None = None):
        super().__init__()
        self.head = head
        self.labels = list(labels)
        self.text_score = check_text_score(text_score)
        if owners is None:
            if text_score != "prototype" or len(texts) != len(self.labels):
                raise ConfigError("text evidence: texts need their owner classes unless there is one per class")
            owners = torch.arange(len(self.labels))
        self.register_buffer("texts", texts.float())
        self.register_buffer("owners", owners.long())
        self.text_model = text_model
        self.use_motion = use_motion
        self.use_visual = use_visual
        self._memo: dict[tuple[str, ...], tuple[Any, TextScorer]] = {}  # last scorer per list

    def describe(self) -> dict[str, Any]:
        """What recognizer.json records about the head (the tensors live in a safetensors file)."""
        return {"labels": self.labels, "text_model": self.text_model, "use_motion": self.use_motion,
                "use_visual": self.use_visual, "dim": self.head.linear.in_features,
                "text_dim": self.head.linear.out_features, "text_score": self.text_score}

    @classmethod
    def from_saved(cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> TextEvidence:
        head = TextHead(int(meta["dim"]), int(meta["text_dim"]))
        head.load_state_dict({"linear.weight": tensors["linear.weight"], "linear.bias": tensors["linear.bias"],
                              "scale": tensors["scale"]})
        # recognisers saved before text_score existed stored one prototype per class under "prototypes"
        texts = tensors["texts"] if "texts" in tensors else tensors["prototypes"]
        return cls(head, meta["labels"], texts, str(meta["text_model"]), bool(meta.get("use_motion", True)),
                   bool(meta.get("use_visual", True)), str(meta.get("text_score", "prototype")),
                   tensors.get("owners"))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"linear.weight": self.head.linear.weight.detach(), "linear.bias": self.head.linear.bias.detach(),
                "scale": self.head.scale.detach(), "texts": self.texts.detach(), "owners": self.owners.detach()}

    def scorer_for(self, actions: Sequence[str], knowledge: Any = None) -> TextScorer:
        """The rule's scorer over `actions`: texts from `knowledge` (a Knowledge object) for the classes it has,
        else the stored ones, else the embedding of the class name."""
        key = tuple(actions)
        if key in self._memo and self._memo[key][0] is knowledge:
            return self._memo[key][1]
        out = self._scorer(actions, knowledge)
        self._memo[key] = (knowledge, out)
        return out

    def _scorer(self, actions: Sequence[str], knowledge: Any) -> TextScorer:
        rows: dict[str, torch.Tensor] = {}  # label -> its texts [n, D]
        if knowledge is not None and hasattr(knowledge, "classes") and not isinstance(knowledge, Mapping):
            have = [c.label for c in knowledge.classes if c.label in set(actions)]
            if have:
                emb = embed_knowledge(knowledge, self.text_model).subset(have)
                given = TextScorer.build(emb, self.text_score, self.use_motion, self.use_visual)
                rows.update({label: torch.from_numpy(given.texts[given.owners == i]) for i, label in enumerate(have)})
        index = {label: i for i, label in enumerate(self.labels)}
        for a in actions:
            if a not in rows and a in index:
                rows[a] = self.texts[self.owners == index[a]].cpu()
        missing = [a for a in actions if a not in rows]
        if missing:
            names = torch.from_numpy(get_text_encoder(self.text_model).encode(label_texts(missing)))
            rows.update({a: names[i:i + 1] for i, a in enumerate(missing)})
        texts = nn.functional.normalize(torch.cat([rows[a].float() for a in actions]), dim=-1)
        owners = np.concatenate([np.full(len(rows[a]), i) for i, a in enumerate(actions)])
        return TextScorer(texts.numpy(), owners, len(actions), self.text_score, float(self.head.scale))

    @torch.no_grad()
    def logits(self, tokens: Sequence[torch.Tensor] | torch.Tensor, actions: Sequence[str],
               knowledge: Any = None) -> torch.Tensor:
        """[N, C] text-head logits (the rule's score times the learnt scale) of each sample against each class."""
        features = self.head(tokens)
        scores = self.scorer_for(actions, knowledge)(features.float().cpu().numpy())
        return self.head.scale * torch.from_numpy(scores).to(features.device)


class ClassifierEvidence(nn.Module):
    """The encoder's stage-2 CE classifier (a linear map of the mean token onto the classes it was trained on).

    Why: on NW-UCLA and MSR Action3D the CE head is the strongest single closed-set scorer on test (docs/RESULTS.md,
    issue 15); fused with the LLM and the text head it is evidence the recogniser would otherwise throw away. It
    scores only lists of its own classes (`covers`): it knows nothing of new ones."""

    def __init__(self, dim: int, labels: Sequence[str]):
        super().__init__()
        self.labels = list(labels)
        self.linear = nn.Linear(dim, len(self.labels))
        self._index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_linear(cls, linear: nn.Linear, classes: Sequence[str], trained: Sequence[str]) -> ClassifierEvidence:
        """The rows of a stage-2 classifier over `classes` that belong to the `trained` ones (held-out classes'
        rows never saw a positive sample)."""
        rows = [i for i, c in enumerate(classes) if c in set(trained)]
        out = cls(linear.in_features, [classes[i] for i in rows])
        out.linear.load_state_dict({"weight": linear.weight.detach()[rows].clone(),
                                    "bias": linear.bias.detach()[rows].clone()})
        return out

    def covers(self, actions: Sequence[str]) -> bool:
        return all(a in self._index for a in actions)

    def describe(self) -> dict[str, Any]:
        """What recognizer.json records about the classifier (the tensors live in a safetensors file)."""
        return {"labels": self.labels, "dim": self.linear.in_features}

    @classmethod
    def from_saved(cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> ClassifierEvidence:
        out = cls(int(meta["dim"]), meta["labels"])
        out.linear.load_state_dict({"weight": tensors["weight"], "bias": tensors["bias"]})
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": self.linear.weight.detach(), "bias": self.linear.bias.detach()}

    @torch.no_grad()
    def logits(self, tokens: Sequence[torch.Tensor] | torch.Tensor, actions: Sequence[str]) -> torch.Tensor:
        """[N, C] CE logits of each sample for each listed class (the list must be `covers`ed)."""
        missing = [a for a in actions if a not in self._index]
        if missing:
            raise ConfigError(f"the encoder's classifier was not trained on {missing[:5]}")
        return self.linear(mean_tokens(tokens, self.linear))[:, [self._index[a] for a in actions]]


def fuse(llm_scores: torch.Tensor | np.ndarray, text_logits: torch.Tensor | np.ndarray | None,
         weight: float | Sequence[float] | torch.Tensor, ce_logits: torch.Tensor | np.ndarray | None = None,
         ce_weight: float = 0.0) -> torch.Tensor:
    """[N, C] log-probabilities over the list: (1 - w - v)·log_softmax(LLM) + w·log_softmax(text)
    + v·log_softmax(CE), renormalised.

    weight: the text head's w, one for every entry or one per list entry ([C], e.g. `open_list_weights`);
    ce_weight: the classifier's v (a single value; its logits must cover the whole list)."""
    llm = torch.log_softmax(torch.as_tensor(llm_scores, dtype=torch.float64), -1)
    w = torch.as_tensor(weight, dtype=torch.float64, device=llm.device)
    v = float(ce_weight) if ce_logits is not None else 0.0
    if bool(((w < 0.0) | (w > 1.0)).any()) or not 0.0 <= v <= 1.0 or bool((w + v > 1.0 + 1e-9).any()):
        raise ConfigError(f"fusion weights {weight} (text) and {ce_weight} (CE) must lie in [0, 1], summing to <= 1")
    if text_logits is None:
        w = torch.zeros_like(w)
    if bool((w <= 0.0).all()) and v <= 0.0:
        return llm
    mixed = (1.0 - w - v) * llm
    if text_logits is not None:
        mixed = mixed + w * torch.log_softmax(torch.as_tensor(text_logits, dtype=torch.float64, device=llm.device), -1)
    if v > 0.0:
        mixed = mixed + v * torch.log_softmax(torch.as_tensor(ce_logits, dtype=torch.float64, device=llm.device), -1)
    return torch.log_softmax(mixed, -1)


def without_classifier(weight: float, ce_weight: float) -> float:
    """The text head's weight once the classifier's is dropped (a list it cannot score): the LLM and the text head
    keep their proportion; a calibration that gave everything to the classifier falls back to the text head."""
    if ce_weight <= 0.0:
        return weight
    return weight / (1.0 - ce_weight) if ce_weight < 1.0 else 1.0


def with_bonus(logp: torch.Tensor | np.ndarray, bonus: Sequence[float]) -> torch.Tensor:
    """[N, C] log-probabilities over the list with a per-entry bonus added, renormalised (calibrated stacking:
    `Recognizer.new_class_bias` on the entries outside its tuning list)."""
    logp = torch.as_tensor(logp, dtype=torch.float64)
    return torch.log_softmax(logp + torch.tensor(bonus, dtype=logp.dtype, device=logp.device), -1)


def open_list_weights(weight: float, actions: Sequence[str], tuned: Sequence[str]) -> float | list[float]:
    """Per-entry fusion weights for a list that may hold classes the LLM was not tuned on ("open-list" fusion):
    those are scored by the text head alone (weight 1), the others at `weight`; a list of tuned classes keeps the
    single weight.

    Why measured: a LoRA-tuned 135M LLM ranks classes it never saw near chance while the text head reads them
    (docs/RESULTS.md, zero-shot). Not the default: on the validation split it did not beat one weight for every
    entry (`sugar evaluate` reports it beside, as evidence "fused_open_list")."""
    known = set(tuned)
    if all(a in known for a in actions):
        return weight
    return [weight if a in known else 1.0 for a in actions]


def choose_weight(llm_scores: np.ndarray, text_logits: np.ndarray, labels: np.ndarray,
                  grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, list[dict[str, float]]]:
    """The grid weight with the best top-1 on (validation) samples; ties go to the lower log-loss, then to the
    weight nearest 0.5 (the middle of a plateau, which transfers best to unseen data).

    Returns the weight and the whole table (weight, top1, nll) for the record."""
    return choose_weight_pooled([(llm_scores, text_logits, labels)], grid)


def choose_weight_pooled(sets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                         grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, list[dict[str, float]]]:
    """`choose_weight` over the samples of several (LLM scores, text logits, labels) sets pooled, each set with
    its own action list (e.g. other runs' held-out classes, to choose a weight for classes the LLM never saw)."""
    (weight, _), table = choose_weights([(llm, text, labels, None) for llm, text, labels in sets], grid)
    return weight, table


def choose_weights(sets: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]],
                   grid: Sequence[float] = WEIGHT_GRID) -> tuple[tuple[float, float], list[dict[str, float]]]:
    """The text head's and the classifier's weights (w, v) best on the pooled samples of (LLM scores, text logits
    or None, labels, CE logits or None) sets: every grid pair with w + v <= 1 when each set has both heads' logits;
    v = 0 when a set lacks CE logits, w = 0 when one lacks text logits (an encoder trained with loss: ce).
    Ties go to the lower log-loss, then to the smaller v (the classifier only where it adds), then to w nearest 0.5.

    Returns (w, v) and the whole table (weight, [ce_weight,] top1, nll) for the record."""
    ys = [torch.as_tensor(np.asarray(labels), dtype=torch.long) for *_, labels, _ in sets]
    total = sum(len(y) for y in ys)
    if total == 0:
        raise ConfigError("no validation samples to choose the fusion weight on")
    with_text = all(text is not None for _, text, *_ in sets)
    with_ce = all(ce is not None for *_, ce in sets)
    if not (with_text or with_ce):
        raise ConfigError("choosing fusion weights needs the encoder's text head or its classifier scores")
    pairs = [(w, v) for w in (grid if with_text else (0.0,)) for v in (grid if with_ce else (0.0,))
             if w + v <= 1.0 + 1e-9]
    table = []
    for w, v in pairs:
        correct = loss = 0.0
        for (llm_scores, text_logits, _, ce_logits), y in zip(sets, ys, strict=True):
            logp = fuse(llm_scores, text_logits if with_text else None, float(w), ce_logits if with_ce else None,
                        float(v))
            correct += float((logp.argmax(-1) == y).double().sum())
            loss += float(-logp[torch.arange(len(y)), y].sum())
        row = {"weight": float(w), **({"ce_weight": float(v)} if with_ce else {})}
        table.append({**row, "top1": correct / total, "nll": loss / total})
    best = max(table, key=lambda r: (round(r["top1"], 9), -round(r["nll"], 6), -r.get("ce_weight", 0.0),
                                     -abs(r["weight"] - 0.5)))
    return (best["weight"], best.get("ce_weight", 0.0)), table
