"""Evaluate a finished stage-2 run: text-similarity and CE heads, zero-shot views, confusion matrix, t-SNE.

The text head scores a sample by cosine similarity between its projected feature and each class's text
prototype (the normalised mean of the class's motion and visual embeddings), so it works for classes never
seen in training and for other datasets whose knowledge file exists. Pictures: a confusion matrix per head
and view, and a side-by-side t-SNE of the test features of the randomly initialised encoder (the run's seed)
and of the trained one (the paper's Figure 5). `--multi-clip N` averages the scores
of N views: the deterministic test view plus N-1 random temporal crops (training crop range, no rotation).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from sugar.config import PretrainConfig, load_config
from sugar.errors import SugarError
from sugar.evaluation import classification_report, restrict
from sugar.fileio import atomic_write_text
from sugar.models.encoder import ENCODER_META, build_encoder
from sugar.skeleton.layouts import Layout
from sugar.training.loop import RunDir
from sugar.training.pretrain import PretrainModel, collect, load_texts, open_split, tensor_dataset
from sugar.viz import plot_confusion, plot_tsne


def res_name(cfg: PretrainConfig, dataset: str | None) -> str:
    return dataset or cfg.data.dataset


def load_run(run_dir: str | Path, device: str | torch.device = "cpu",
             random_init: bool = False) -> tuple[PretrainModel, PretrainConfig, dict]:
    """The full training model (encoder + heads) of a run at its best checkpoint (or freshly initialised)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / ENCODER_META).is_file():
        raise SugarError(f"{run_dir}: not a finished `sugar pretrain` run (config.yaml/encoder.json missing)")
    cfg = load_config(PretrainConfig, run_dir / "config.yaml")
    meta = json.loads((run_dir / ENCODER_META).read_text())
    layout = Layout.from_dict(meta["layout"], source=str(run_dir / ENCODER_META))
    classes = meta.get("classes") or []
    torch.manual_seed(cfg.seed)  # random_init: the same initial weights the run started from
    encoder = build_encoder(cfg.model, layout, int(meta["in_channels"]))
    text_dim = None
    best = RunDir(run_dir).load_best(device)
    if best is None:
        raise SugarError(f"{run_dir}: no best checkpoint (checkpoints/best.safetensors)")
    weights, _ = best
    if "projection.linear.weight" in weights:
        text_dim = int(weights["projection.linear.weight"].shape[0])
    model = PretrainModel(encoder, cfg, len(classes), text_dim)
    if not random_init:
        model.load_state_dict(weights)
    return model.to(device).eval(), cfg, meta


def _views(cfg: PretrainConfig, ds: Any, multi_clip: int) -> list[Any]:
    views = [tensor_dataset(cfg, ds, train=False)]
    if multi_clip > 1:
        crop_cfg = replace(cfg, data=replace(cfg.data, random_rotate=0.0))
        views += [tensor_dataset(crop_cfg, ds, train=True, seed=1000 + i) for i in range(multi_clip - 1)]
    return views


def evaluate_run(run_dir: str | Path, split: str = "test", multi_clip: int = 1, dataset: str | None = None,
                 protocol: str | None = None, root: str | None = None, out_dir: str | Path | None = None,
                 tsne: bool = True, batch_size: int | None = None) -> dict[str, Any]:
    """Score `split` with every head the run has; write results.json, confusion PNG(s) and t-SNE PNGs."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, cfg, _ = load_run(run_dir, device)
    ds = open_split(cfg, split, dataset=dataset, protocol=protocol, root=root, layout=model.encoder.layout)
    if len(ds) == 0:
        raise SugarError(f"{run_dir}: the {split} split of {dataset or cfg.data.dataset} is empty")
    classes = list(ds.classes)
    other = dataset is not None and dataset != cfg.data.dataset
    out_dir = Path(out_dir) if out_dir else Path(run_dir) / "evaluation" / (f"{dataset}-{split}" if other else split)
    out_dir.mkdir(parents=True, exist_ok=True)
    bs = batch_size or min(cfg.batch_size, 64)

    outputs: list[dict[str, np.ndarray]] = []
    for view in _views(cfg, ds, multi_clip):
        outputs.append(collect(model, DataLoader(view, batch_size=bs, num_workers=cfg.data.num_workers), device))
    labels = outputs[0]["labels"].astype(np.int64)
    heads: dict[str, np.ndarray] = {}
    if model.projection is not None:
        if other:
            eval_cfg = replace(cfg, knowledge=None, data=replace(cfg.data, dataset=dataset))
            texts = load_texts(eval_cfg, classes, device.type)
        else:
            texts = load_texts(cfg, classes, device.type)
        protos = texts.prototypes(cfg.use_motion, cfg.use_visual).numpy()
        heads["text"] = np.mean([o["features"] @ protos.T for o in outputs], axis=0)
    if model.classifier is not None and not other:
        heads["ce"] = np.mean([o["logits"] for o in outputs], axis=0)
    if not heads:
        raise SugarError(f"{run_dir}: the CE head only knows {cfg.data.dataset}'s classes; no text head to use")

    unseen = [i for i, c in enumerate(classes) if c in set(cfg.exclude_classes)] if not other else []
    seen = [i for i in range(len(classes)) if i not in set(unseen)]
    results: dict[str, Any] = {"run": str(run_dir), "dataset": dataset or cfg.data.dataset, "split": split,
                               "multi_clip": multi_clip, "samples": len(labels), "heads": {}, "pictures": {}}
    for head, scores in heads.items():
        views = {"all": (scores, labels, classes)}
        if unseen:
            s, y = restrict(scores, labels, seen)
            views["seen"] = (s, y, [classes[i] for i in seen])
            if head == "text":
                s, y = restrict(scores, labels, unseen)
                views["zero_shot"] = (s, y, [classes[i] for i in unseen])
        results["heads"][head] = {}
        for name, (s, y, names) in views.items():
            rep = classification_report(s, y, names)
            results["heads"][head][name] = rep
            png = out_dir / f"confusion-{head}-{name}.png"
            plot_confusion(np.asarray(rep["confusion"]), names, png,
                           title=f"{head} head, {name} ({rep['top1'] * 100:.1f}% top-1)")
            results["pictures"][png.name] = str(png)
    if tsne:
        random_model, _, _ = load_run(run_dir, device, random_init=True)
        before = collect(random_model, DataLoader(_views(cfg, ds, 1)[0], batch_size=bs), device)["pooled"]
        png = out_dir / "tsne.png"
        plot_tsne(before, outputs[0]["pooled"], labels, classes, png,
                  title=f"{res_name(cfg, dataset)} {split}: encoder features (time-averaged), t-SNE",
                  names=("random initialisation", "after training"), seed=cfg.seed)
        results["pictures"][png.name] = str(png)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2))
    results["out_dir"] = str(out_dir)
    return results
