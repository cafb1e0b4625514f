"""Scoring a stage-2 encoder: its text head (cosine to class text prototypes) and CE head, during training
(validation, the final test) and in `sugar evaluate RUN` alike, so the two can never disagree.

The text head scores a sample by cosine similarity between its projected feature and each class's text
prototype (the normalised mean of the class's motion and visual embeddings), so it works for classes never
seen in training and for other datasets whose knowledge file exists. `evaluate_run` also draws a confusion
matrix per head and view, and a side-by-side t-SNE of the test features of the randomly initialised encoder
(the run's seed) and of the trained one (the paper's Figure 5). `multi_clip=N` averages the scores of N views:
the deterministic test view plus N-1 random temporal crops (training crop range, no rotation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sugar.config import PretrainConfig, load_config
from sugar.errors import ConfigError, SugarError
from sugar.evaluation.metrics import classification_report, restrict, save_scores, topk_accuracy
from sugar.fileio import atomic_write_text
from sugar.knowledge.schema import load_knowledge
from sugar.models.encoder import build_encoder, load_encoder
from sugar.models.heads import EncoderWithHeads
from sugar.models.released import evaluation_dir, resolve_run
from sugar.models.text import KnowledgeEmbeddings, embed_knowledge
from sugar.models.text_scoring import TextScorer, check_text_score
from sugar.runs import RunDir
from sugar.skeleton.datasets import dataset_label, get_benchmark, knowledge_name
from sugar.skeleton.processor import Processor
from sugar.skeleton.torchdata import SkeletonTensorDataset
from sugar.viz import plot_confusion, plot_tsne

HEADS = ("text", "ce")


def main_head(loss: str) -> str:
    """The head a run is selected and reported by: text when it trained MIL-NCE, else CE."""
    return "text" if "milnce" in loss else "ce"


def load_texts(knowledge: str, text_model: str, classes: Sequence[str], device: str = "cpu") -> KnowledgeEmbeddings:
    """Text embeddings of a knowledge file (or dataset name), rows in `classes` order."""
    return embed_knowledge(load_knowledge(knowledge), text_model, device).subset(list(classes))


def text_scorer(model: EncoderWithHeads, cfg: PretrainConfig, texts: KnowledgeEmbeddings,
                mode: str | None = None) -> TextScorer:
    """The run's text-head scoring rule (or `mode`) at the model's current learnt temperature."""
    scale = float(model.milnce.scale().detach()) if model.milnce is not None else 1.0
    return TextScorer.build(texts, mode or cfg.text_score, cfg.use_motion, cfg.use_visual, scale)


@torch.no_grad()
def collect(model: EncoderWithHeads, loader: DataLoader, device: torch.device) -> dict[str, np.ndarray]:
    """Run the model over a loader: pooled encoder features, projected features, CE logits, labels."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {}
    for x, y in loader:
        res = model(x.to(device, non_blocking=True).float())
        res["labels"] = torch.as_tensor(y)
        for k, v in res.items():
            out.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def head_scores(outputs: dict[str, np.ndarray], head: str, text_scorer: TextScorer | None = None) -> np.ndarray:
    """[N, K] class scores: the text head's (cosine units, see TextScorer) or CE logits ("ce")."""
    if head == "text":
        if text_scorer is None or "features" not in outputs:
            raise ConfigError("this run has no text head (trained with loss=ce)")
        return text_scorer(outputs["features"])
    if "logits" not in outputs:
        raise ConfigError("this run has no CE head (trained without 'ce' in loss)")
    return outputs["logits"]


def evaluate_heads(model: EncoderWithHeads, ds: Dataset, heads: Sequence[str], text_scorer: TextScorer | None,
                   device: torch.device, batch_size: int, classes: Sequence[int] | None = None,
                   num_workers: int = 0) -> dict[str, dict[str, Any]]:
    """top-1/top-5 of each head on `ds` from one pass, restricted to the class indices `classes` (rows and
    columns)."""
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    outputs = collect(model, loader, device)
    results = {}
    for head in heads:
        scores, labels = head_scores(outputs, head, text_scorer), outputs["labels"]
        if classes is not None:
            scores, labels = restrict(scores, labels, classes)
        results[head] = {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5),
                         "samples": len(labels)}
    return results


def evaluate_split(model: EncoderWithHeads, ds: Dataset, head: str, text_scorer: TextScorer | None,
                   device: torch.device, batch_size: int, classes: Sequence[int] | None = None,
                   num_workers: int = 0) -> dict[str, Any]:
    """top-1/top-5 of one head on `ds`, restricted to the class indices `classes` (rows and columns)."""
    return evaluate_heads(model, ds, (head,), text_scorer, device, batch_size, classes, num_workers)[head]


# --------------------------------------------------------------------------------------------- `sugar evaluate`


def require_pretrain_run(run_dir: str | Path) -> Path:
    """The run's folder, checked to hold what `load_run` reads (a stage-2 config and a selected checkpoint): an
    encoder folder copied out of a recogniser has neither."""
    run_dir = resolve_run(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise SugarError(f"{run_dir}: not a finished `sugar pretrain` run (config.yaml missing)")
    if not (run_dir / "checkpoints" / "best.safetensors").is_file():
        raise SugarError(f"{run_dir}: no best checkpoint (checkpoints/best.safetensors)")
    return run_dir


def load_run(run_dir: str | Path, device: str | torch.device = "cpu",
             random_init: bool = False) -> tuple[EncoderWithHeads, PretrainConfig, Processor, list[str]]:
    """A finished stage-2 run's encoder + heads at its best checkpoint (or freshly initialised with the run's
    seed: the weights it started from), its config, processor and class list."""
    run_dir = require_pretrain_run(run_dir)
    bundle = load_encoder(run_dir, device)
    cfg = load_config(PretrainConfig, run_dir / "config.yaml")
    classes = list(bundle.meta.get("classes") or [])
    best = RunDir(run_dir).load_best(device)
    if best is None:
        raise SugarError(f"{run_dir}: no best checkpoint (checkpoints/best.safetensors)")
    weights, _ = best
    text_dim = int(weights["projection.linear.weight"].shape[0]) if "projection.linear.weight" in weights else None
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.model, bundle.processor.layout, bundle.processor.in_channels)
    model = EncoderWithHeads(encoder, cfg, len(classes), text_dim)
    if not random_init:
        model.load_state_dict(weights)
    return model.to(device).eval(), cfg, bundle.processor, classes


def scores_folder(split: str, text_score: str | None = None, multi_clip: int = 1) -> str:
    """The evaluation folder of a split's scores; other text rules and multi-clip scores sit beside the plain
    ones instead of overwriting them (the fusion reads each by name)."""
    return split + (f"-text-{text_score}" if text_score else "") + (f"-clips{multi_clip}" if multi_clip > 1 else "")


def _views(processor: Processor, ds: Any, multi_clip: int, seed: int) -> list[Dataset]:
    views: list[Dataset] = [processor.dataset(ds, train=False, seed=seed)]
    if multi_clip > 1:
        still = replace(processor.settings, random_rotate=0.0, random_scale=(1.0, 1.0))  # other clips, same pose
        crops = Processor(processor.layout, processor.in_channels, still, processor.dims)
        views += [SkeletonTensorDataset(ds, crops.transform(train=True), 1000 + i) for i in range(multi_clip - 1)]
    return views


def evaluate_run(run_dir: str | Path, split: str = "test", multi_clip: int = 1, dataset: str | None = None,
                 protocol: str | None = None, root: str | None = None, out_dir: str | Path | None = None,
                 tsne: bool = True, batch_size: int | None = None, knowledge: str | None = None,
                 actions: Sequence[str] | None = None, text_score: str | None = None) -> dict[str, Any]:
    """Score `split` with every head the run has; write results.json, confusion PNG(s) and t-SNE PNGs.

    text_score: the text head's scoring rule instead of the run's (TextScorer); the default output folder
    then ends in -text-<rule>, so the run's own scores are never overwritten.

    dataset/knowledge: another dataset (its class list, its shipped knowledge unless `knowledge` is given) for
    the text head, zero-shot. actions: score against this list instead (the split's samples of listed classes;
    listed classes without samples are candidates too), with `knowledge` for their texts."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run_dir = resolve_run(run_dir)
    model, cfg, processor, _ = load_run(run_dir, device)
    source = load_encoder(run_dir).data
    assert source is not None
    ds = source.open_split(split, dataset=dataset, protocol=protocol, root=root, layout=processor.layout)
    if len(ds) == 0:
        raise SugarError(f"{run_dir}: the {split} split of {dataset or cfg.data.dataset} is empty")
    other = (dataset is not None and get_benchmark(dataset).name != cfg.data.dataset) or actions is not None
    if actions is not None:
        ds = ds.on_list(actions)
    classes = list(ds.classes)
    tag = "list" if actions is not None else dataset_label(dataset) if other and dataset else ""
    name = scores_folder(f"{tag}-{split}" if tag else split, text_score and check_text_score(text_score), multi_clip)
    out_dir = Path(out_dir) if out_dir else evaluation_dir(run_dir) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    bs = batch_size or min(cfg.batch_size, 64)

    outputs = [collect(model, DataLoader(view, batch_size=bs, num_workers=cfg.data.num_workers), device)
               for view in _views(processor, ds, multi_clip, cfg.seed)]
    labels = outputs[0]["labels"].astype(np.int64)
    heads: dict[str, np.ndarray] = {}
    if model.projection is not None:
        texts_from = knowledge or (knowledge_name(dataset) if other and dataset else source.knowledge_file)
        texts = load_texts(texts_from, cfg.model.text_model, classes, device.type)
        scorer = text_scorer(model, cfg, texts, text_score)
        heads["text"] = np.mean([head_scores(o, "text", scorer) for o in outputs], axis=0)
    if model.classifier is not None and not other:
        heads["ce"] = np.mean([head_scores(o, "ce") for o in outputs], axis=0)
    if not heads:
        raise SugarError(f"{run_dir}: the CE head only knows its training classes; no text head to score another "
                         "list with")
    scale = {"text": 1.0 / model.milnce.temperature if model.milnce is not None else 1.0, "ce": 1.0}
    for head, scores in heads.items():  # per-sample scores, for fusing runs (`sugar fuse`)
        save_scores(out_dir / f"scores-{head}.npz", scores * scale[head], labels, ds.names, classes)

    unseen = [i for i, c in enumerate(classes) if c in set(cfg.exclude_classes)] if not other else []
    seen = [i for i in range(len(classes)) if i not in set(unseen)]
    results: dict[str, Any] = {"run": str(run_dir), "dataset": dataset or cfg.data.dataset, "split": split,
                               "multi_clip": multi_clip, "samples": len(labels), "heads": {}, "pictures": {},
                               "text_score": text_score or cfg.text_score}
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
        random_model, _, _, _ = load_run(run_dir, device, random_init=True)
        first_view = _views(processor, ds, 1, cfg.seed)[0]
        before = collect(random_model, DataLoader(first_view, batch_size=bs), device)["pooled"]
        png = out_dir / "tsne.png"
        plot_tsne(before, outputs[0]["pooled"], labels, classes, png,
                  title=f"{dataset or cfg.data.dataset} {split}: encoder features (time-averaged), t-SNE",
                  names=("random initialisation", "after training"), seed=cfg.seed)
        results["pictures"][png.name] = str(png)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2))
    results["out_dir"] = str(out_dir)
    return results
