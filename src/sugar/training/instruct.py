"""Stage 3 training (`sugar tune`): the bridge (TQP) and LoRA adapters on a frozen LLM, encoder frozen.

Inputs are either pre-extracted encoder tokens (`sugar extract` folders train/, val/, test/ under
TuneConfig.features) or skeletons run through the frozen encoder on the fly (with training augmentation).
Run directory conventions are stage 2's (sugar.training.loop): config.yaml, metrics.jsonl (one line per epoch),
TensorBoard events under tb/, checkpoints/ holding only trainable weights (bridge + LoRA) plus optimizer state,
written every epoch and every `checkpoint_every` optimizer steps; a killed run resumes from the newest one.
The best epoch by validation top-1 (rank decoding) is kept; the test split is evaluated once, at the end, with
the selected weights. The finished run directory is loadable with `load_recognizer(run_dir)`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from sugar.config import TuneConfig, load_config, save_config
from sugar.errors import ConfigError, DataError, SugarError
from sugar.evaluation.encoder import require_pretrain_run
from sugar.evaluation.recognizer import (
    calibrate,
    collate,
    encoder_evidence,
    evaluate_split,
    evidence_reports,
    evidence_scores,
    split_tokens,
    text_evidence,
)
from sugar.features import FeatureStore
from sugar.fileio import atomic_write_text
from sugar.knowledge.schema import load_knowledge
from sugar.models.answering import check_rank_by
from sugar.models.encoder import encoder_digest, load_encoder
from sugar.models.list_prior import REFERENCE_SAMPLES, ListPrior
from sugar.models.prompt import sample_list
from sugar.models.recognizer import Recognizer
from sugar.models.recognizer_io import load_recognizer, save_recognizer
from sugar.models.text_map import init_text_bridge
from sugar.runs import RunDir
from sugar.skeleton.datasets import DataSource, tuned_knowledge
from sugar.skeleton.processor import Processor
from sugar.skeleton.torchdata import ClassSubset, seeded_subset
from sugar.training.frozen_bf16 import FrozenLinearsInBf16
from sugar.training.loop import (
    DistInfo,
    LoopSpec,
    Trainer,
    barrier,
    check_resume,
    cleanup_distributed,
    cpu_has_amx,
    default_run_dir,
    setup_distributed,
    writing,
)

SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------------------------- data


class _Features(Dataset):
    """A `sugar extract` folder as (tokens [T', d], label) items."""

    def __init__(self, folder: Path):
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
    encoder: nn.Module | None = None  # the frozen encoder (needed when items are skeleton tensors)
    processor: Processor | None = None
    source: DataSource | None = None  # what the encoder was trained on


def features_data(cfg: TuneConfig) -> TuneData:
    """train/ (required), val/ and test/ sub-folders of cfg.features, each written by `sugar extract`."""
    root = Path(cfg.features or "")
    splits: dict[str, Dataset] = {}
    labels: dict[str, np.ndarray] = {}
    classes: list[str] | None = None
    dim = None
    digest = encoder_digest(cfg.encoder_run) if cfg.encoder_run else None  # hashed once for the three splits
    for split in SPLITS:
        folder = root / split
        if not (folder / "index.json").is_file():
            if split == "train":
                raise DataError(folder, "no train features (expected `sugar extract RUN --split train --out "
                                        f"{folder}`)")
            continue
        ds = _Features(folder)
        if cfg.encoder_run:
            ds.store.check_encoder(cfg.encoder_run, digest)
        if classes is not None and ds.store.classes != classes:
            raise DataError(folder, "class list differs from the train features")
        classes, dim = ds.store.classes, ds.store.dim
        splits[split], labels[split] = ds, ds.labels
    assert classes is not None and dim is not None
    index = splits["train"].store.index  # type: ignore[attr-defined]
    data = TuneData(str(index.get("dataset")), list(classes), splits, labels, int(dim))
    if cfg.encoder_run:  # saved inside the recogniser, so it reads skeletons without the encoder's run
        bundle = load_encoder(cfg.encoder_run)
        data.encoder, data.processor, data.source = bundle.encoder, bundle.processor, bundle.data
    return data


def online_data(cfg: TuneConfig, device: torch.device) -> TuneData:
    """Skeleton splits of the encoder run's dataset (or cfg.dataset), encoded on the fly by the frozen encoder."""
    if not cfg.encoder_run:
        raise ConfigError("tune needs an encoder run (--encoder RUN)")
    bundle = load_encoder(cfg.encoder_run, device)
    if bundle.data is None:
        raise ConfigError(f"{cfg.encoder_run}: the encoder does not record its data; pass --features")
    name = cfg.dataset or bundle.data.dataset
    splits: dict[str, Dataset] = {}
    labels: dict[str, np.ndarray] = {}
    classes: list[str] = []
    for split in SPLITS:
        ds = bundle.data.open_split(split, dataset=name, protocol=cfg.protocol, layout=bundle.encoder.layout)
        classes = list(ds.classes)
        splits[split] = bundle.processor.dataset(ds, train=split == "train", seed=cfg.seed)
        labels[split] = np.asarray(ds.labels)
    return TuneData(name, classes, splits, labels, bundle.encoder.dim, bundle.encoder, bundle.processor, bundle.data)


def load_descriptions(cfg: TuneConfig, data: TuneData) -> dict[str, str]:
    """label -> description from the knowledge; {} when cfg.knowledge == "none" (label-only answers).

    The knowledge is cfg.knowledge, else the one the encoder was trained with (same dataset), else the
    dataset's shipped file."""
    if cfg.knowledge == "none":
        return {}
    name = tuned_knowledge(cfg.knowledge, data.source, data.dataset)
    table = {c.label: c.description for c in load_knowledge(name).classes}
    missing = [c for c in data.classes if c not in table]
    if missing:
        raise ConfigError(f"knowledge {name!r} has no entry for {missing[:5]}")
    return {c: table[c] for c in data.classes}


# --------------------------------------------------------------------------------------------- model wrapper


class TuneModel(nn.Module):
    """Recogniser + frozen encoder as one module whose forward is the training loss (what DDP wraps).

    With cfg.vary_list each row's instruction lists a random subset of the classes (its own + distractors, random
    order; `sugar.models.prompt.sample_list`), drawn from a generator seeded by the run's seed and the row's
    input, so a resumed run draws the same lists."""

    def __init__(self, recognizer: Recognizer):
        super().__init__()
        self.rec = recognizer

    def forward(self, x: list[torch.Tensor] | torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() == 5:
            with torch.no_grad():
                x = self.rec.encoder(x.to(self.rec.device))  # type: ignore[misc]
        labels = y.tolist()
        lists = None
        if self.rec.cfg.vary_list:
            lists = [sample_list(self.rec.actions, label, _row_rng(self.rec.cfg.seed, row), self.rec.cfg.min_list)
                     for label, row in zip(labels, x, strict=True)]
        return self.rec.loss(x, labels, lists=lists)


def _row_rng(seed: int, row: torch.Tensor) -> np.random.Generator:
    """A generator that depends on the run's seed and the row's input only (resume draws the same lists)."""
    digest = hashlib.sha256(row.detach().float().cpu().numpy().tobytes()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def start_in_text_space(cfg: TuneConfig, rec: Recognizer, unseen: list[str]) -> dict[str, Any]:
    """Bridge kind "text": the encoder run's stage-2 text head and a text-to-LLM map fitted without the unseen
    classes' names (sugar.models.text_map); a resumed run then loads its checkpoint over them."""
    evidence = text_evidence(cfg.encoder_run, "cpu") if cfg.encoder_run else None
    if evidence is None:
        raise ConfigError("bridge kind 'text' needs an encoder run with a text head (trained with loss milnce or "
                          "milnce+ce)")
    return init_text_bridge(rec.bridge, evidence.head.linear, evidence.text_model, unseen,  # type: ignore[arg-type]
                            rec.llm.get_input_embeddings(), rec.tokenizer, cfg.seed)


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


# --------------------------------------------------------------------------------------------- training


def tune(cfg: TuneConfig, run_dir: str | Path | None = None, progress: bool = True,
         data: TuneData | None = None, llm: nn.Module | None = None, tokenizer: Any = None,
         stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train (or resume) a stage-3 run; returns the final report (also written to report.json).

    `data`, `llm`/`tokenizer` may be given directly (tests, notebooks). stop_after_steps ends the process's
    work after that many optimizer steps in total (as if killed), for resume tests.
    """
    if cfg.decode not in ("rank", "generate"):
        raise ConfigError(f"decode {cfg.decode!r}: choose rank or generate")
    check_rank_by(cfg.rank_by)
    if cfg.encoder_run:  # its text head is fused with the LLM when training ends: fail now, not after training
        require_pretrain_run(cfg.encoder_run)
    info = setup_distributed()
    run = RunDir(run_dir or default_run_dir("tune", Path(cfg.encoder_run or cfg.features or "tune").name,
                                            cfg.bridge.kind))
    try:
        with writing(run, info):
            return _tune(cfg, run, progress, data, llm, tokenizer, info, stop_after_steps)
    finally:
        cleanup_distributed()


def _tune(cfg: TuneConfig, run: RunDir, progress: bool, data: TuneData | None, llm: Any,
          tokenizer: Any, info: DistInfo, stop_after_steps: int | None) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    if info.is_main:
        check_resume(run, cfg)
        run.create()
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
    descriptions = load_descriptions(cfg, data)

    rec = Recognizer.build(cfg, data.encoder_dim, actions, {a: descriptions[a] for a in actions if a in descriptions},
                           encoder=data.encoder, processor=data.processor, data=data.source, llm=llm,
                           tokenizer=tokenizer)
    if cfg.bridge.kind == "text":
        fit = start_in_text_space(cfg, rec, [data.classes[i] for i in unseen])
        if info.is_main:
            atomic_write_text(run.path / "text_map.json", json.dumps(fit, indent=1))
    rec.to(info.device)
    model: nn.Module = TuneModel(rec)
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda"
                                                    else None)
    optimizer = torch.optim.AdamW(_param_groups(rec, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    train_set, _ = seeded_subset(ClassSubset(data.splits["train"], data.labels["train"], seen),
                                 cfg.max_train_samples, cfg.seed)

    def loss_fn(net: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y = batch
        loss = net(x, y)
        return loss, loss.detach() * len(y), len(y)

    # under CPU bf16 autocast the frozen LLM's linear weights are held in bf16 while training (the same function,
    # without autocast re-casting them at every forward); validation and everything after training see fp32
    mixed = cfg.cpu_bf16 and info.device.type == "cpu" and cpu_has_amx()
    frozen = FrozenLinearsInBf16(rec.llm, enabled=mixed)

    def validate(epoch: int) -> dict[str, Any]:
        if "val" not in data.splits:
            return {}  # no validation split: the last epoch is the selected one
        with frozen.in_fp32():
            val = evaluate_split(rec, data.splits, data.labels, "val", actions, seen, "rank", cfg.max_eval_samples)
        return {f"val_{k}": v for k, v in val.items() if k != "samples" and isinstance(v, int | float)}

    spec = LoopSpec(cfg.epochs, cfg.batch_size, cfg.seed, grad_accum=cfg.grad_accum,
                    max_grad_norm=cfg.max_grad_norm, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                    amp=cfg.amp, cpu_bf16=mixed, desc="tune epoch", ema_decay=cfg.ema_decay,
                    keep=cfg.keep)
    trainer = Trainer(run, info, spec, model=model, optimizer=optimizer, train_set=train_set, collate_fn=collate,
                      loss_fn=loss_fn, lr_at=lambda step, _, total: _lr(step, total, cfg),
                      weights=rec.trainable_state, load_weights=rec.load_trainable_state, validate=validate,
                      progress=progress)
    with frozen.held():
        result = trainer.fit(stop_after_steps)
    if "stopped_at_step" in result:
        return result
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
    report = finish_report(cfg, run, rec, data, actions, seen, unseen, descriptions, {"selected": best})
    barrier(info)
    return report


def finish_report(cfg: TuneConfig, run: RunDir, rec: Recognizer, data: TuneData, actions: list[str],
                  seen: list[int], unseen: list[int], descriptions: dict[str, str],
                  extra: dict[str, Any], calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Attach the encoder's text head (and its CE classifier, `fuse_classifier`) with the fusion weights chosen on
    validation (or the given `calibration`: weights chosen elsewhere, e.g. on proxy runs), save the recogniser,
    score the test split once per kind of evidence (LLM alone as `test`, text head `test_text`, classifier
    `test_ce`, fused `test_fused`; the same with `_unseen` for held-out classes) and write report.json."""
    evidence, classifier = encoder_evidence(cfg.encoder_run, rec.device) if cfg.encoder_run else (None, None)
    if not cfg.fuse_classifier or (classifier is not None and not classifier.covers(actions)):
        classifier = None
    report: dict[str, Any] = {"run_dir": str(run.path), **extra, "dataset": data.dataset, "actions": actions,
                              "excluded": [data.classes[i] for i in unseen]}
    rec.attach_classifier(None)
    if calibration is not None:
        if evidence is None and (classifier is None or float(calibration["weight"]) > 0):
            raise SugarError(f"{run.path}: its encoder has no text head, so there is no fusion weight to set")
        rec.attach_evidence(evidence, float(calibration["weight"]))
        if float(calibration.get("ce_weight", 0.0)) > 0:
            if classifier is None:
                raise SugarError(f"{run.path}: the calibration weighs the encoder's classifier, which this run "
                                 "does not fuse (no CE head, or fuse_classifier: false)")
            rec.attach_classifier(classifier, float(calibration["ce_weight"]))
        rec.fusion_calibration = calibration
    elif (evidence is not None or classifier is not None) and "val" in data.splits:
        tokens, y = split_tokens(rec, data.splits, data.labels, "val", seen, cfg.max_eval_samples)
        if len(y):
            calibrate(rec, tokens, y, actions, evidence, classifier=classifier)
    if (rec.evidence is not None or rec.classifier is not None) and rec.fusion_calibration:
        report["fusion"] = {k: v for k, v in rec.fusion_calibration.items() if k != "table"}
    attach_list_prior(rec, data, seen)
    save_recognizer(rec, run.path)
    if "test" in data.splits:
        views = [("test", actions, seen, {})]
        if unseen:
            views.append(("test_unseen", [data.classes[i] for i in unseen], unseen, descriptions))
        for key, names, keep, knowledge in views:
            if cfg.decode != "rank":
                report[key] = evaluate_split(rec, data.splits, data.labels, "test", names, keep, cfg.decode,
                                             cfg.max_eval_samples, knowledge=knowledge)
                continue
            tokens, y = split_tokens(rec, data.splits, data.labels, "test", keep, cfg.max_eval_samples)
            if not len(y):
                report[key] = {"samples": 0}
                continue
            reps = evidence_reports(tokens, y, names, evidence_scores(rec, tokens, names, knowledge))
            report[key] = {**reps["llm"], "samples": len(y)}
            for kind in ("text", "ce", "fused"):
                if kind in reps:
                    report[f"{key}_{kind}"] = {**reps[kind], "samples": len(y)}
    atomic_write_text(run.path / "report.json", json.dumps(report, indent=1))
    return report


@torch.no_grad()
def attach_list_prior(rec: Recognizer, data: TuneData, seen: list[int]) -> None:
    """Give the recogniser the reference samples of its LLM's list prior (sugar.models.list_prior): the action
    tokens of a seeded subset of training samples of the tuned classes."""
    prior = reference_samples(rec, data.splits, data.labels, seen)
    if prior is not None:
        rec.list_prior = prior


@torch.no_grad()
def reference_samples(rec: Recognizer, splits: dict[str, Dataset], labels: dict[str, np.ndarray],
                      seen: list[int]) -> ListPrior | None:
    """The action tokens of REFERENCE_SAMPLES seeded training samples of classes `seen` (None: no such sample)."""
    tokens, _ = split_tokens(rec, splits, labels, "train", seen, REFERENCE_SAMPLES)
    if not tokens:
        return None
    embeds, mask = rec.action_tokens(tokens)
    return ListPrior(embeds.float().cpu(), mask.cpu())


def list_prior_from_source(rec: Recognizer, root: str | None = None) -> ListPrior:
    """Reference samples drawn from the training split of the data the recogniser's encoder records (its
    DataSource; `root`: where that dataset lives, if not its default place), for a recogniser folder that is not
    a run `sugar calibrate` can finish: a released model. Samples are taken without training augmentation."""
    if rec.encoder is None or rec.processor is None or rec.data is None:
        raise ConfigError("the recogniser's encoder does not record its data (or has no processor), so there is "
                          "no training split to draw reference samples from")
    ds = rec.data.open_split("train", root=root, layout=rec.encoder.layout)  # type: ignore[arg-type]
    tuned = set(rec.actions)
    seen = [i for i, c in enumerate(ds.classes) if c in tuned]
    prior = reference_samples(rec, {"train": rec.processor.dataset(ds, train=False, seed=rec.cfg.seed)},
                              {"train": np.asarray(ds.labels)}, seen)
    if prior is None:
        raise DataError(root or rec.data.root or rec.data.dataset, "its training split has no sample of the "
                        f"recogniser's actions {rec.actions[:5]}")
    return prior


def refinish(run_dir: str | Path, calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Re-do the end of a `sugar tune` run with today's code (no training): attach and calibrate the encoder's text
    head on validation (or at the weight of `calibration`), save, and score the test split again (`sugar
    calibrate`). The previous report's fusion record is kept as `fusion_before`.

    A run stopped before its last epoch (no recognizer.json yet) is finished from its best checkpoint so far; the
    report then says `finished_early` and which epoch was selected."""
    with RunDir(run_dir).exclusive(create=False) as run:
        return _refinish(run, calibration)


def _refinish(run: RunDir, calibration: dict[str, Any] | None) -> dict[str, Any]:
    cfg = load_config(TuneConfig, run.config_path)
    data = features_data(cfg) if cfg.features else online_data(cfg, torch.device("cpu"))
    seen = [i for i, c in enumerate(data.classes) if c not in cfg.exclude_classes]
    unseen = [i for i, c in enumerate(data.classes) if c in cfg.exclude_classes]
    actions = [data.classes[i] for i in seen]
    descriptions = load_descriptions(cfg, data)
    if (run.path / "recognizer.json").is_file():
        rec = load_recognizer(run.path)
        old = json.loads((run.path / "report.json").read_text()) if (run.path / "report.json").is_file() else {}
        extra: dict[str, Any] = {"selected": old.get("selected"), "fusion_before": old.get("fusion")}
    else:
        loaded = run.load_best(torch.device("cpu"))
        if loaded is None:
            raise SugarError(f"{run.path}: neither a finished recogniser nor a selected checkpoint")
        weights, best = loaded
        rec = Recognizer.build(cfg, data.encoder_dim, actions,
                               {a: descriptions[a] for a in actions if a in descriptions}, encoder=data.encoder,
                               processor=data.processor, data=data.source)
        rec.load_trainable_state(weights)
        rec.eval()
        extra = {"selected": best, "finished_early": True}
    return finish_report(cfg, run, rec, data, actions, seen, unseen, descriptions, extra, calibration)


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
    if explicit or cfg.exclude_classes or not cfg.encoder_run:
        return cfg
    source = load_encoder(cfg.encoder_run).data
    held_out = source.exclude_classes if source is not None else ()
    return replace(cfg, exclude_classes=tuple(held_out)) if held_out else cfg
