"""The fixed map of bridge kind "text" (sugar.models.tqp.TextBridge): from the text encoder's space to the LLM's
input embeddings of class names, fitted by ridge regression on the shipped knowledge files.

Pairs: every motion text, visual text, class name and prototype of a class (MiniLM, unit length) with the LLM's
mean input embedding of that class's name. A label shared by several files (NTU-60 inside NTU-120) counts once.
Classes whose label contains a held-out class's name (case-insensitive) are left out; synonyms under other names
(NTU's "sitting down" for NW-UCLA's "sit down") are not caught, so the map may have seen a held-out action's text
under another name, though never the held-out name as a target. The penalty is chosen by retrieving the names of
classes left out of the fit (label-grouped folds: what zero-shot asks of the map).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from sugar.errors import ConfigError
from sugar.knowledge.schema import load_knowledge, shipped_datasets
from sugar.models.text import embed_knowledge
from sugar.models.tqp import TextBridge

RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # penalties tried, chosen by name retrieval on held-out label folds
FOLDS = 5


def name_embedding(embedding: nn.Module, tokenizer: Any, label: str) -> torch.Tensor:
    """The LLM's input embedding of a class name as it appears in an answer: mean over its tokens."""
    ids = tokenizer(" " + label, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return embedding(torch.tensor(ids, device=embedding.weight.device)).float().mean(0).cpu()


def training_pairs(text_model: str, excluded: Iterable[str], embedding: nn.Module, tokenizer: Any,
                   datasets: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(text embeddings X [n, t], name embeddings Y [n, D], label group [n]) from the shipped knowledge files:
    every motion text, visual text, class name and prototype of a class, each paired with its name's embedding
    (see the module docstring for which classes are left out)."""
    banned = [e.lower() for e in excluded]
    xs, ys, groups = [], [], []
    done: set[str] = set()
    for dataset in datasets or [d for d in shipped_datasets() if d != "synthetic"]:
        knowledge = load_knowledge(dataset)
        keep = [c.label for c in knowledge.classes
                if c.label.lower() not in done and not any(b in c.label.lower() for b in banned)]
        done.update(label.lower() for label in keep)
        if not keep:
            continue
        emb = embed_knowledge(knowledge, text_model, check=False).subset(keep)
        protos = emb.prototypes()
        for i, label in enumerate(keep):
            rows = [emb.motion[i:i + 1], emb.visual[emb.visual_owner == i], protos[i:i + 1]]
            if emb.label is not None:
                rows.append(emb.label[i:i + 1])
            x = nn.functional.normalize(torch.cat(rows).float(), dim=-1)
            xs.append(x)
            ys.append(name_embedding(embedding, tokenizer, label).expand(len(x), -1))
            groups.append(torch.full((len(x),), len(groups)))
    if not xs:
        raise ConfigError("bridge kind 'text': no knowledge texts left to fit the text-to-LLM map")
    return torch.cat(xs), torch.cat(ys), torch.cat(groups)


def ridge(x: torch.Tensor, y: torch.Tensor, penalty: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares with an L2 penalty (per row of x): weight [D, t] and bias [D] with y ≈ x @ weight.T + bias."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = (x - mx).double(), (y - my).double()
    gram = xc.T @ xc + penalty * len(x) * torch.eye(x.shape[1], dtype=torch.float64)
    weight = torch.linalg.solve(gram, xc.T @ yc).T.float()
    return weight, my - mx @ weight.T


def _retrieval(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               groups: torch.Tensor) -> float:
    """Share of rows whose mapped vector is nearest (cosine) to their own name among these rows' names."""
    names, owner = torch.unique(groups, return_inverse=True)
    targets = torch.zeros(len(names), y.shape[1])
    targets[owner] = y
    sims = nn.functional.normalize(x @ weight.T + bias, dim=-1) @ nn.functional.normalize(targets, dim=-1).T
    return float((sims.argmax(1) == owner).float().mean())


def fit_text_map(x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The ridge map text -> name embedding, its penalty chosen by retrieving the names of classes left out of
    the fit (label-grouped folds: what zero-shot asks of it), refitted on all rows. Returns weight, bias and a
    record (penalty, held-out retrieval per penalty)."""
    order = torch.randperm(int(groups.max()) + 1, generator=torch.Generator().manual_seed(seed))
    fold_of = torch.empty_like(order)
    fold_of[order] = torch.arange(len(order)) % FOLDS
    scores = {}
    for penalty in RIDGE_GRID:
        hits = []
        for fold in range(FOLDS):
            test = fold_of[groups] == fold
            w, b = ridge(x[~test], y[~test], penalty)
            hits.append(_retrieval(w, b, x[test], y[test], groups[test]))
        scores[penalty] = sum(hits) / len(hits)
    best = max(RIDGE_GRID, key=lambda p: scores[p])
    weight, bias = ridge(x, y, best)
    return weight, bias, {"penalty": best, "heldout_name_retrieval": {str(k): v for k, v in scores.items()},
                          "rows": len(x), "classes": int(groups.max()) + 1}


def init_text_bridge(bridge: TextBridge, head: nn.Linear, text_model: str, excluded: Iterable[str],
                     embedding: nn.Module, tokenizer: Any, seed: int = 0) -> dict[str, Any]:
    """Load the stage-2 head into the bridge and fit its map; the gain starts where mapped names have the norm of
    the LLM's name embeddings (ridge shrinks them)."""
    if head.weight.shape != bridge.head.weight.shape:
        raise ConfigError(f"bridge kind 'text': the encoder's text head maps {head.in_features} -> "
                          f"{head.out_features}, the bridge expects {bridge.head.in_features} -> "
                          f"{bridge.head.out_features} (set bridge.text_dim to the text encoder's width)")
    x, y, groups = training_pairs(text_model, excluded, embedding, tokenizer)
    weight, bias, record = fit_text_map(x, y, groups, seed)
    with torch.no_grad():
        bridge.head.load_state_dict(head.state_dict())
        bridge.map.weight.copy_(weight)
        bridge.map.bias.copy_(bias)
        mapped = (x @ weight.T + bias).norm(dim=-1).mean()
        bridge.gain.fill_(float(y.norm(dim=-1).mean() / mapped.clamp_min(1e-6)))
    return {**record, "gain": float(bridge.gain.detach())}
