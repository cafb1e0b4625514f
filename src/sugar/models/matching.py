"""Generate mode: find the action label inside a free-text answer "{label}. {description}".

Order [choice]: exact (the answer starts with a list entry followed by "." or the end), normalised (case,
punctuation and whitespace ignored), fuzzy (rapidfuzz ratio >= `fuzzy_cutoff` against the answer's first
sentence), else no match (label None; the caller reports the raw answer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


@dataclass(frozen=True)
class LabelMatch:
    label: str | None
    match: str  # exact | normalised | fuzzy | none
    similarity: float  # 100 for exact/normalised, rapidfuzz ratio for fuzzy
    description: str  # the rest of the answer after the label


def _rest(answer: str, cut: int) -> str:
    return answer[cut:].lstrip(" .:-\n").strip()


def match_label(answer: str, actions: Sequence[str], fuzzy_cutoff: float = 80.0) -> LabelMatch:
    text = answer.strip()
    # exact: the longest list entry the answer starts with, followed by "." / end / whitespace
    for label in sorted(actions, key=len, reverse=True):
        if text.startswith(label) and (len(text) == len(label) or not text[len(label)].isalnum()):
            return LabelMatch(label, "exact", 100.0, _rest(text, len(label)))
    head, _, tail = text.partition(". ")
    head = head.rstrip(".")
    norm_head = normalise(head)
    by_norm = {normalise(a): a for a in actions}
    if norm_head in by_norm:
        return LabelMatch(by_norm[norm_head], "normalised", 100.0, tail.strip())
    if norm_head:
        best = process.extractOne(norm_head, list(by_norm), scorer=fuzz.ratio, score_cutoff=fuzzy_cutoff)
        if best is not None:
            return LabelMatch(by_norm[best[0]], "fuzzy", float(best[1]), tail.strip())
    return LabelMatch(None, "none", 0.0, text)
