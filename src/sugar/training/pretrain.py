"""Stage 2: train the skeleton encoder against the knowledge texts (MIL-NCE), a CE head, or both.

`pretrain(cfg, run_dir)` opens the dataset, embeds the knowledge, and calls `train(...)`, which is the whole
loop in one function: SGD with linear warm-up and step decay, AMP on GPU, one checkpoint per epoch, model
selection on the validation part, and a single test evaluation at the end (report.json). It runs in one
process or under `torchrun --nproc_per_node N` (DDP).

Distributed MIL-NCE: every rank computes the loss of its own samples against the texts of the classes
present in the GLOBAL batch (labels are all-gathered), divides by the global batch size and multiplies by
the world size, so that DDP's gradient averaging yields exactly the gradient of the single-process loss on
the same global batch. BatchNorm statistics are synchronised across ranks (SyncBatchNorm on GPU,
DistBatchNorm on CPU), and a DistributedSampler orders the data identically for any world size, so a
2-process run reproduces a 1-process run of the same global batch up to floating-point rounding.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from sugar.config import PretrainConfig, save_config, to_dict
from sugar.errors import ConfigError, DataError
from sugar.fileio import atomic_write_text
from sugar.models.encoder import ProjectionHead, SkeletonEncoder, build_encoder, save_encoder
from sugar.models.losses import LOSS_MODES, MILNCELoss, text_bank
from sugar.models.text import KnowledgeEmbeddings
from sugar.skeleton.layouts import Layout
from sugar.training.loop import (
    DistInfo,
    MetricsWriter,
    RunDir,
    barrier,
    cleanup_distributed,
    convert_sync_batchnorm,
    rng_state,
    set_rng_state,
    setup_distributed,
    step_lr,
)

# --------------------------------------------------------------------------------------------- model


class PretrainModel(nn.Module):
    """Encoder + the training-only heads: projection to the text space and/or a linear CE classifier."""

    def __init__(self, encoder: SkeletonEncoder, cfg: PretrainConfig, num_classes: int, text_dim: int | None):
        super().__init__()
        if cfg.loss not in LOSS_MODES:
            raise ConfigError(f"loss: {cfg.loss!r} must be one of {LOSS_MODES}")
        self.encoder = encoder
        self.uses_text = "milnce" in cfg.loss
        self.uses_ce = "ce" in cfg.loss.split("+")
        if self.uses_text and text_dim is None:
            raise ConfigError("MIL-NCE needs knowledge text embeddings")
        self.projection = ProjectionHead(encoder.dim, text_dim) if self.uses_text else None
        self.classifier = nn.Linear(encoder.dim, num_classes) if self.uses_ce else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, 0, (2.0 / num_classes) ** 0.5)
            nn.init.zeros_(self.classifier.bias)
        self.milnce = MILNCELoss(cfg.temperature, cfg.learn_temperature) if self.uses_text else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.encoder(x)
        out = {"pooled": tokens.mean(1)}
        if self.projection is not None:
            out["features"] = self.projection(tokens)
        if self.classifier is not None:
            out["logits"] = self.classifier(out["pooled"])
        return out


# --------------------------------------------------------------------------------------------- data


@dataclass
class PretrainData:
    """Everything `train` needs from the data side; labels index `classes` (the dataset's full class list)."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None
    classes: list[str]
    layout: Layout
    in_channels: int
    seen: list[int]  # class indices present in training (all minus the zero-shot held-out ones)
    texts: KnowledgeEmbeddings | None  # rows aligned with `classes`


def _seeded_subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])  # type: ignore[arg-type]
    return Subset(ds, keep.tolist())


def resolve_exclusions(cfg: PretrainConfig, classes: list[str]) -> PretrainConfig:
    """Turn `unseen_classes: K` into the explicit held-out list (seeded), so config.yaml records it."""
    from sugar.evaluation import choose_unseen_classes

    unknown = [c for c in cfg.exclude_classes if c not in classes]
    if unknown:
        raise ConfigError(f"exclude_classes: {unknown} are not classes of {cfg.data.dataset}")
    if cfg.unseen_classes and not cfg.exclude_classes:
        cfg = replace(cfg, exclude_classes=tuple(choose_unseen_classes(classes, cfg.unseen_classes, cfg.seed)))
    return cfg


def open_split(cfg: PretrainConfig, split: str, exclude: tuple[str, ...] = (), dataset: str | None = None,
               protocol: str | None = None, root: str | None = None, layout: Layout | None = None):
    """A split of the config's dataset, or of another one (its own default root/protocol unless given).

    layout: the model's joint layout; another dataset's samples are converted to it by joint name."""
    from sugar.skeleton.datasets import open_dataset

    name = dataset or cfg.data.dataset
    same = name == cfg.data.dataset
    ds = open_dataset(name, root=root if root is not None else (cfg.data.root if same else None),
                      protocol=protocol if protocol is not None else (cfg.data.protocol if same else None),
                      split=split, seed=cfg.seed, val_fraction=cfg.data.val_fraction, exclude_classes=exclude)
    return ds.as_layout(layout) if layout is not None else ds


def tensor_dataset(cfg: PretrainConfig, ds: Any, train: bool, seed: int | None = None) -> Dataset:
    from sugar.skeleton.torchdata import SkeletonTensorDataset
    from sugar.skeleton.transforms import build_transform

    transform = build_transform(cfg.data, ds.layout, train=train)
    return SkeletonTensorDataset(ds, transform, cfg.seed if seed is None else seed)


def load_texts(cfg: PretrainConfig, classes: list[str], device: str = "cpu") -> KnowledgeEmbeddings:
    from sugar.knowledge.schema import load_knowledge
    from sugar.models.text import embed_knowledge

    knowledge = load_knowledge(cfg.knowledge or cfg.data.dataset)
    return embed_knowledge(knowledge, cfg.model.text_model, device).subset(list(classes))


def build_data(cfg: PretrainConfig, info: DistInfo | None = None) -> tuple[PretrainConfig, PretrainData]:
    """Open train/val/test with the config's transforms and embed the knowledge (rank 0 fills the cache)."""
    train_raw = open_split(cfg, "train")
    classes = list(train_raw.classes)
    if cfg.data.protocol is None and getattr(train_raw, "protocol", None):
        cfg = replace(cfg, data=replace(cfg.data, protocol=train_raw.protocol))  # record the default
    cfg = resolve_exclusions(cfg, classes)
    if cfg.exclude_classes:  # labels keep indexing the full list: texts, heads and reports follow it
        train_raw = open_split(cfg, "train", cfg.exclude_classes).with_classes(classes)
    if len(train_raw) == 0:
        raise DataError(cfg.data.root or cfg.data.dataset, "the training split is empty")
    val_raw = (open_split(cfg, "val", cfg.exclude_classes).with_classes(classes)
               if cfg.data.val_fraction > 0 else None)
    test_raw = open_split(cfg, "test")
    in_channels = int(train_raw[0].joints.shape[-1])
    texts = None
    if cfg.loss != "ce" or cfg.knowledge:
        text_device = "cuda" if torch.cuda.is_available() else "cpu"
        if info is not None and info.distributed and not info.is_main:
            barrier(info)  # rank 0 computes and caches the embeddings first
            texts = load_texts(cfg, classes, text_device)
        else:
            texts = load_texts(cfg, classes, text_device)
            if info is not None:
                barrier(info)
    excluded = set(cfg.exclude_classes)
    data = PretrainData(
        train=_seeded_subset(tensor_dataset(cfg, train_raw, True), cfg.max_train_samples, cfg.seed),
        val=tensor_dataset(cfg, val_raw, False) if val_raw is not None and len(val_raw) else None,
        test=tensor_dataset(cfg, test_raw, False) if len(test_raw) else None,
        classes=classes, layout=train_raw.layout, in_channels=in_channels,
        seen=[i for i, c in enumerate(classes) if c not in excluded], texts=texts)
    return cfg, data


# --------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def collect(model: PretrainModel, loader: DataLoader, device: torch.device) -> dict[str, np.ndarray]:
    """Run the model over a loader: pooled encoder features, projected features, CE logits, labels."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {}
    for x, y in loader:
        res = model(x.to(device, non_blocking=True).float())
        res["labels"] = torch.as_tensor(y)
        for k, v in res.items():
            out.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def scores_from(outputs: dict[str, np.ndarray], texts: KnowledgeEmbeddings | None, cfg: PretrainConfig,
                head: str) -> np.ndarray:
    """[N, K] class scores: cosine similarity to the class text prototypes ("text") or CE logits ("ce")."""
    if head == "text":
        if texts is None or "features" not in outputs:
            raise ConfigError("this run has no text head (trained with loss=ce)")
        protos = texts.prototypes(cfg.use_motion, cfg.use_visual).numpy()
        return outputs["features"] @ protos.T
    if "logits" not in outputs:
        raise ConfigError("this run has no CE head (trained without 'ce' in loss)")
    return outputs["logits"]


def main_head(cfg: PretrainConfig) -> str:
    return "text" if "milnce" in cfg.loss else "ce"


def evaluate_split(model: PretrainModel, ds: Dataset, data: PretrainData, cfg: PretrainConfig,
                   device: torch.device, classes: list[int] | None = None) -> dict[str, Any]:
    """top-1/top-5 of the main head on `ds`, restricted to the class indices `classes` (rows and columns)."""
    from sugar.evaluation import restrict, topk_accuracy

    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.data.num_workers)
    outputs = collect(model, loader, device)
    scores = scores_from(outputs, data.texts, cfg, main_head(cfg))
    labels = outputs["labels"]
    if classes is not None:
        scores, labels = restrict(scores, labels, classes)
    return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5),
            "samples": len(labels)}


# --------------------------------------------------------------------------------------------- training


def _loss(model: PretrainModel, out: dict[str, torch.Tensor], y: torch.Tensor, global_labels: torch.Tensor,
          cfg: PretrainConfig, texts: KnowledgeEmbeddings | None, step: int) -> torch.Tensor:
    """Per-sample losses [b] (float32)."""
    total = torch.zeros(len(y), device=y.device)
    if model.milnce is not None:
        assert texts is not None
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        bank, owners = text_bank(texts, torch.unique(global_labels).cpu(), use_motion=cfg.use_motion,
                                 use_visual=cfg.use_visual, mix=cfg.text_mix, generator=gen)
        total = total + model.milnce(out["features"].float(), y, bank.to(y.device), owners.to(y.device))
    if model.classifier is not None:
        total = total + nn.functional.cross_entropy(out["logits"].float(), y, reduction="none")
    return total


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
    device = info.device
    run = RunDir(run_dir)
    if cfg.batch_size % info.world:
        raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {info.world} processes")
    if info.is_main:
        run.create()
        save_config(cfg, run.config_path)
    barrier(info)

    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.model, data.layout, data.in_channels)
    model = PretrainModel(encoder, cfg, len(data.classes), data.texts.dim if data.texts is not None else None)
    if info.distributed and cfg.sync_bn:
        model = convert_sync_batchnorm(model, device)
    model.to(device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("logit_scale") or p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, step, best = 0, 0, {"epoch": 0, "val_top1": -1.0}
    checkpoint = run.load_checkpoint(device)
    if checkpoint is not None:
        start_epoch, weights, state = checkpoint
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        if use_amp and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        step, best = int(state["step"]), json.loads(state["best"])
        if info.is_main:
            run.truncate_metrics(start_epoch)
    ddp: nn.Module = model
    if info.distributed:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    local_batch = cfg.batch_size // info.world
    sampler = DistributedSampler(data.train, num_replicas=info.world, rank=info.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(data.train, batch_size=local_batch, sampler=sampler, num_workers=cfg.data.num_workers,
                        drop_last=len(sampler) > local_batch, pin_memory=device.type == "cuda")
    steps_per_epoch = len(loader)
    writer = MetricsWriter(run, purge_step=step if checkpoint else None) if info.is_main else None
    texts = data.texts
    if texts is not None:
        texts = KnowledgeEmbeddings(texts.labels, texts.motion.to(device), texts.visual.to(device),
                                    texts.visual_owner.to(device))
    seen = data.seen if len(data.seen) < len(data.classes) else None

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t0 = time.time()
        sampler.set_epoch(epoch)
        for ds in (data.train, getattr(data.train, "dataset", None)):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
        ddp.train()
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        batches = loader
        if progress and info.is_main:
            from tqdm import tqdm

            batches = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
        for x, y in batches:
            lr = step_lr(step, steps_per_epoch, cfg.lr, cfg.warmup_epochs, cfg.lr_steps, cfg.lr_decay)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(device, non_blocking=True).float(), torch.as_tensor(y).to(device, non_blocking=True).long()
            global_labels = _gather_labels(y, info)
            autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
            with autocast:
                out = ddp(x)
            per_sample = _loss(model, out, y, global_labels, cfg, texts, step)
            loss = per_sample.sum() / len(global_labels) * info.world
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += torch.stack([per_sample.detach().sum().double(),
                                     torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
            step += 1
        if info.distributed:
            dist.all_reduce(loss_sum)
        record: dict[str, Any] = {"epoch": epoch, "lr": lr if steps_per_epoch else cfg.lr,
                                  "loss": float(loss_sum[0] / loss_sum[1].clamp_min(1)), "val_top1": None,
                                  "val_top5": None}
        if model.milnce is not None:
            record["temperature"] = model.milnce.temperature
        if info.is_main:
            if data.val is not None:
                val = evaluate_split(model, data.val, data, cfg, device, seen)
                record["val_top1"], record["val_top5"] = val["top1"], val["top5"]
            score = record["val_top1"] if record["val_top1"] is not None else float(epoch)  # no val: keep the last
            weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            if score > best["val_top1"]:
                best = {"epoch": epoch, "val_top1": score}
                run.save_best(weights, best)
            record["time"] = round(time.time() - t0, 3)
            assert writer is not None
            writer.epoch(record, step)
            state = {"optimizer": optimizer.state_dict(), "rng": rng_state(), "step": step, "epoch": epoch,
                     "best": json.dumps(best)}
            if use_amp:
                state["scaler"] = scaler.state_dict()
            run.save_checkpoint(epoch, weights, state)
        barrier(info)

    report: dict[str, Any] = {}
    if info.is_main:
        if writer is not None:
            writer.close()
        report = finish(cfg, run, model, data, device)
    barrier(info)
    return report


def finish(cfg: PretrainConfig, run: RunDir, model: PretrainModel, data: PretrainData,
           device: torch.device) -> dict[str, Any]:
    """Load the best checkpoint, export the encoder, evaluate the test split once, write report.json."""
    best = run.load_best(device)
    if best is None:
        raise DataError(run.path, "no checkpoint to finish from (did training run any epoch?)")
    weights, best_info = best
    model.load_state_dict(weights)
    save_encoder(model.encoder, run.path, {"best_epoch": best_info["epoch"], "classes": data.classes})
    report: dict[str, Any] = {"dataset": cfg.data.dataset, "protocol": cfg.data.protocol, "loss": cfg.loss,
                              "best_epoch": best_info["epoch"], "best_val_top1": best_info["val_top1"],
                              "exclude_classes": list(cfg.exclude_classes)}
    if data.test is not None:
        seen = data.seen if len(data.seen) < len(data.classes) else None
        report["test"] = evaluate_split(model, data.test, data, cfg, device, seen)
        unseen = [i for i in range(len(data.classes)) if i not in set(data.seen)]
        if unseen and data.texts is not None and model.projection is not None:
            report["zero_shot"] = evaluate_split(model, data.test, data, cfg, device, unseen)
    from sugar.viz import plot_curves

    plot_curves(run.metrics_path, run.path / "curves.png", title=f"stage 2: {cfg.data.dataset} {cfg.loss}")
    atomic_write_text(run.path / "report.json", json.dumps(report, indent=2))
    return report


def default_run_dir(cfg: PretrainConfig, name: str | None = None) -> Path:
    """runs/pretrain/<name or dataset>[-<protocol>]: fixed, so rerunning the same command resumes the same run."""
    name = (name or cfg.data.dataset) + (f"-{cfg.data.protocol}" if cfg.data.protocol else "")
    return Path("runs") / "pretrain" / name


def check_resume_config(cfg: PretrainConfig, run_dir: Path) -> None:
    """A run directory belongs to one config: refuse to resume it with different settings."""
    from sugar.config import load_config

    path = run_dir / "config.yaml"
    if not path.is_file() or RunDir(run_dir).last_epoch() is None:
        return
    old = to_dict(load_config(PretrainConfig, path))
    new = to_dict(cfg)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k != "epochs")
    if changed:
        raise ConfigError(f"{path}: this run was started with different settings ({', '.join(changed)}); "
                          "use another --run-dir or the same settings to resume")


def pretrain(cfg: PretrainConfig, run_dir: str | Path | None = None, progress: bool = True,
             name: str | None = None) -> dict[str, Any]:
    """The `sugar pretrain` entry: data + knowledge from the config, then `train` (single process or DDP).

    Without `run_dir` the run goes to runs/pretrain/<name or dataset>-<protocol> (name: the config file's stem).
    """
    info = setup_distributed()
    try:
        torch.manual_seed(cfg.seed)
        cfg, data = build_data(cfg, info)
        run_path = Path(run_dir) if run_dir else default_run_dir(cfg, name)
        check_resume_config(cfg, run_path)
        return train(cfg, run_path, data, info, progress=progress)
    finally:
        cleanup_distributed()
