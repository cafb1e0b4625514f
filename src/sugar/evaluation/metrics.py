"""Classification metrics and zero-shot protocol helpers (library code; `sugar evaluate` prints them).

Scores are [N, K] (higher = more likely), labels [N] in 0..K-1. Mean class accuracy averages the recall of
the classes that occur in `labels` (Toyota Smarthome's metric).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sugar.errors import ConfigError, SugarError


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose true label is among the k highest scores (k is capped at K)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return counts


def mean_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    cm = confusion_matrix(labels, predictions, num_classes)
    present = cm.sum(1) > 0
    if not present.any():
        return float("nan")
    return float((np.diag(cm)[present] / cm.sum(1)[present]).mean())


def classification_report(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict:
    """top-1, top-5, mean class accuracy, the confusion matrix and per-class recall, as plain JSON data."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    predictions = scores.argmax(1) if len(scores) else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(labels, predictions, len(classes))
    support = cm.sum(1)
    return {
        "samples": len(labels),
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_accuracy": mean_class_accuracy(labels, predictions, len(classes)),
        "classes": list(classes),
        "per_class_recall": [float(cm[i, i] / support[i]) if support[i] else None for i in range(len(classes))],
        "confusion": cm.tolist(),
    }


def generalized_zero_shot(scores: np.ndarray, labels: np.ndarray, unseen: Sequence[int]) -> dict:
    """Generalized zero-shot on the whole list: top-1 over the samples of seen classes and over those of unseen
    ones (each predicted among all classes), and their harmonic mean, the usual GZSL summary, which stays low
    when either side collapses (a recogniser answering only seen classes scores 0 however good it is on them)."""
    predictions = np.asarray(scores).argmax(1)
    labels = np.asarray(labels)
    is_unseen = np.isin(labels, list(unseen))
    seen_acc = float((predictions[~is_unseen] == labels[~is_unseen]).mean()) if (~is_unseen).any() else None
    unseen_acc = float((predictions[is_unseen] == labels[is_unseen]).mean()) if is_unseen.any() else None
    harmonic = (2 * seen_acc * unseen_acc / (seen_acc + unseen_acc)
                if seen_acc is not None and unseen_acc is not None and seen_acc + unseen_acc > 0 else 0.0)
    return {"seen": seen_acc, "unseen": unseen_acc, "harmonic": harmonic,
            "seen_samples": int((~is_unseen).sum()), "unseen_samples": int(is_unseen.sum())}


def choose_unseen_classes(classes: Sequence[str], k: int, seed: int) -> list[str]:
    """K classes held out for zero-shot, drawn reproducibly from `seed`, returned in class-index order."""
    if not 0 <= k < len(classes):
        raise ConfigError(f"cannot hold out {k} of {len(classes)} classes (need 0 <= K < number of classes)")
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(classes), size=k, replace=False).tolist())
    return [classes[i] for i in picked]


def restrict(scores: np.ndarray, labels: np.ndarray, keep: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-shot view: rows whose label is in `keep`, columns `keep` only, labels re-indexed to 0..len-1."""
    keep = list(keep)
    remap = {c: i for i, c in enumerate(keep)}
    rows = np.array([int(lab) in remap for lab in labels], dtype=bool)
    new_labels = np.array([remap[int(lab)] for lab in np.asarray(labels)[rows]], dtype=np.int64)
    return np.asarray(scores)[rows][:, keep], new_labels


def save_scores(path: Path, logits: np.ndarray, labels: np.ndarray, names: Sequence[str], classes: Sequence[str]
                ) -> None:
    """Per-sample class scores of one head on one split, for fusing runs (sugar.evaluation.fusion)."""
    np.savez(path, logits=logits.astype(np.float32), labels=labels.astype(np.int64), names=np.array(names),
             classes=np.array(classes))


def load_scores(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise SugarError(f"{path}: no saved scores; run `sugar evaluate` on this run and split first")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in ("logits", "labels", "names", "classes")}
