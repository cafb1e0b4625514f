"""A fusion weight for classes the LLM never saw, chosen on other runs' held-out classes (leave-classes-out).

A recogniser's own weight (`sugar calibrate`) is chosen on validation samples of the classes it was tuned on,
where its LLM is at its best, so on classes it never saw it trusts the LLM too much (docs/RESULTS.md: seed 3's
fused zero-shot top-1 fell to the LLM's 52.7 % while the text head had 86.8 %). Runs tuned with different
held-out classes (the seeded zero-shot runs) hold validation samples of classes *their* LLM never saw. Run k's
weight is chosen on the held-out classes of every other run whose held-out classes do not overlap k's, so neither
k's classes nor any test sample picks it.

On the whole list (seen and held-out classes together, generalized zero-shot) a model trained on its seen classes
over-scores them and almost never answers a held-out one; `calibrated_stacking` chooses a bonus for never-seen
classes the same leave-classes-out way.

Reads the per-sample scores that `sugar evaluate RUN --split val|test` saves (scores-<kind>-<view>.npz in the run's
evaluation folder).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import ConfigError
from sugar.evaluation.metrics import classification_report, generalized_zero_shot, load_scores
from sugar.evaluation.proxy_weight import WHOLE, saved_evidence
from sugar.fileio import atomic_write_text
from sugar.models.evidence import choose_weight_pooled, fuse
from sugar.models.released import evaluation_dir, resolve_run

VIEW = "zero_shot"  # the view `sugar evaluate` gives a run's held-out classes
RESULT = "zero_shot-leave-classes-out.json"


def unseen_scores(run: Path, split: str) -> dict[str, Any]:
    """The LLM's and the text head's saved scores on `run`'s held-out classes of `split`."""
    return saved_evidence(run, split, VIEW)


def leave_classes_out(runs: Sequence[Path], choose_on: str = "val", test: str = "test") -> list[dict[str, Any]]:
    """For each run: the weight chosen on the `choose_on` held-out samples of the runs that share none of its
    held-out classes, and its `test` held-out classes scored by the LLM, the text head and the two fused at that
    weight. Each result is also written to the run's evaluation folder, <test>/zero_shot-leave-classes-out.json
    (its path: the result's "saved"). A run that every other run shares a class with has no donors: it is
    reported ("skipped": why) and the others are still calibrated; only when no run has donors is it an error."""
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise ConfigError("leave-classes-out calibration needs at least two zero-shot runs")
    val = {r: unseen_scores(r, choose_on) for r in runs}
    out = []
    for run in runs:
        held = set(val[run]["classes"])
        donors = [r for r in runs if r != run and not held & set(val[r]["classes"])]
        if not donors:
            out.append({"run": str(run), "held_out": sorted(held),
                        "skipped": f"{run}: every other run holds out one of its classes ({sorted(held)}); add "
                                   "runs with other held-out classes"})
            continue
        weight, table = choose_weight_pooled([(val[r]["llm"], val[r]["text"], val[r]["labels"]) for r in donors])
        scores = unseen_scores(run, test)
        reports = {kind: classification_report(values, scores["labels"], scores["classes"])
                   for kind, values in (("llm", scores["llm"]), ("text", scores["text"]),
                                        ("fused", fuse(scores["llm"], scores["text"], weight).numpy()))}
        result = {"run": str(run), "held_out": scores["classes"], "chosen_on": choose_on,
                  "donors": [str(r) for r in donors],
                  "donor_classes": sorted({c for r in donors for c in val[r]["classes"]}),
                  "weight": weight, "table": table, "split": test, "evidence": reports}
        saved = evaluation_dir(resolve_run(run)) / test / RESULT
        atomic_write_text(saved, json.dumps(result, indent=1))
        out.append({**result, "saved": str(saved)})
    if all("skipped" in r for r in out):
        raise ConfigError("; ".join(r["skipped"] for r in out))
    return out


# ------------------------------------------------------------------ the whole list: calibrated stacking

STACKING_RESULT = "all-calibrated-stacking.json"
BIAS_GRID = tuple(0.25 * i for i in range(81))  # bonus for never-seen classes, in score units: 0 .. 20


def whole_list_scores(run: Path, split: str, kind: str) -> dict[str, Any]:
    """One kind of evidence's saved scores on `run`'s whole list, with which columns are its held-out classes."""
    folder = evaluation_dir(resolve_run(run)) / split
    scores = load_scores(folder / f"scores-{kind}-{WHOLE}.npz")
    held = {str(c) for c in load_scores(folder / f"scores-{kind}-{VIEW}.npz")["classes"]}
    classes = [str(c) for c in scores["classes"]]
    return {"scores": scores["logits"], "labels": scores["labels"], "classes": classes,
            "unseen": np.array([c in held for c in classes])}


def stack(scores: np.ndarray, unseen: np.ndarray, bias: float) -> np.ndarray:
    """Calibrated stacking (Chao et al., ECCV 2016): never-seen classes' scores raised by `bias` (log-probabilities
    for the LLM and fused scores, scaled cosines for the text head), so that they can win against the seen classes
    a model trained on them over-scores."""
    return np.asarray(scores) + bias * np.asarray(unseen, dtype=np.float64)


def choose_bias(sets: Sequence[dict[str, Any]], grid: Sequence[float] = BIAS_GRID) -> tuple[float, list[dict]]:
    """The grid bias with the best harmonic mean of seen and unseen top-1 over the pooled samples of `sets`
    (whole-list scores of other runs); ties go to the smaller bias."""
    table = []
    for bias in grid:
        right = {"seen": [], "unseen": []}
        for s in sets:
            hit = stack(s["scores"], s["unseen"], bias).argmax(1) == s["labels"]
            new = s["unseen"][s["labels"]]
            right["unseen"] += hit[new].tolist()
            right["seen"] += hit[~new].tolist()
        if not right["seen"] or not right["unseen"]:
            raise ConfigError("choosing a bias needs samples of seen and of held-out classes")
        seen, unseen = float(np.mean(right["seen"])), float(np.mean(right["unseen"]))
        harmonic = 2 * seen * unseen / (seen + unseen) if seen + unseen else 0.0
        table.append({"bias": float(bias), "seen": seen, "unseen": unseen, "harmonic": harmonic})
    best = max(table, key=lambda r: (round(r["harmonic"], 9), -r["bias"]))
    return best["bias"], table


def calibrated_stacking(runs: Sequence[Path], kinds: Sequence[str] = ("fused", "text"), choose_on: str = "val",
                        splits: Sequence[str] = ("val", "test")) -> list[dict[str, Any]]:
    """For each run and kind of evidence: the never-seen-class bias chosen on the whole-list `choose_on` samples of
    the runs that share none of its held-out classes (as `leave_classes_out`), and its own whole list of each of
    `splits` scored at bias 0 and at that bias (generalized zero-shot: seen, unseen, harmonic mean). Written to
    the run's evaluation folder, <last split>/all-calibrated-stacking.json; a run without donors is skipped."""
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise ConfigError("calibrated stacking across runs needs at least two zero-shot runs")
    chosen_on = {(r, k): whole_list_scores(r, choose_on, k) for r in runs for k in kinds}
    held_out = {r: {c for c, u in zip(chosen_on[r, kinds[0]]["classes"], chosen_on[r, kinds[0]]["unseen"],
                                      strict=True) if u} for r in runs}
    out = []
    for run in runs:
        held = held_out[run]
        donors = [r for r in runs if r != run and not held & held_out[r]]
        if not donors:
            out.append({"run": str(run), "held_out": sorted(held), "skipped": f"{run}: no run without its classes"})
            continue
        result: dict[str, Any] = {"run": str(run), "held_out": sorted(held), "chosen_on": choose_on,
                                  "donors": [str(r) for r in donors], "kinds": {}}
        for kind in kinds:
            bias, table = choose_bias([chosen_on[r, kind] for r in donors])
            scored = {}
            for split in splits:
                s = whole_list_scores(run, split, kind)
                scored[split] = {f"at_{name}": generalized_zero_shot(stack(s["scores"], s["unseen"], b), s["labels"],
                                                                     np.flatnonzero(s["unseen"]).tolist())
                                 for name, b in (("0", 0.0), ("bias", bias))}
            result["kinds"][kind] = {"bias": bias, "table": table, **scored}
        saved = evaluation_dir(resolve_run(run)) / splits[-1] / STACKING_RESULT
        atomic_write_text(saved, json.dumps(result, indent=1))
        out.append({**result, "saved": str(saved)})
    if all("skipped" in r for r in out):
        raise ConfigError("; ".join(r["skipped"] for r in out))
    return out
