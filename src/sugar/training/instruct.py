"""Stage 3 training (`sugar tune`): the bridge (TQP) and LoRA adapters on a frozen LLM, encoder frozen.

Inputs are either pre-extracted encoder tokens (`sugar extract` folders train/, val/, test/ under
TuneConfig.features) or skeletons run through the frozen encoder on the fly (with training augmentation).
Run directory conventions are stage 2's (sugar.training.loop): config.yaml, metrics.jsonl (one line per epoch),
TensorBoard events under tb/, checkpoints/ holding only trainable weights (bridge + LoRA) plus optimizer state,
written every epoch and every `checkpoint_every` optimizer steps; a killed run resumes from the newest one.
The best epoch by validation top-1 (rank decoding) is kept; the test split is evaluated once, at the end, with
the selected weights. The finished run directory is loadable with `Recognizer.load(run_dir)`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from sugar.config import PretrainConfig, TuneConfig, load_config, save_config, to_dict
from sugar.errors import ConfigError, DataError, SugarError
from sugar.fileio import atomic_write_text
from sugar.models.recognizer import Recognizer, check_rank_by
from sugar.training.loop import (
    DistInfo,
    MetricsWriter,
    RunDir,
    barrier,
    cleanup_distributed,
    rng_state,
    set_rng_state,
    setup_distributed,
)

SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------------------------- data


class _Relabel(Dataset):
    """Keep the items whose label is in `keep` (original class indices) and renumber labels 0..len(keep)-1."""

    def __init__(self, base: Dataset, labels: np.ndarray, keep: list[int]):
        self.base = base
        new = {c: i for i, c in enumerate(keep)}
        self.index = [i for i, y in enumerate(labels.tolist()) if y in new]
        self.labels = np.array([new[labels[i]] for i in self.index], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.base[self.index[i]][0]
        return x, int(self.labels[i])


class _Features(Dataset):
    """A `sugar extract` folder as (tokens [T', d], label) items."""

    def __init__(self, folder: Path):
        from sugar.features import FeatureStore

        self.store = FeatureStore(folder)
        self.labels = np.array([-1 if s["label"] is None else s["label"] for s in self.store.samples])

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        tokens, label, _ = self.store[i]
        return tokens, -1 if label is None else int(label)


@dataclass
class TuneData:
    """What training needs: class names, splits of (input, label) items, and the encoder when inputs are raw."""

    dataset: str
    classes: list[str]
    splits: dict[str, Dataset]  # each item (tokens [T', d] or skeleton tensor [C, T, V, M], label)
    labels: dict[str, np.ndarray]
    encoder_dim: int
    encoder: nn.Module | None = None  # set when items are skeleton tensors
    data_cfg: Any = None


def features_data(cfg: TuneConfig) -> TuneData:
    """train/ (required), val/ and test/ sub-folders of cfg.features, each written by `sugar extract`."""
    root = Path(cfg.features or "")
    splits: dict[str, Dataset] = {}
    labels: dict[str, np.ndarray] = {}
    classes: list[str] | None = None
    dim = None
    for split in SPLITS:
        folder = root / split
        if not (folder / "index.json").is_file():
            if split == "train":
                raise DataError(folder, "no train features (expected `sugar extract RUN --split train --out "
                                        f"{folder}`)")
            continue
        ds = _Features(folder)
        if classes is not None and ds.store.classes != classes:
            raise DataError(folder, "class list differs from the train features")
        classes, dim = ds.store.classes, ds.store.dim
        splits[split], labels[split] = ds, ds.labels
    assert classes is not None and dim is not None
    index = splits["train"].store.index  # type: ignore[attr-defined]
    return TuneData(str(index.get("dataset")), list(classes), splits, labels, int(dim))


def online_data(cfg: TuneConfig, device: torch.device) -> TuneData:
    """Skeleton splits of the encoder run's dataset (or cfg.dataset), encoded on the fly by the frozen encoder."""
    from sugar.models.encoder import load_encoder
    from sugar.skeleton.datasets import open_dataset
    from sugar.skeleton.torchdata import SkeletonTensorDataset
    from sugar.skeleton.transforms import build_transform

    if not cfg.encoder_run:
        raise ConfigError("tune needs an encoder run (--encoder RUN)")
    encoder, pcfg = load_encoder(cfg.encoder_run, device)
    data_cfg = pcfg.data
    name = cfg.dataset or data_cfg.dataset
    same = name == data_cfg.dataset
    splits: dict[str, Dataset] = {}
    labels: dict[str, np.ndarray] = {}
    classes: list[str] = []
    for split in SPLITS:
        ds = open_dataset(name, root=data_cfg.root if same else None,
                          protocol=cfg.protocol or (data_cfg.protocol if same else None), split=split,
                          seed=pcfg.seed, val_fraction=data_cfg.val_fraction)
        classes = list(ds.classes)
        transform = build_transform(data_cfg, ds.layout, train=split == "train", dims=encoder.in_channels)
        splits[split] = SkeletonTensorDataset(ds, transform, cfg.seed)
        labels[split] = np.asarray(ds.labels)
    return TuneData(name, classes, splits, labels, encoder.dim, encoder, data_cfg)


def load_descriptions(cfg: TuneConfig, dataset: str, classes: list[str]) -> dict[str, str]:
    """label -> description from the knowledge file; {} when cfg.knowledge == "none" (label-only answers)."""
    if cfg.knowledge == "none":
        return {}
    try:
        from sugar.knowledge.schema import load_knowledge
    except ImportError:
        raise ConfigError("the knowledge module (sugar.knowledge.schema) is not installed; set knowledge=none to "
                          "train on labels only") from None
    knowledge = load_knowledge(cfg.knowledge or dataset)
    table = {c.label: c.description for c in knowledge.classes}
    missing = [c for c in classes if c not in table]
    if missing:
        raise ConfigError(f"knowledge {cfg.knowledge or dataset!r} has no entry for {missing[:5]}")
    return {c: table[c] for c in classes}


def _limit(ds: Dataset, labels: np.ndarray, n: int | None, seed: int) -> tuple[Dataset, np.ndarray]:
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])  # type: ignore[arg-type]
    return Subset(ds, keep.tolist()), labels[keep]


def collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor] | torch.Tensor, torch.Tensor]:
    xs = [b[0] for b in batch]
    y = torch.tensor([b[1] for b in batch], dtype=torch.long)
    return (torch.stack(xs) if xs[0].dim() == 4 else xs), y


# --------------------------------------------------------------------------------------------- model wrapper


class TuneModel(nn.Module):
    """Recogniser + frozen encoder as one module whose forward is the training loss (what DDP wraps)."""

    def __init__(self, recognizer: Recognizer):
        super().__init__()
        self.rec = recognizer

    def forward(self, x: list[torch.Tensor] | torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() == 5:
            with torch.no_grad():
                x = self.rec.encoder(x.to(self.rec.device))  # type: ignore[misc]
        return self.rec.loss(x, y.tolist())


def _param_groups(rec: nn.Module, cfg: TuneConfig) -> list[dict[str, Any]]:
    """LoRA at cfg.lr; the freshly initialised bridge at cfg.bridge_lr (LLaVA-style projectors learn faster)."""
    bridge = [p for n, p in rec.named_parameters() if p.requires_grad and n.startswith("bridge.")]
    rest = [p for n, p in rec.named_parameters() if p.requires_grad and not n.startswith("bridge.")]
    scale = (cfg.bridge_lr / cfg.lr) if cfg.bridge_lr else 1.0
    return [{"params": rest, "lr_scale": 1.0}, {"params": bridge, "lr_scale": scale}]


def _lr(step: int, total: int, cfg: TuneConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the base rate."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# --------------------------------------------------------------------------------------------- evaluation


def evaluate(rec: Recognizer, data: TuneData, split: str, actions: list[str], keep: list[int],
             mode: str = "rank", limit: int | None = None, describe: bool = False,
             knowledge: dict[str, str] | None = None) -> dict[str, Any]:
    """Top-1/top-5 (and mean class accuracy) of `rec` on a split, restricted to classes `keep` (indices).

    knowledge: label -> description for the listed classes, needed by rank_by="answer" for classes the
    recogniser was not trained on (held out)."""
    ds = _Relabel(data.splits[split], data.labels[split], keep)
    ds_l, y = _limit(ds, ds.labels, limit, 0)
    if len(ds_l) == 0:  # type: ignore[arg-type]
        return {"samples": 0}
    preds: list[dict[str, Any]] = []
    loader = DataLoader(ds_l, batch_size=rec.cfg.eval_batch_size, shuffle=False, collate_fn=collate)
    for x, _ in loader:
        if isinstance(x, torch.Tensor) and x.dim() == 5:
            with torch.no_grad():
                x = list(rec.encoder(x.to(rec.device)).float())  # type: ignore[misc]
        preds += rec.recognize(x, actions=actions, knowledge=knowledge, mode=mode, describe=describe)
    truth = [actions[i] for i in y.tolist()]
    top1 = np.array([p["label"] == t for p, t in zip(preds, truth, strict=True)])
    top5 = np.array([t in [lab for lab, _ in p["top5"]] for p, t in zip(preds, truth, strict=True)])
    per_class = [top1[y == c].mean() for c in range(len(actions)) if (y == c).any()]
    out = {"samples": len(truth), "top1": float(top1.mean()), "top5": float(top5.mean()),
           "mean_class_accuracy": float(np.mean(per_class))}
    if mode == "generate":
        out["unmatched"] = int(sum(p["label"] is None for p in preds))
    return out


# --------------------------------------------------------------------------------------------- training


def default_run_dir(cfg: TuneConfig) -> Path:
    stem = Path(cfg.encoder_run or cfg.features or "tune").name
    return Path("runs") / f"tune-{stem}-{cfg.bridge.kind}"


def _check_resume(cfg: TuneConfig, run: RunDir) -> None:
    if run.config_path.is_file():
        old = load_config(TuneConfig, run.config_path)
        if to_dict(old) != to_dict(cfg):
            raise ConfigError(f"{run.config_path}: this run was started with a different config; use another "
                              "--run-dir or the same settings to resume")


def tune(cfg: TuneConfig, run_dir: str | Path | None = None, progress: bool = True,
         data: TuneData | None = None, llm: nn.Module | None = None, tokenizer: Any = None,
         stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train (or resume) a stage-3 run; returns the final report (also written to report.json).

    `data`, `llm`/`tokenizer` may be given directly (tests, notebooks). stop_after_steps ends the process's
    work after that many optimizer steps in total (as if killed), for resume tests.
    """
    info = setup_distributed()
    try:
        return _tune(cfg, run_dir, progress, data, llm, tokenizer, info, stop_after_steps)
    finally:
        cleanup_distributed()


def _tune(cfg: TuneConfig, run_dir: str | Path | None, progress: bool, data: TuneData | None, llm: Any,
          tokenizer: Any, info: DistInfo, stop_after_steps: int | None) -> dict[str, Any]:
    if cfg.decode not in ("rank", "generate"):
        raise ConfigError(f"decode {cfg.decode!r}: choose rank or generate")
    check_rank_by(cfg.rank_by)
    torch.manual_seed(cfg.seed)
    run = RunDir(run_dir or default_run_dir(cfg))
    if info.is_main:
        run.create()
        _check_resume(cfg, run)
        save_config(cfg, run.config_path)
    barrier(info)
    if data is None:
        data = features_data(cfg) if cfg.features else online_data(cfg, info.device)
    unknown = [c for c in cfg.exclude_classes if c not in data.classes]
    if unknown:
        raise ConfigError(f"exclude_classes: {unknown} are not classes of {data.dataset}")
    seen = [i for i, c in enumerate(data.classes) if c not in cfg.exclude_classes]
    unseen = [i for i, c in enumerate(data.classes) if c in cfg.exclude_classes]
    actions = [data.classes[i] for i in seen]
    descriptions = load_descriptions(cfg, data.dataset, data.classes)

    rec = Recognizer.build(cfg, data.encoder_dim, actions, {a: descriptions[a] for a in actions if a in descriptions},
                           encoder=data.encoder, data_cfg=data.data_cfg, llm=llm, tokenizer=tokenizer)
    rec.to(info.device)
    model: nn.Module = TuneModel(rec)
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda"
                                                    else None)
    params = [p for p in rec.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_param_groups(rec, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)

    train_set = _Relabel(data.splits["train"], data.labels["train"], seen)
    train_set_l, _ = _limit(train_set, train_set.labels, cfg.max_train_samples, cfg.seed)
    per_rank = cfg.batch_size // info.world if info.distributed else cfg.batch_size
    if per_rank < 1:
        raise ConfigError(f"batch_size {cfg.batch_size} is smaller than the number of processes {info.world}")
    batches_per_epoch = math.ceil(len(train_set_l) / (per_rank * info.world))  # type: ignore[arg-type]
    steps_per_epoch = max(1, batches_per_epoch // cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs

    # ---- resume
    epoch, step, batch_in_epoch, best = 0, 0, 0, {"val_top1": -1.0}
    found = run.load_checkpoint(info.device)
    if found is not None:
        _, weights, state = found
        rec.load_trainable_state(weights)
        optimizer.load_state_dict(state["optimizer"])
        epoch, step, batch_in_epoch = state["epoch"], state["step"], state["batch_in_epoch"]
        best = json.loads(state["best"])
        set_rng_state(state["rng"])
        if info.is_main:
            kept = [m for m in run.read_metrics() if m.get("step", 0) <= step]
            atomic_write_text(run.metrics_path, "".join(json.dumps(m) + "\n" for m in kept))
    writer = MetricsWriter(run, purge_step=step) if info.is_main else None

    def checkpoint() -> None:
        if info.is_main:
            state = {"optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
                     "batch_in_epoch": batch_in_epoch, "best": json.dumps(best), "rng": rng_state()}
            run.save_checkpoint(step, rec.trainable_state(), state)
        barrier(info)

    steps_this_process = 0
    while epoch < cfg.epochs:
        order = torch.randperm(len(train_set_l), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        order = order[info.rank::info.world].tolist()
        if hasattr(data.splits["train"], "set_epoch"):
            data.splits["train"].set_epoch(epoch)  # type: ignore[attr-defined]
        batches = [order[i:i + per_rank] for i in range(0, len(order), per_rank)][:steps_per_epoch * cfg.grad_accum]
        rec.train()
        t0 = time.time()
        losses: list[float] = []
        bar = None
        if progress and info.is_main:
            from tqdm import tqdm

            bar = tqdm(total=len(batches), initial=batch_in_epoch, desc=f"tune epoch {epoch + 1}/{cfg.epochs}")
        while batch_in_epoch < len(batches):
            for g in optimizer.param_groups:
                g["lr"] = _lr(step, total_steps, cfg) * g["lr_scale"]
            optimizer.zero_grad(set_to_none=True)
            for _ in range(cfg.grad_accum):
                x, y = collate([train_set_l[i] for i in batches[batch_in_epoch]])
                with torch.autocast("cuda", torch.bfloat16, enabled=cfg.amp and info.device.type == "cuda"):
                    loss = model(x, y) / cfg.grad_accum
                loss.backward()
                losses.append(float(loss.detach()) * cfg.grad_accum)
                batch_in_epoch += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            step += 1
            steps_this_process += 1
            if writer is not None and step % max(1, cfg.log_every) == 0:
                writer.scalar("train/loss", float(np.mean(losses[-cfg.log_every * cfg.grad_accum:])), step)
                writer.scalar("train/lr", optimizer.param_groups[0]["lr"], step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and batch_in_epoch < len(batches):
                checkpoint()
            if stop_after_steps is not None and steps_this_process >= stop_after_steps:
                checkpoint()
                if bar is not None:
                    bar.close()
                return {"stopped_at_step": step}
        if bar is not None:
            bar.close()
        # ---- end of epoch: validate, keep the best, checkpoint
        record: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                                  "train_loss": float(np.mean(losses)) if losses else None,
                                  "epoch_time_s": time.time() - t0}
        if info.is_main and "val" in data.splits:
            val = evaluate(rec, data, "val", actions, seen, "rank", cfg.max_eval_samples)
            record.update({f"val_{k}": v for k, v in val.items() if k != "samples"})
            if val.get("top1", -1.0) > best["val_top1"]:
                best = {"val_top1": val["top1"], "epoch": epoch + 1}
                run.save_best(rec.trainable_state(), best)
        elif info.is_main:  # no validation split: the last epoch is the selected one
            best = {"val_top1": -1.0, "epoch": epoch + 1}
            run.save_best(rec.trainable_state(), best)
        if writer is not None:
            writer.epoch(record, step)
        epoch += 1
        batch_in_epoch = 0
        checkpoint()
    if writer is not None:
        writer.close()
    return _finish(cfg, run, rec, data, actions, seen, unseen, info, descriptions)


def _finish(cfg: TuneConfig, run: RunDir, rec: Recognizer, data: TuneData, actions: list[str], seen: list[int],
            unseen: list[int], info: DistInfo, descriptions: dict[str, str]) -> dict[str, Any]:
    """Selected weights -> saved recogniser; test evaluated once (seen classes, and unseen ones if held out)."""
    if not info.is_main:
        barrier(info)
        return {}
    loaded = run.load_best(info.device)
    if loaded is None:
        raise SugarError(f"{run.path}: no selected checkpoint to finish from")
    weights, best = loaded
    rec.load_trainable_state(weights)
    rec.eval()
    rec.save(run.path)
    report: dict[str, Any] = {"run_dir": str(run.path), "selected": best, "dataset": data.dataset,
                              "actions": actions, "excluded": [data.classes[i] for i in unseen]}
    if "test" in data.splits:
        report["test"] = evaluate(rec, data, "test", actions, seen, cfg.decode, cfg.max_eval_samples)
        if unseen:
            report["test_unseen"] = evaluate(rec, data, "test", [data.classes[i] for i in unseen], unseen,
                                             cfg.decode, cfg.max_eval_samples, knowledge=descriptions)
    atomic_write_text(run.path / "report.json", json.dumps(report, indent=1))
    barrier(info)
    return report


def load_tune_config(path: str | Path | None, overrides: list[str], encoder: str | None,
                     features: str | None) -> TuneConfig:
    cfg = load_config(TuneConfig, path, overrides)
    if encoder:
        cfg = replace(cfg, encoder_run=str(Path(encoder).resolve()))
    if features:
        cfg = replace(cfg, features=str(Path(features).resolve()))
    if not cfg.encoder_run and not cfg.features:
        raise ConfigError("tune needs --encoder RUN (and optionally --features DIR)")
    return _inherit_held_out(cfg, overrides)


def _inherit_held_out(cfg: TuneConfig, overrides: list[str]) -> TuneConfig:
    """Classes the encoder never saw stay unseen for the LLM too, unless exclude_classes is set explicitly."""
    explicit = any(o.split("=", 1)[0].strip() == "exclude_classes" for o in overrides)
    encoder_cfg = Path(cfg.encoder_run or "") / "config.yaml"
    if explicit or cfg.exclude_classes or not cfg.encoder_run or not encoder_cfg.is_file():
        return cfg
    held_out = load_config(PretrainConfig, encoder_cfg).exclude_classes
    return replace(cfg, exclude_classes=tuple(held_out)) if held_out else cfg
