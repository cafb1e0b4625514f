"""`sugar evaluate` for a stage-3 run: the LLM recogniser on a split of its own dataset or of another one.

Another dataset means a new action list (zero-shot, cross-dataset): its class names are the candidates, its
knowledge file gives the descriptions, and its skeletons are converted to the encoder's layout by joint name.
A run trained with held-out classes is scored on seen classes (seen list) and on the held-out ones (their list).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import ConfigError, SugarError
from sugar.evaluation import classification_report
from sugar.fileio import atomic_write_text

NO_MATCH = "(no match)"


def _scores(rec: Any, samples: list, actions: list[str], mode: str, batch_size: int,
            knowledge: dict[str, str], rank_by: str | None) -> np.ndarray:
    """[N, K] scores, rank mode's softmax over the list; generate mode: [N, K + 1], the matched label (or the
    last column, NO_MATCH, when the answer matched no list entry) above every listed score."""
    out = np.zeros((len(samples), len(actions) + (mode == "generate")), dtype=np.float64)
    results = rec.recognize(samples, actions=actions, knowledge=knowledge, mode=mode, batch_size=batch_size,
                            describe=False, top_k=len(actions), rank_by=rank_by)
    for row, r in enumerate(results):
        for label, score in r.get("top5") or []:
            out[row, actions.index(label)] = score
        if mode == "generate":
            out[row, actions.index(r["label"]) if r["label"] is not None else -1] += 2.0
    return out


def evaluate_recognizer_run(run_dir: str | Path, split: str = "test", dataset: str | None = None,
                            protocol: str | None = None, root: str | None = None, mode: str = "rank",
                            out_dir: str | Path | None = None, batch_size: int = 16,
                            limit: int | None = None, progress: bool = True, rank_by: str | None = None,
                            ) -> dict[str, Any]:
    """Score `split` with the recogniser; write results.json and confusion PNGs; return the report.

    rank_by: None = the run's setting; "answer" scores each entry's knowledge description too (the run's
    knowledge file for its own dataset, the other dataset's shipped file for --dataset)."""
    from sugar.config import PretrainConfig, load_config
    from sugar.models.recognizer import Recognizer, check_rank_by
    from sugar.training.pretrain import open_split
    from sugar.viz import plot_confusion

    check_rank_by(rank_by, "--rank-by")  # before minutes of loading
    run_dir = Path(run_dir)
    rec = Recognizer.load(run_dir)
    if rec.encoder is None or not rec.cfg.encoder_run:
        raise SugarError(f"{run_dir}: the recogniser has no encoder run to read skeletons with")
    pcfg = load_config(PretrainConfig, Path(rec.cfg.encoder_run) / "config.yaml")
    ds = open_split(pcfg, split, dataset=dataset, protocol=protocol, root=root, layout=rec.encoder.layout)
    if len(ds) == 0:
        raise SugarError(f"{run_dir}: the {split} split of {dataset or pcfg.data.dataset} is empty")
    other = dataset is not None and dataset != pcfg.data.dataset
    name = dataset or pcfg.data.dataset
    out = Path(out_dir) if out_dir else run_dir / "evaluation" / (f"{dataset}-{split}" if other else split)
    out.mkdir(parents=True, exist_ok=True)

    classes = list(ds.classes)
    positions = np.arange(len(ds)) if limit is None else np.random.default_rng(0).permutation(len(ds))[:limit]
    labels = ds.labels[positions]
    held_out = set(rec.cfg.exclude_classes) if not other else set()
    groups = {"all": [i for i, c in enumerate(classes) if c not in held_out]}
    if held_out:
        groups = {"seen": groups["all"], "zero_shot": [i for i, c in enumerate(classes) if c in held_out]}

    rank_by = rank_by or rec.cfg.rank_by
    knowledge = _descriptions(rec, name, other, classes) if rank_by == "answer" else {}
    report: dict[str, Any] = {"run": str(run_dir), "dataset": name, "split": split, "mode": mode,
                              "rank_by": rank_by, "llm": rec.cfg.llm, "views": {}, "pictures": {}}
    loaded = _load(ds, positions, progress)
    for view, keep in groups.items():
        rows = np.flatnonzero(np.isin(labels, keep))
        if not len(rows):
            continue
        actions = [classes[i] for i in keep]
        samples = [loaded[r] for r in rows]
        y = np.array([keep.index(int(labels[r])) for r in rows])
        names = [*actions, NO_MATCH] if mode == "generate" else actions
        rep = classification_report(_scores(rec, samples, actions, mode, batch_size, knowledge, rank_by), y, names)
        if mode == "generate":
            rep["unmatched"] = int(np.asarray(rep["confusion"])[:, -1].sum())
        report["views"][view] = rep
        png = out / f"confusion-llm-{view}.png"
        plot_confusion(np.asarray(rep["confusion"]), names, png,
                       title=f"LLM recogniser ({mode}), {name} {split} {view} ({rep['top1'] * 100:.1f}% top-1)")
        report["pictures"][png.name] = str(png)
    report["out_dir"] = str(out)
    atomic_write_text(out / "results.json", json.dumps(report, indent=1))
    return report


def _descriptions(rec: Any, dataset: str, other: bool, classes: list[str]) -> dict[str, str]:
    """label -> description of `classes` for rank_by="answer": the run's knowledge, or the other dataset's."""
    from dataclasses import replace

    from sugar.training.instruct import load_descriptions

    cfg = replace(rec.cfg, knowledge=None) if other else rec.cfg
    if cfg.knowledge == "none":
        raise ConfigError("rank_by=answer needs knowledge descriptions; this run was tuned with knowledge=none")
    return load_descriptions(cfg, dataset, classes)


def _load(ds: Any, positions: np.ndarray, progress: bool) -> list:
    items = (ds[int(p)] for p in positions)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(positions), desc="reading samples")
    return list(items)
