"""A fusion weight for classes the LLM never saw, chosen on other runs' held-out classes (leave-classes-out).

A recogniser's own weight (`sugar calibrate`) is chosen on validation samples of the classes it was tuned on,
where its LLM is at its best, so on classes it never saw it trusts the LLM too much (docs/RESULTS.md: seed 3's
fused zero-shot top-1 fell to the LLM's 52.7 % while the text head had 86.8 %). Runs tuned with different
held-out classes (the seeded zero-shot runs) hold validation samples of classes *their* LLM never saw. Run k's
weight is chosen on the held-out classes of every other run whose held-out classes do not overlap k's, so neither
k's classes nor any test sample picks it.

Reads the per-sample scores that `sugar evaluate RUN --split val|test` saves (scores-<llm|text>-zero_shot.npz in
the run's evaluation folder).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sugar.errors import ConfigError
from sugar.evaluation.metrics import classification_report, load_scores
from sugar.fileio import atomic_write_text
from sugar.models.evidence import choose_weight_pooled, fuse
from sugar.models.released import evaluation_dir, resolve_run

VIEW = "zero_shot"  # the view `sugar evaluate` gives a run's held-out classes
RESULT = "zero_shot-leave-classes-out.json"


def unseen_scores(run: Path, split: str) -> dict[str, Any]:
    """The LLM's and the text head's saved scores on `run`'s held-out classes of `split`."""
    folder = evaluation_dir(resolve_run(run)) / split
    llm, text = (load_scores(folder / f"scores-{kind}-{VIEW}.npz") for kind in ("llm", "text"))
    if list(llm["classes"]) != list(text["classes"]) or list(llm["names"]) != list(text["names"]):
        raise ConfigError(f"{folder}: the LLM's and the text head's saved scores cover different samples")
    return {"llm": llm["logits"], "text": text["logits"], "labels": llm["labels"],
            "classes": [str(c) for c in llm["classes"]]}


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
