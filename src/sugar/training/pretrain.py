"""Stage 2: train the skeleton encoder against the knowledge texts (MIL-NCE), a CE head, or both.

`pretrain(cfg, run_dir)` opens the dataset, embeds the knowledge, and calls `train(...)`, which supplies the
model, loss, CTR-GCN's schedule (linear warm-up, step decay) and validation to the shared loop frame
(sugar.training.loop.Trainer: checkpoints, resume, AMP on GPU, model selection), then evaluates the test split
once (report.json). It runs in one process or under `torchrun --nproc_per_node N` (DDP).

Distributed MIL-NCE: every rank computes the loss of its own samples against the texts of the classes
present in the GLOBAL batch (labels are all-gathered), divides by the global batch size and multiplies by
the world size, so that DDP's gradient averaging yields exactly the gradient of the single-process loss on
the same global batch. BatchNorm statistics are synchronised across ranks (SyncBatchNorm on GPU,
DistBatchNorm on CPU), and the loop frame's ShardedBatches orders the data identically for any world size, so a
2-process run reproduces a 1-process run of the same global batch up to floating-point rounding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from sugar.config import PretrainConfig, save_config
from sugar.errors import ConfigError, DataError
from sugar.evaluation.encoder import HEADS, evaluate_heads, evaluate_split, load_texts, main_head, text_scorer
from sugar.evaluation.metrics import choose_unseen_classes
from sugar.fileio import atomic_write_text
from sugar.models.encoder import build_encoder, save_pretrained
from sugar.models.heads import EncoderWithHeads
from sugar.models.losses import text_bank
from sugar.models.text import KnowledgeEmbeddings
from sugar.runs import RunDir
from sugar.skeleton.datasets import DataSource
from sugar.skeleton.processor import Processor
from sugar.skeleton.torchdata import seeded_subset
from sugar.training.loop import (
    DistInfo,
    LoopSpec,
    Trainer,
    barrier,
    check_resume,
    cleanup_distributed,
    convert_sync_batchnorm,
    default_run_dir,
    setup_distributed,
    step_lr,
    writing,
)
from sugar.viz import plot_curves

# --------------------------------------------------------------------------------------------- data


@dataclass
class PretrainData:
    """Everything `train` needs from the data side; labels index `classes` (the dataset's full class list)."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None
    classes: list[str]
    processor: Processor  # how samples become the encoder's input (saved with it)
    source: DataSource  # where the data came from (saved with it)
    seen: list[int]  # class indices present in training (all minus the zero-shot held-out ones)
    texts: KnowledgeEmbeddings | None  # rows aligned with `classes`


def resolve_exclusions(cfg: PretrainConfig, classes: list[str]) -> PretrainConfig:
    """Turn `unseen_classes: K` into the explicit held-out list (seeded), so config.yaml records it."""
    unknown = [c for c in cfg.exclude_classes if c not in classes]
    if unknown:
        raise ConfigError(f"exclude_classes: {unknown} are not classes of {cfg.data.dataset}")
    if cfg.unseen_classes and not cfg.exclude_classes:
        cfg = replace(cfg, exclude_classes=tuple(choose_unseen_classes(classes, cfg.unseen_classes, cfg.seed)))
    return cfg


def data_source(cfg: PretrainConfig) -> DataSource:
    """Where a stage-2 config's data comes from (saved with the encoder)."""
    return DataSource(cfg.data.dataset, cfg.data.protocol, cfg.data.root, cfg.seed, cfg.data.val_fraction,
                      tuple(cfg.exclude_classes), cfg.knowledge, cfg.data.val_min_per_class)


def build_data(cfg: PretrainConfig, info: DistInfo | None = None) -> tuple[PretrainConfig, PretrainData]:
    """Open train/val/test with the config's transforms and embed the knowledge (rank 0 fills the cache)."""
    train_raw = data_source(cfg).open_split("train")
    classes = list(train_raw.classes)
    # record what was resolved: the default protocol, a dataset folder's absolute path, the persons
    cfg = replace(cfg, data=replace(cfg.data, dataset=train_raw.name, protocol=train_raw.protocol))
    if cfg.data.max_persons == 0:
        cfg = replace(cfg, data=replace(cfg.data, max_persons=min(2, max(1, train_raw.max_persons))))
    cfg = resolve_exclusions(cfg, classes)
    source = data_source(cfg)
    if cfg.exclude_classes:  # labels keep indexing the full list: texts, heads and reports follow it
        train_raw = source.open_split("train", cfg.exclude_classes).with_classes(classes)
    if len(train_raw) == 0:
        raise DataError(cfg.data.root or cfg.data.dataset, "the training split is empty")
    val_raw = (source.open_split("val", cfg.exclude_classes).with_classes(classes)
               if cfg.data.val_fraction > 0 else None)
    test_raw = source.open_split("test")
    processor = Processor.from_config(cfg.data, train_raw.layout, int(train_raw[0].joints.shape[-1]))
    texts = None
    if cfg.loss != "ce" or cfg.knowledge:
        text_device = "cuda" if torch.cuda.is_available() else "cpu"
        if info is not None and info.distributed and not info.is_main:
            barrier(info)  # rank 0 computes and caches the embeddings first
            texts = load_texts(source.knowledge_file, cfg.model.text_model, classes, text_device)
        else:
            texts = load_texts(source.knowledge_file, cfg.model.text_model, classes, text_device)
            if info is not None:
                barrier(info)
    excluded = set(cfg.exclude_classes)
    train_set, _ = seeded_subset(processor.dataset(train_raw, True, cfg.seed, cfg.data.repeat), cfg.max_train_samples,
                                 cfg.seed)
    data = PretrainData(
        train=train_set,
        val=processor.dataset(val_raw, False, cfg.seed) if val_raw is not None and len(val_raw) else None,
        test=processor.dataset(test_raw, False, cfg.seed) if len(test_raw) else None,
        classes=classes, processor=processor, source=source,
        seen=[i for i, c in enumerate(classes) if c not in excluded], texts=texts)
    return cfg, data


# --------------------------------------------------------------------------------------------- training


def _loss(model: EncoderWithHeads, out: dict[str, torch.Tensor], y: torch.Tensor, global_labels: torch.Tensor,
          cfg: PretrainConfig, texts: KnowledgeEmbeddings | None, step: int, seen: list[int]) -> torch.Tensor:
    """Per-sample losses [b] (float32). seen: the training classes (the candidates of text_negatives=all)."""
    with torch.autocast(y.device.type, enabled=False):  # fp32 losses under bf16 autocast (see EncoderWithHeads)
        return _milnce_loss(model, out, y, global_labels, cfg, texts, step, seen) + _ce_loss(model, out, y)


def _milnce_loss(model: EncoderWithHeads, out: dict[str, torch.Tensor], y: torch.Tensor, global_labels: torch.Tensor,
                 cfg: PretrainConfig, texts: KnowledgeEmbeddings | None, step: int, seen: list[int]) -> torch.Tensor:
    total = torch.zeros(len(y), device=y.device)
    if model.milnce is not None:
        assert texts is not None
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        candidates = torch.tensor(seen) if cfg.text_negatives == "all" else torch.unique(global_labels).cpu()
        bank, owners = text_bank(texts, candidates, use_motion=cfg.use_motion,
                                 use_visual=cfg.use_visual, mix=cfg.text_mix, generator=gen)
        total = total + model.milnce(out["features"].float(), y, bank.to(y.device), owners.to(y.device))
    return total


def _ce_loss(model: EncoderWithHeads, out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    if model.classifier is None:
        return torch.zeros(len(y), device=y.device)
    return nn.functional.cross_entropy(out["logits"].float(), y, reduction="none")


def _evaluate(model: EncoderWithHeads, ds: Dataset, data: PretrainData, cfg: PretrainConfig, device: torch.device,
              classes: list[int] | None) -> dict[str, Any]:
    """The main head on `ds` (validation and the final test use the same scoring as `sugar evaluate`)."""
    scorer = text_scorer(model, cfg, data.texts) if data.texts is not None else None
    return evaluate_split(model, ds, main_head(cfg.loss), scorer, device, cfg.batch_size, classes, cfg.data.num_workers)


def _field_test(model: EncoderWithHeads, data: PretrainData, cfg: PretrainConfig, device: torch.device,
                classes: list[int] | None) -> dict[str, float]:
    """Each head's test top-1 now, under the field's reporting (`score_test_each_epoch`); never selects."""
    scorer = text_scorer(model, cfg, data.texts) if data.texts is not None else None
    heads = [h for h, used in {"text": model.uses_text, "ce": model.uses_ce}.items() if used]
    scores = evaluate_heads(model, data.test, heads, scorer, device, cfg.batch_size, classes, cfg.data.num_workers)
    return {f"field_test_top1_{head}": res["top1"] for head, res in scores.items()}


def field_protocol(metrics: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per head: the best per-epoch test top-1 and its epoch (what CTR-GCN's main.py publishes) and the last."""
    out: dict[str, dict[str, Any]] = {}
    for head in HEADS:
        key = f"field_test_top1_{head}"
        rows = [(m["epoch"], m[key]) for m in metrics if m.get(key) is not None]
        if rows:
            epoch, best = max(rows, key=lambda r: r[1])  # the first epoch reaching the best, as main.py keeps
            out[head] = {"best_top1": best, "best_epoch": epoch, "last_top1": rows[-1][1], "epochs": len(rows)}
    return out


def _gather_labels(y: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if not info.distributed:
        return y
    parts = [torch.empty_like(y) for _ in range(info.world)]
    dist.all_gather(parts, y)
    return torch.cat(parts)


def train(cfg: PretrainConfig, run_dir: str | Path, data: PretrainData, info: DistInfo | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train (or resume) into `run_dir`; returns the final report (also written to report.json)."""
    info = info or setup_distributed()
    run = RunDir(run_dir)
    with writing(run, info):
        return _train(cfg, run, data, info, progress)


def _train(cfg: PretrainConfig, run: RunDir, data: PretrainData, info: DistInfo, progress: bool) -> dict[str, Any]:
    device = info.device
    if info.is_main:
        run.create()
        save_config(cfg, run.config_path)
    barrier(info)

    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.model, data.processor.layout, data.processor.in_channels)
    model = EncoderWithHeads(encoder, cfg, len(data.classes), data.texts.dim if data.texts is not None else None)
    if info.distributed and cfg.sync_bn:
        model = convert_sync_batchnorm(model, device)
    model.to(device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("logit_scale") or p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    ddp: nn.Module = model
    if info.distributed:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    texts = data.texts.to(device) if data.texts is not None else None
    seen = data.seen if len(data.seen) < len(data.classes) else None
    steps = [0]  # optimizer steps so far: seeds each step's text mix

    def loss_fn(net: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y = batch
        x, y = x.to(device, non_blocking=True).float(), torch.as_tensor(y).to(device, non_blocking=True).long()
        global_labels = _gather_labels(y, info)
        per_sample = _loss(model, net(x), y, global_labels, cfg, texts, steps[0], data.seen)
        steps[0] += 1
        # the global mean's gradient once DDP averages over processes
        return per_sample.sum() / len(global_labels) * info.world, per_sample.detach().sum(), len(y)

    def validate(epoch: int) -> dict[str, Any]:
        record: dict[str, Any] = {"val_top1": None, "val_top5": None}
        if data.val is not None:
            val = _evaluate(model, data.val, data, cfg, device, seen)
            record.update(val_top1=val["top1"], val_top5=val["top5"])
        if cfg.score_test_each_epoch and data.test is not None:
            record.update(_field_test(model, data, cfg, device, seen))
        if model.milnce is not None:
            record["temperature"] = model.milnce.temperature
        return record

    def lr_at(step: int, steps_per_epoch: int, total: int) -> float:
        steps[0] = step
        return step_lr(step, steps_per_epoch, cfg.lr, cfg.warmup_epochs, cfg.lr_steps, cfg.lr_decay)

    spec = LoopSpec(cfg.epochs, cfg.batch_size, cfg.seed, drop_last=True, amp=cfg.amp, cpu_bf16=cfg.cpu_bf16,
                    num_workers=cfg.data.num_workers, desc="epoch", ema_decay=cfg.ema_decay,
                    keep=cfg.keep)
    trainer = Trainer(run, info, spec, model=ddp, optimizer=optimizer, train_set=data.train, collate_fn=None,
                      loss_fn=loss_fn, lr_at=lr_at, weights=model.state_dict, load_weights=model.load_state_dict,
                      validate=validate, progress=progress)
    trainer.fit()
    report: dict[str, Any] = {}
    if info.is_main:
        report = finish(cfg, run, model, data, device)
    barrier(info)
    return report


def finish(cfg: PretrainConfig, run: RunDir, model: EncoderWithHeads, data: PretrainData,
           device: torch.device) -> dict[str, Any]:
    """Load the best checkpoint, export the encoder, evaluate the test split once, write report.json."""
    best = run.load_best(device)
    if best is None:
        raise DataError(run.path, "no checkpoint to finish from (did training run any epoch?)")
    weights, best_info = best
    model.load_state_dict(weights)
    save_pretrained(model.encoder, run.path, data.processor, data.source,
                    {"best_epoch": best_info["epoch"], "classes": data.classes})
    report: dict[str, Any] = {"dataset": cfg.data.dataset, "protocol": cfg.data.protocol, "loss": cfg.loss,
                              "best_epoch": best_info["epoch"], "best_val_top1": best_info["val_top1"],
                              "exclude_classes": list(cfg.exclude_classes)}
    if data.test is not None:
        seen = data.seen if len(data.seen) < len(data.classes) else None
        report["test"] = _evaluate(model, data.test, data, cfg, device, seen)
        unseen = [i for i in range(len(data.classes)) if i not in set(data.seen)]
        if unseen and data.texts is not None and model.projection is not None:
            report["zero_shot"] = _evaluate(model, data.test, data, cfg, device, unseen)
    if cfg.score_test_each_epoch:
        report["field_protocol"] = field_protocol(run.read_metrics())
    plot_curves(run.metrics_path, run.path / "curves.png", title=f"stage 2: {cfg.data.dataset} {cfg.loss}")
    atomic_write_text(run.path / "report.json", json.dumps(report, indent=2))
    return report


def pretrain(cfg: PretrainConfig, run_dir: str | Path | None = None, progress: bool = True,
             name: str | None = None) -> dict[str, Any]:
    """The `sugar pretrain` entry: data + knowledge from the config, then `train` (single process or DDP).

    Without `run_dir` the run goes to runs/pretrain/<name or dataset>-<protocol> (name: the config file's stem).
    """
    info = setup_distributed()
    try:
        torch.manual_seed(cfg.seed)
        cfg, data = build_data(cfg, info)
        if Path(cfg.data.dataset).is_absolute():  # a dataset folder: runs are named after it
            name = Path(cfg.data.dataset).name
        run_path = Path(run_dir) if run_dir else default_run_dir("pretrain", name or cfg.data.dataset,
                                                                 cfg.data.protocol)
        check_resume(RunDir(run_path), cfg)
        return train(cfg, run_path, data, info, progress=progress)
    finally:
        cleanup_distributed()
