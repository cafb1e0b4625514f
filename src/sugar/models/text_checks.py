"""Near-duplicate texts across classes of one knowledge file, found on their text embeddings.

Two classes whose motion texts (or visual texts, or descriptions) embed to the same point cannot be told apart
by the text head, and MIL-NCE pushes their skeletons towards one target: a copied few-shot example made the
offline generator's knowledge do exactly that (0-6 % recall on the copying classes). The check is cosine
similarity of the L2-normalised text embeddings, between texts of different classes only.

Threshold (`DUPLICATE_THRESHOLD` = 0.99 with all-MiniLM-L6-v2): identical texts score 1.0 and a copy with a word
or two changed scores above 0.99, while the shipped, hand-checked files stay below it: their closest pairs of
different classes are 0.973 (motion, "put something into a bag" / "take something out of a bag"), 0.982
(visual, "thumb up" / "thumb down", whose sentences differ in one word, up/down, which is exactly what tells
them apart) and 0.946 (descriptions). `sugar knowledge check FILE --threshold T` takes another value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from sugar.models.text import KnowledgeEmbeddings

log = logging.getLogger(__name__)

DUPLICATE_THRESHOLD = 0.99
_warned: set[str] = set()  # one warning per knowledge file and process (evaluation reloads texts often)


@dataclass(frozen=True)
class NearDuplicate:
    """Two classes with a near-identical text of one kind (the most similar pair of their texts)."""

    kind: str  # "motion" | "visual" | "description"
    first: str  # class label (the earlier class in file order)
    second: str
    similarity: float
    first_text: str
    second_text: str

    def describe(self) -> str:
        return f"{self.kind}: {self.first!r} ~ {self.second!r} (cosine {self.similarity:.3f})"


def near_duplicates(kind: str, embeddings: torch.Tensor, owners: torch.Tensor, texts: list[str],
                    labels: list[str], threshold: float = DUPLICATE_THRESHOLD) -> list[NearDuplicate]:
    """Class pairs with a text of `kind` each whose cosine similarity is >= threshold.

    embeddings [N, D] (rows L2-normalised), owners [N] (class index of each text), texts [N]. One entry per class
    pair, for its most similar pair of texts; sorted by class order."""
    if len(embeddings) < 2:
        return []
    emb = embeddings.detach().float().cpu()
    own = owners.detach().cpu()
    sims = emb @ emb.t()
    # other classes only, each unordered pair of texts once
    keep = (own.unsqueeze(0) != own.unsqueeze(1)) & torch.ones_like(sims, dtype=torch.bool).triu(1)
    rows, cols = torch.nonzero(keep & (sims >= threshold), as_tuple=True)
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = int(own[r]), int(own[c])
        if a > b:
            a, b, r, c = b, a, c, r
        sim = float(sims[r, c])
        if (a, b) not in best or sim > best[(a, b)][0]:
            best[(a, b)] = (sim, r, c)
    return [NearDuplicate(kind, labels[a], labels[b], round(sim, 4), texts[r], texts[c])
            for (a, b), (sim, r, c) in sorted(best.items())]


def embedding_duplicates(emb: KnowledgeEmbeddings, motion: list[str], visual: list[list[str]],
                         threshold: float = DUPLICATE_THRESHOLD) -> list[NearDuplicate]:
    """Near-duplicate motion texts and visual texts across the classes of `emb` (texts in its row order)."""
    k = len(emb.labels)
    found = near_duplicates("motion", emb.motion, torch.arange(k), motion, emb.labels, threshold)
    flat = [v for texts in visual for v in texts]
    if flat:
        found += near_duplicates("visual", emb.visual, emb.visual_owner, flat, emb.labels, threshold)
    return found


def duplicate_groups(pairs: list[NearDuplicate]) -> list[list[str]]:
    """Classes connected by near-duplicate pairs, as groups (each group's labels in first-seen order)."""
    groups: list[list[str]] = []
    for pair in pairs:
        hit = [g for g in groups if pair.first in g or pair.second in g]
        merged = [label for g in hit for label in g]
        for label in (pair.first, pair.second):
            if label not in merged:
                merged.append(label)
        groups = [g for g in groups if g not in hit] + [merged]
    return groups


def warn_near_duplicates(emb: KnowledgeEmbeddings, motion: list[str], visual: list[list[str]], *, name: str,
                         model: str, threshold: float = DUPLICATE_THRESHOLD) -> list[NearDuplicate]:
    """Log one warning naming the classes whose texts are near-duplicates (once per `name` and process)."""
    pairs = embedding_duplicates(emb, motion, visual, threshold)
    if pairs and name not in _warned:
        _warned.add(name)
        groups = "; ".join(" = ".join(repr(label) for label in g) for g in duplicate_groups(pairs))
        log.warning("knowledge %s: %d class pair(s) with near-duplicate texts (cosine >= %.2f with %s), which the "
                    "text head cannot tell apart: %s. Their training texts still differ by the class name; "
                    "regenerate them (see `sugar knowledge check`).", name, len(pairs), threshold, model, groups)
    return pairs
