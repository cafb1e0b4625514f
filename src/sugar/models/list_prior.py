"""The LLM's prior over an action list, to divide out on lists with entries it was not tuned on.

Tuned on a fixed list, the LLM learns to answer those names; given a list of names it never answered, it prefers
some of them whatever the skeleton shows (docs/RESULTS.md (18): on two of NW-UCLA's three held-out pairs every
sample got the same name). Contextual calibration (Zhao et al., "Calibrate Before Use", ICML 2021) removes that
preference: a list entry's log-probability minus the log of its mean probability over reference inputs. The
reference inputs here are the action tokens of a few seeded training samples (classes the LLM was tuned on, so
no held-out class is ever looked at); their mean answer over a new list is what the LLM says about that list when
the skeleton tells it nothing it knows. The tokens are stored with the recogniser (`list_prior.safetensors`), so
`sugar predict` and `sugar serve` apply it without the training data; the prior of each list is computed once
and cached.

A second estimate needs no reference samples: the mean answer of the samples being scored together (Zhou et al.,
"Batch Calibration", ICLR 2024). It assumes the set covers the list roughly evenly, and it looks at the unlabelled
inputs themselves (transductive), so it is asked for by name (`recognize(..., batch_prior=True)`, `sugar predict
--batch-prior`; `sugar evaluate` reports it as its own kinds) and never applied to a single sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

FILE = "list_prior.safetensors"
REFERENCE_SAMPLES = 64  # training samples whose mean answer is the prior (a seeded subset of the seen classes)
# whether lists with untuned entries are corrected when nobody says (docs/RESULTS.md): R3 of 2026-12-07 (20) failed
# (+3.4 points on NW-UCLA's 20 val samples a seed, the bar was +5); R5 of (21), on the held-out classes' ~180 (NW-UCLA)
# and ~50 (MSR) training-view samples a seed, failed too (one NW-UCLA pair lost 29.5 points; MSR -2.1 on average)
APPLY_TO_NEW_LISTS = False


@dataclass
class ListPrior:
    """The reference samples' action embeddings [N, K, D] (as the bridge made them) and their mask [N, K]."""

    embeds: torch.Tensor
    mask: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        """What is saved: float16 embeddings (the prior is a mean of N answers; half precision is ample)."""
        return {"embeds": self.embeds.detach().to(torch.float16).contiguous().cpu(),
                "mask": self.mask.detach().to(torch.uint8).contiguous().cpu()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> ListPrior:
        return cls(tensors["embeds"].float(), tensors["mask"].bool())

    def __len__(self) -> int:
        return int(self.embeds.shape[0])


def applies(tuned: Sequence[str], actions: Sequence[str], choice: bool | None) -> bool:
    """Whether a list is corrected: `choice` when given, else (APPLY_TO_NEW_LISTS) when it has an entry outside
    the tuning list `tuned` (on the tuning list itself the LLM's preferences are what it learnt from the data)."""
    if choice is not None:
        return choice
    known = set(tuned)
    return APPLY_TO_NEW_LISTS and any(a not in known for a in actions)


def mean_log_prior(reference_scores: torch.Tensor) -> torch.Tensor:
    """[C] log of the reference rows' mean answer distribution, from their [N, C] list scores."""
    probs = torch.softmax(reference_scores.double(), -1).mean(0)
    return torch.log(probs.clamp_min(1e-30))


def corrected(scores: torch.Tensor | np.ndarray, log_prior: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[N, C] log-probabilities over the list with the prior divided out, renormalised."""
    logp = torch.log_softmax(torch.as_tensor(scores, dtype=torch.float64), -1)
    return torch.log_softmax(logp - torch.as_tensor(log_prior, dtype=torch.float64, device=logp.device), -1)


def batch_corrected(scores: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[N, C] log-probabilities over the list with the N scored samples' own mean answer divided out (the batch
    prior: no labels are read; a set that is mostly one class is pushed toward the others)."""
    logp = torch.log_softmax(torch.as_tensor(scores, dtype=torch.float64), -1)
    return corrected(logp, mean_log_prior(logp))
