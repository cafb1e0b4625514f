"""A second opinion for the recogniser: the stage-2 encoder's text head, fused with the LLM's ranking.

Why: with a 135M LLM and CPU budgets the LLM reads the frozen encoder's tokens less well than the stage-2 text
head does (docs/RESULTS.md), and the two are evidence about the same sample from different models. The
recogniser therefore ranks a list by a convex mix of the two log-probabilities over the list,

    log p(c) ∝ (1 - w) · log_softmax(LLM score)_c + w · log_softmax(text-head logit)_c,

w chosen on the validation split (`choose_weight`, by sugar.training.instruct / `sugar calibrate`) and saved
with the recogniser. w = 0 is the LLM alone, w = 1 the text head alone. The text head is stage 2's: mean of
the encoder tokens, a linear map into the text space, cosine to each class's text prototype (the normalised mean
of its knowledge embeddings and its name), times the learnt MIL-NCE scale, so it scores any list whose classes
have knowledge texts, or at least names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sugar.errors import ConfigError
from sugar.models.text import embed_knowledge, get_text_encoder, label_texts

WEIGHT_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # candidate fusion weights, 0 (LLM) .. 1 (text head)


class TextHead(nn.Module):
    """Stage 2's projection head without its training machinery: tokens -> unit vector in the text space."""

    def __init__(self, dim: int, text_dim: int, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(dim, text_dim)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, tokens: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Token sequences ([T_i, d] each, or [N, T', d]) -> normalised features [N, text_dim]."""
        pooled = (tokens.mean(1) if isinstance(tokens, torch.Tensor) and tokens.dim() == 3
                  else torch.stack([t.float().mean(0) for t in tokens]))
        pooled = pooled.to(self.linear.weight.device, self.linear.weight.dtype)
        return nn.functional.normalize(self.linear(pooled), dim=-1)


class TextEvidence(nn.Module):
    """The text head plus the class text prototypes it compares with.

    `stored` holds the prototypes computed when the head was attached (every class of the encoder's dataset,
    held-out ones included), so the usual lists need no text encoder at inference; classes outside it are embedded
    from the knowledge given with the list, or from their name alone.
    """

    def __init__(self, head: TextHead, labels: Sequence[str], prototypes: torch.Tensor, text_model: str,
                 use_motion: bool = True, use_visual: bool = True):
        super().__init__()
        self.head = head
        self.labels = list(labels)
        self.register_buffer("prototypes", prototypes.float())
        self.text_model = text_model
        self.use_motion = use_motion
        self.use_visual = use_visual
        self._memo: dict[tuple[str, ...], tuple[Any, torch.Tensor]] = {}  # last prototypes per list

    def describe(self) -> dict[str, Any]:
        """What recognizer.json records about the head (the tensors live in a safetensors file)."""
        return {"labels": self.labels, "text_model": self.text_model, "use_motion": self.use_motion,
                "use_visual": self.use_visual, "dim": self.head.linear.in_features,
                "text_dim": self.head.linear.out_features}

    @classmethod
    def from_saved(cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> TextEvidence:
        head = TextHead(int(meta["dim"]), int(meta["text_dim"]))
        head.load_state_dict({"linear.weight": tensors["linear.weight"], "linear.bias": tensors["linear.bias"],
                              "scale": tensors["scale"]})
        return cls(head, meta["labels"], tensors["prototypes"], str(meta["text_model"]),
                   bool(meta.get("use_motion", True)), bool(meta.get("use_visual", True)))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"linear.weight": self.head.linear.weight.detach(), "linear.bias": self.head.linear.bias.detach(),
                "scale": self.head.scale.detach(), "prototypes": self.prototypes.detach()}

    def prototypes_for(self, actions: Sequence[str], knowledge: Any = None) -> torch.Tensor:
        """[C, text_dim] prototypes of `actions`: from `knowledge` (a Knowledge object) for the classes it has,
        else the stored ones, else the embedding of the class name."""
        key = tuple(actions)
        if key in self._memo and self._memo[key][0] is knowledge:
            return self._memo[key][1]
        out = self._prototypes(actions, knowledge)
        self._memo[key] = (knowledge, out)
        return out

    def _prototypes(self, actions: Sequence[str], knowledge: Any) -> torch.Tensor:
        rows: dict[str, torch.Tensor] = {}
        if knowledge is not None and hasattr(knowledge, "classes") and not isinstance(knowledge, Mapping):
            have = [c.label for c in knowledge.classes if c.label in set(actions)]
            if have:
                emb = embed_knowledge(knowledge, self.text_model).subset(have)
                protos = emb.prototypes(self.use_motion, self.use_visual)
                rows.update({label: protos[i] for i, label in enumerate(have)})
        index = {label: i for i, label in enumerate(self.labels)}
        for a in actions:
            if a not in rows and a in index:
                rows[a] = self.prototypes[index[a]].cpu()
        missing = [a for a in actions if a not in rows]
        if missing:
            names = torch.from_numpy(get_text_encoder(self.text_model).encode(label_texts(missing)))
            rows.update({a: names[i] for i, a in enumerate(missing)})
        out = torch.stack([rows[a].float() for a in actions])
        return nn.functional.normalize(out, dim=-1).to(self.prototypes.device)

    @torch.no_grad()
    def logits(self, tokens: Sequence[torch.Tensor] | torch.Tensor, actions: Sequence[str],
               knowledge: Any = None) -> torch.Tensor:
        """[N, C] text-head logits (scaled cosine) of each sample against each listed class."""
        features = self.head(tokens)
        return self.head.scale * features @ self.prototypes_for(actions, knowledge).to(features.device).T


def fuse(llm_scores: torch.Tensor | np.ndarray, text_logits: torch.Tensor | np.ndarray | None,
         weight: float) -> torch.Tensor:
    """[N, C] log-probabilities over the list: (1 - w)·log_softmax(LLM) + w·log_softmax(text), renormalised."""
    llm = torch.log_softmax(torch.as_tensor(llm_scores, dtype=torch.float64), -1)
    if text_logits is None or weight <= 0.0:
        return llm
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"fusion weight {weight} must lie in [0, 1]")
    text = torch.log_softmax(torch.as_tensor(text_logits, dtype=torch.float64), -1)
    return torch.log_softmax((1.0 - weight) * llm + weight * text, -1)


def choose_weight(llm_scores: np.ndarray, text_logits: np.ndarray, labels: np.ndarray,
                  grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, list[dict[str, float]]]:
    """The grid weight with the best top-1 on (validation) samples; ties go to the lower log-loss, then to the
    weight nearest 0.5 (the middle of a plateau, which transfers best to unseen data).

    Returns the weight and the whole table (weight, top1, nll) for the record."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(y) == 0:
        raise ConfigError("no validation samples to choose the fusion weight on")
    table = []
    for w in grid:
        logp = fuse(llm_scores, text_logits, float(w))
        top1 = float((logp.argmax(-1) == y).double().mean())
        nll = float(-logp[torch.arange(len(y)), y].mean())
        table.append({"weight": float(w), "top1": top1, "nll": nll})
    best = max(table, key=lambda r: (round(r["top1"], 9), -round(r["nll"], 6), -abs(r["weight"] - 0.5)))
    return best["weight"], table
