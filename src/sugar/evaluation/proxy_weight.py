"""A closed-set recogniser's fusion weight chosen on proxy runs that hold out what the test split holds out.

`sugar tune` chooses the weight of the LLM against the encoder's text head on its validation carve, which shares
views and subjects with training. There the LLM is at its most confident, so the carve cannot see how much of that
confidence survives an unseen view or subject: on MSR Action3D every fold of the cross-subject proxy chose the text
head alone (w = 1) on its carve, while the folds' held-out subjects pooled are best fused (docs/RESULTS.md).
Proxy runs are the same recipe tuned on encoders trained without one group of the training data (NW-UCLA
`xview:1>2`, MSR `xsub:OTHERS>S`), each scored on that group by `sugar evaluate PROXY --split test`; their saved
scores, pooled, choose the weight (same grid and tie rule as on validation). The official test split is never
read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sugar.errors import ConfigError
from sugar.evaluation.metrics import load_scores
from sugar.models.evidence import choose_weights
from sugar.models.released import evaluation_dir, resolve_run

WHOLE = "all"  # the view `sugar evaluate` gives a run's whole list (with held-out classes too, if any)


def saved_evidence(run: Path, split: str, view: str = WHOLE) -> dict[str, Any]:
    """The LLM's, the text head's and (when saved: a recogniser with its encoder's classifier) the CE classifier's
    scores of `run` on one view of `split` (what `sugar evaluate` wrote); "text" / "ce" are None without them."""
    folder = evaluation_dir(resolve_run(run)) / split
    llm = load_scores(folder / f"scores-llm-{view}.npz")
    text, ce = (load_scores(path) if (path := folder / f"scores-{kind}-{view}.npz").is_file() else None
                for kind in ("text", "ce"))
    for other in (text, ce):
        if other is not None and (list(llm["classes"]) != list(other["classes"])
                                  or list(llm["names"]) != list(other["names"])):
            raise ConfigError(f"{folder}: the saved scores of the LLM and the encoder's heads cover different "
                              "samples")
    return {"llm": llm["logits"], "text": None if text is None else text["logits"],
            "ce": None if ce is None else ce["logits"],
            "labels": llm["labels"], "classes": [str(c) for c in llm["classes"]]}


def choose_on_proxies(proxies: Sequence[Path], actions: Sequence[str], split: str = "test",
                      with_classifier: bool = True) -> dict[str, Any]:
    """The fusion weights best on the pooled `split` samples of `proxies`, as a recogniser's calibration record:
    the text head's, and the classifier's too when `with_classifier` and every proxy saved CE scores.

    Every proxy must rank the same classes as the recogniser (`actions`): a weight is a property of one recipe on
    one action list."""
    if not proxies:
        raise ConfigError("choosing a fusion weight on proxies needs at least one proxy run")
    sets = []
    for run in proxies:
        scores = saved_evidence(Path(run), split)
        if sorted(scores["classes"]) != sorted(actions):
            raise ConfigError(f"{run}: its {split} scores rank {len(scores['classes'])} classes "
                              f"({', '.join(scores['classes'][:4])}...), not this recogniser's {len(actions)}")
        sets.append((scores["llm"], scores["text"], scores["labels"], scores["ce"] if with_classifier else None))
    (weight, ce_weight), table = choose_weights(sets)
    record = {"split": split, "proxies": [str(p) for p in proxies], "samples": sum(len(s[2]) for s in sets),
              "weight": weight, "table": table}
    if all(s[3] is not None for s in sets):
        record["ce_weight"] = ce_weight
    return record
