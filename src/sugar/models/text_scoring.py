"""How the text head turns a projected feature into class scores.

MIL-NCE trains each sample to match *one of* its class's texts (motion, label, each visual text), so after a long
schedule a feature may sit next to one of them and far from their mean. Two rules, both in cosine units:

- "prototype": cosine to the normalised mean of the class's texts (one row per class; the classic text head).
- "mil": the log-mean-exp over the class's own texts of the scaled cosines, divided by the scale: the rule
  MIL-NCE trains (its positive term), with a mean instead of a sum so a class with more texts gains nothing.
  On NW-UCLA's validation part it lifted the 65-epoch encoders' text heads by 0-9 points (docs/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sugar.errors import ConfigError
from sugar.models.losses import text_bank
from sugar.models.text import KnowledgeEmbeddings

TEXT_SCORES = ("prototype", "mil")


def check_text_score(mode: str) -> str:
    if mode not in TEXT_SCORES:
        raise ConfigError(f"text_score: {mode!r} must be one of {TEXT_SCORES}")
    return mode


@dataclass(frozen=True)
class TextScorer:
    """Class scores [N, K] of projected, L2-normalised features [N, D] against one knowledge file's texts."""

    texts: np.ndarray  # [Nt, D] L2-normalised; for "prototype" one row per class
    owners: np.ndarray  # [Nt] class index of each row
    num_classes: int
    mode: str = "prototype"
    scale: float = 1.0  # the learnt MIL-NCE 1/temperature ("mil" only)

    @classmethod
    def build(cls, emb: KnowledgeEmbeddings, mode: str, use_motion: bool = True, use_visual: bool = True,
              scale: float = 1.0) -> TextScorer:
        k = len(emb.labels)
        if check_text_score(mode) == "prototype":
            return cls(emb.prototypes(use_motion, use_visual).cpu().numpy(), np.arange(k), k, mode, scale)
        bank, owners = text_bank(emb.to("cpu"), torch.arange(k), use_motion=use_motion, use_visual=use_visual,
                                 mix="none")
        return cls(bank.numpy(), owners.numpy(), k, mode, scale)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        cosines = np.asarray(features, dtype=np.float32) @ self.texts.T
        if self.mode == "prototype":
            return cosines
        scaled = torch.from_numpy(cosines * self.scale)
        out = torch.stack([scaled[:, torch.from_numpy(self.owners == c)].logsumexp(1)
                           - float(np.log(max(int((self.owners == c).sum()), 1)))
                           for c in range(self.num_classes)], 1)
        return (out / self.scale).numpy()
