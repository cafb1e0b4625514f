"""Stage-2 losses: MIL-NCE against the knowledge texts (PAPER.md "Stage 2") and the cross-entropy baseline.

MIL-NCE over a batch B: for skeleton i with class y_i, the positives P_i are all text embeddings of class
y_i; the candidates are the texts of every class present in the (global) batch:

    L = -1/|B| sum_i [ logsumexp_{t in P_i} (s_i . t / tau) - logsumexp_{t in all} (s_i . t / tau) ]

(PAPER.md: the printed formula's numerator runs over the whole batch, which makes the loss zero; it is
restricted to positives here.) tau is learnable, stored as a log-scale logit `scale = log(1/tau)`
initialised at log(1/0.07) and clamped to [0, log(100)] (0.01 <= tau <= 1; CLIP clamps the upper end).

Random combination of motion and visual embeddings per step (`mix`):
- "convex" (default): class c contributes its motion embedding m_c and, for every visual text v_{c,n}, the
  normalised mix lambda*m_c + (1-lambda)*v_{c,n} with lambda ~ U(0, 1) drawn afresh per class, instance
  and step. Every positive thus carries a random share of motion and visual evidence.
- "none": m_c and the raw v_{c,n} as separate instances.
With use_visual=False only m_c is used; with use_motion=False only the raw v_{c,n} (nothing to mix).

The class name: when the embeddings carry label texts (`KnowledgeEmbeddings.label`, the default of
`embed_knowledge`), class c also contributes the embedding of its label as one more positive, never mixed.
Knowledge that says nothing useful about a class thus still leaves the label to pull towards, and with
use_motion=False and use_visual=False the bank is label-only (the baseline that knowledge must beat).
The draws come from a generator seeded by (seed, step), identical on every DDP rank and after a resume.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sugar.errors import ConfigError
from sugar.models.text import KnowledgeEmbeddings

MIX_MODES = ("convex", "none")
LOSS_MODES = ("milnce", "ce", "milnce+ce")
TEXT_NEGATIVES = ("batch", "all")  # MIL-NCE candidates: classes in the batch, or every training class


def text_bank(emb: KnowledgeEmbeddings, classes: torch.Tensor, *, use_motion: bool = True, use_visual: bool = True,
              mix: str = "convex", generator: torch.Generator | None = None,
              use_label: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """This step's text instances for `classes` (class indices into emb): (texts [Nt, D], owner class [Nt])."""
    if mix not in MIX_MODES:
        raise ConfigError(f"text_mix: {mix!r} must be one of {MIX_MODES}")
    has_label = use_label and emb.label is not None
    if not use_motion and not use_visual and not has_label:
        raise ConfigError("use_motion and use_visual cannot both be false")
    texts, owners = [], []
    classes = classes.tolist()
    for c in classes:
        visual = emb.visual[emb.visual_owner == c]
        if use_motion:
            texts.append(emb.motion[c:c + 1])
            owners.append(c)
        if has_label:
            assert emb.label is not None
            texts.append(emb.label[c:c + 1])
            owners.append(c)
        if use_visual and len(visual):
            if use_motion and mix == "convex":
                lam = torch.rand(len(visual), 1, generator=generator).to(visual)
                visual = nn.functional.normalize(lam * emb.motion[c:c + 1] + (1 - lam) * visual, dim=-1)
            texts.append(visual)
            owners.extend([c] * len(visual))
        elif not use_motion and not has_label:
            raise ConfigError(f"class {emb.labels[c]!r} has no visual text and use_motion is false")
    return torch.cat(texts), torch.tensor(owners, dtype=torch.long)


def milnce(features: torch.Tensor, labels: torch.Tensor, texts: torch.Tensor, owners: torch.Tensor,
           scale: torch.Tensor) -> torch.Tensor:
    """Per-sample MIL-NCE loss [B]: features [B, D] and texts [Nt, D] L2-normalised, scale = 1/tau."""
    logits = scale * features @ texts.t()  # [B, Nt]
    positive = owners.unsqueeze(0) == labels.unsqueeze(1)
    if not bool(positive.any(1).all()):
        raise ValueError("every sample needs at least one positive text (its class is missing from the bank)")
    pos = logits.masked_fill(~positive, float("-inf")).logsumexp(1)
    return logits.logsumexp(1) - pos


class MILNCELoss(nn.Module):
    """MIL-NCE with a learnable temperature; returns the per-sample loss (the caller averages)."""

    def __init__(self, temperature: float = 0.07, learn_temperature: bool = True, max_scale: float = 100.0):
        super().__init__()
        init = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        self.max_log_scale = math.log(max_scale)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(0.0, self.max_log_scale).exp()

    @property
    def temperature(self) -> float:
        return float(1.0 / self.scale().detach())

    def forward(self, features: torch.Tensor, labels: torch.Tensor, texts: torch.Tensor,
                owners: torch.Tensor) -> torch.Tensor:
        return milnce(features, labels, texts.to(features), owners.to(labels.device), self.scale())
