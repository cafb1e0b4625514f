"""Score fusion of several runs (the joint, bone and motion streams of CTR-GCN/PYSKL ensembles; or a stage-3
recogniser beside the heads of the encoder it reads).

Each stage-2 run's per-sample class scores of a split are saved by `sugar evaluate` as scores-<head>.npz (logits:
CE logits, or text-head cosines times the run's learned MIL-NCE scale); a recogniser's as
scores-<llm|text|fused>-all.npz. Fusion adds the runs' softmax probabilities with weights; the weights are given,
or chosen on the validation split by a grid search, never on test. Samples are matched across runs by name, so
the runs must score the same split of the same data.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import SugarError
from sugar.evaluation.encoder import HEADS, evaluate_run, scores_folder
from sugar.evaluation.metrics import classification_report, load_scores
from sugar.fileio import atomic_write_text
from sugar.models.released import evaluation_dir, resolve_run
from sugar.viz import plot_confusion

WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


RECOGNIZER_HEADS = ("llm", "text", "fused")  # what `sugar evaluate RECOGNIZER_RUN` saves per sample
ANY_HEAD = tuple(dict.fromkeys((*HEADS, *RECOGNIZER_HEADS)))


def split_head(spec: str, default: str) -> tuple[str, str]:
    """`sugar fuse`'s RUN:HEAD -> (RUN, HEAD); a spec without a known head suffix is a run with the default head."""
    run, sep, head = spec.rpartition(":")
    return (run, head) if sep and head in ANY_HEAD else (spec, default)


def is_recognizer(run: str | Path) -> bool:
    return (resolve_run(run) / "recognizer.json").is_file()


def check_head(run: str | Path, head: str) -> None:
    """Refuse a head the run does not save scores for (before any run is evaluated)."""
    recognizer = is_recognizer(run)
    heads = RECOGNIZER_HEADS if recognizer else HEADS
    if head not in heads:
        kind = "a stage-3 recogniser" if recognizer else "a stage-2 run"
        raise SugarError(f"{run}: {kind} has heads {', '.join(heads)}, not {head!r}")


def _recognizer_scores(run: str | Path, split: str, head: str, text_score: str | None,
                       multi_clip: int) -> dict[str, np.ndarray]:
    if text_score or multi_clip > 1:
        raise SugarError(f"{run}: a recogniser's scores have neither another text rule nor several clips")
    path = evaluation_dir(resolve_run(run)) / split / f"scores-{head}-all.npz"
    if not path.is_file():
        raise SugarError(f"{run}: no {split} scores ({path} is missing); evaluate it first: "
                         f"sugar evaluate {run} --split {split}")
    return load_scores(path)


def _scores(run: str | Path, split: str, head: str, text_score: str | None = None,
            multi_clip: int = 1) -> dict[str, np.ndarray]:
    """A run's saved scores of `split`, evaluated first when `sugar evaluate` has not saved them yet (stage-2
    runs; a recogniser's evaluation is the user's to start, it takes minutes). The head is checked by the caller."""
    if is_recognizer(run):
        return _recognizer_scores(run, split, head, text_score, multi_clip)
    folder = scores_folder(split, text_score, multi_clip)
    path = evaluation_dir(resolve_run(run)) / folder / f"scores-{head}.npz"
    if not path.is_file():
        evaluate_run(run, split, multi_clip, tsne=False, text_score=text_score)
    return load_scores(path)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def aligned(tables: list[dict[str, np.ndarray]], what: str) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """(labels, probabilities per run in the first run's sample order, classes); refuses mismatched runs."""
    first = tables[0]
    order = {n: i for i, n in enumerate(first["names"].tolist())}
    probs = []
    for k, t in enumerate(tables):
        if t["classes"].tolist() != first["classes"].tolist():
            raise SugarError(f"{what}: run {k + 1} scores other classes than run 1")
        if sorted(t["names"].tolist()) != sorted(order):
            raise SugarError(f"{what}: run {k + 1} scored other samples than run 1 (not the same split?)")
        position = np.argsort([order[n] for n in t["names"].tolist()])
        probs.append(softmax(t["logits"][position]))
    return first["labels"], probs, first["classes"].tolist()


def choose_weights(labels: np.ndarray, probs: list[np.ndarray]) -> list[float]:
    """The grid weights with the best validation top-1 (ties: closest to equal weights). Every combination
    for up to four runs; beyond that, coordinate ascent from equal weights (three passes)."""

    def score(weights: Sequence[float]) -> tuple[float, float]:
        top1 = float((fuse(probs, weights).argmax(1) == labels).mean())
        return top1, -float(np.abs(np.array(weights) - 1.0).sum())

    if len(probs) <= 4:
        grid = [w for w in itertools.product(WEIGHT_GRID, repeat=len(probs)) if any(w)]
        return list(max(grid, key=score))
    weights = [1.0] * len(probs)
    for _ in range(3):
        for k in range(len(weights)):
            options = [[*weights[:k], w, *weights[k + 1:]] for w in WEIGHT_GRID]
            weights = max((o for o in options if any(o)), key=score)
    return weights


def fuse(probs: list[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    return sum(w * p for w, p in zip(weights, probs, strict=True))  # type: ignore[return-value]


def fuse_runs(runs: Sequence[str | Path], head: str | Sequence[str] = "text", split: str = "test",
              val_split: str = "val", weights: Sequence[float] | None = None, out_dir: str | Path | None = None,
              text_score: str | None = None, multi_clip: int = 1) -> dict[str, Any]:
    """Fuse the saved `head` scores of `runs` on `split` (one head for all, or one per run); weights given or
    chosen on `val_split`. text_score: the text head's scoring rule for every run instead of each run's own
    (TextScorer). multi_clip: fuse each run's scores averaged over that many clips (`sugar evaluate --multi-clip`)."""
    if len(runs) < 2:
        raise SugarError("fusion needs at least two runs")
    if weights is not None and len(weights) != len(runs):
        raise SugarError(f"{len(weights)} weights for {len(runs)} runs")
    heads = [head] * len(runs) if isinstance(head, str) else list(head)
    if len(heads) != len(runs):
        raise SugarError(f"{len(heads)} heads for {len(runs)} runs")
    for r, h in zip(runs, heads, strict=True):
        check_head(r, h)
    tables = [_scores(r, split, h, text_score, multi_clip) for r, h in zip(runs, heads, strict=True)]
    labels, probs, classes = aligned(tables, split)
    chosen_on = "given"
    if weights is None:
        val = [_scores(r, val_split, h, text_score, multi_clip) for r, h in zip(runs, heads, strict=True)]
        val_labels, val_probs, _ = aligned(val, val_split)
        weights, chosen_on = choose_weights(val_labels, val_probs), val_split
    fused = classification_report(fuse(probs, weights), labels, classes)
    single = [classification_report(p, labels, classes) for p in probs]
    out = Path(out_dir) if out_dir else evaluation_dir(resolve_run(runs[0])) / f"fused-{split}"
    out.mkdir(parents=True, exist_ok=True)
    named = heads[0] if len(set(heads)) == 1 else "+".join(heads)
    png = out / f"confusion-fused-{named}.png"
    plot_confusion(np.asarray(fused["confusion"]), classes, png,
                   title=f"{len(runs)} runs fused ({named}), {split} ({fused['top1'] * 100:.1f}% top-1)")
    report = {"runs": [str(r) for r in runs], "head": named, "heads": heads, "split": split, "text_score": text_score,
              "multi_clip": multi_clip,
              "weights": list(weights),
              "weights_chosen_on": chosen_on, "fused": fused,
              "single": [{"run": str(r), "top1": s["top1"], "top5": s["top5"]} for r, s in zip(runs, single,
                                                                                                strict=True)],
              "pictures": {png.name: str(png)}, "out_dir": str(out)}
    atomic_write_text(out / "results.json", json.dumps(report, indent=1))
    return report
