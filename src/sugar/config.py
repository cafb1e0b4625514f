"""Configs: one dataclass per stage, loaded from YAML (configs/) with `--set a.b=value` overrides.

Configs are plain data (never executed). `load_config` validates every key, so a typo in a YAML file or an
override is a clear error instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sugar.errors import ConfigError

T = TypeVar("T")


@dataclass
class DataConfig:
    """Which dataset, protocol and how samples become tensors."""

    dataset: str = "synthetic"  # a dataset name, or a dataset folder in the generic format (own data)
    root: str | None = None  # dataset folder; None = the dataset's default location
    protocol: str | None = None  # e.g. xsub, xview; None = the dataset's default
    frames: int = 64  # T after resampling
    max_persons: int = 2  # M after padding; 0 = the training data's most persons (at most 2)
    centre: bool = True
    align: bool = True  # SGN-style view alignment
    random_crop: tuple[float, float] = (0.5, 1.0)  # training window as a fraction of the sequence
    random_rotate: float = 0.3  # max rotation (radians) per axis at training; 0 disables
    # per-axis scale factor range at training; (1, 1) disables. Undone by normalize=minmax, which rescales each axis
    # afterwards (as in CTR-GCN's NW-UCLA feeder, whose scaling also comes before its min-max)
    random_scale: tuple[float, float] = (1.0, 1.0)
    repeat: int = 1  # copies of each training sample per epoch, each augmented differently
    stream: str = "joint"  # joint | bone | joint_motion (= motion) | bone_motion (CTR-GCN's four streams)
    sampling: str = "crop"  # crop: random window resized to `frames` | random: random sorted frames (CTR-GCN NW-UCLA)
    rotate_axes: str = "xyz"  # axes random_rotate turns about (CTR-GCN's NW-UCLA recipe: xy)
    normalize: str = "none"  # none | minmax: each sequence scaled per axis into [-1, 1] (CTR-GCN NW-UCLA)
    val_fraction: float = 0.1  # validation part carved from training (seeded, stratified by class)
    val_min_per_class: int = 1  # at least this many validation samples per class (classes with more than it)
    num_workers: int = 0


@dataclass
class EncoderConfig:
    """CTR-GCN family skeleton encoder."""

    preset: str = "cpu"  # "paper" (CTR-GCN widths) or "cpu"
    temporal_stride: str = "stock"  # "none" (paper: keep every frame) or "stock" (CTR-GCN strides 2, 2)
    dropout: float = 0.0
    text_model: str = "all-MiniLM-L6-v2"  # sentence-transformers name/path or a CLIP model name


@dataclass
class PretrainConfig:
    """Stage 2: knowledge-supervised encoder training (MIL-NCE). Defaults are the paper's schedule
    (SGD, lr 0.01, 200 epochs, batch 200, x0.1 steps); the step epochs and warm-up are [choice]."""

    data: DataConfig = field(default_factory=DataConfig)
    model: EncoderConfig = field(default_factory=EncoderConfig)
    loss: str = "milnce"  # milnce | ce | milnce+ce
    knowledge: str | None = None  # knowledge file or dataset name; None = the dataset's shipped file
    use_motion: bool = True
    use_visual: bool = True
    text_mix: str = "convex"  # convex: random convex mixes of motion with each visual text per step | none
    temperature: float = 0.07
    learn_temperature: bool = True
    # MIL-NCE candidates: "batch" = the texts of classes in the (global) batch (the paper's contrastive form);
    # "all" = every training class's texts each step, as the text head is scored at test time (small batches
    # on many fine-grained classes rarely hold two confusable classes together)
    text_negatives: str = "batch"
    # how the text head scores a class (validation, `sugar evaluate`): "prototype" = cosine to the mean of its
    # texts; "mil" = log-mean-exp over its texts, the rule MIL-NCE trains (sugar/models/text_scoring.py)
    text_score: str = "prototype"
    # the field's reporting, for comparison only: CTR-GCN's main.py scores the test split after every epoch and
    # publishes the best of those scores. True logs each head's test top-1 per epoch (metrics.jsonl
    # `field_test_top1_<head>`, report.json `field_protocol`); model selection still reads validation alone
    score_test_each_epoch: bool = False
    epochs: int = 200
    batch_size: int = 200  # global batch (split over DDP processes)
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-4
    warmup_epochs: int = 5
    lr_steps: tuple[int, ...] = (120, 170)
    lr_decay: float = 0.1
    # > 0: validate, select and export an exponential moving average of the weights, `ema_decay` per optimizer
    # step (sugar.training.averaging; 0.995 averages over ~200 steps); 0 = the raw weights (CTR-GCN's recipe)
    ema_decay: float = 0.0
    # which epoch's weights are exported: "best" = the best validation top-1 (the first of ties); "last" = the last
    # epoch (the average, with ema_decay). A small validation part saturates early (MSR's 20-33 samples reach 100 %
    # at lr 0.1), so "best" can keep a mid-training epoch. Rerunning a finished run with another `keep` re-exports it
    # without training (docs/encoder.md)
    keep: str = "best"
    amp: bool = True  # used on GPU only
    cpu_bf16: bool = True  # bf16 autocast where the CPU has native bf16 (AVX512-BF16/AMX); docs/benchmarks.md
    sync_bn: bool = True  # global-batch BatchNorm under DDP
    seed: int = 1
    exclude_classes: tuple[str, ...] = ()  # held out for zero-shot
    unseen_classes: int = 0  # K > 0: hold out K seeded-chosen classes (recorded in exclude_classes)
    max_train_samples: int | None = None  # for quick runs


@dataclass
class BridgeConfig:
    """Temporal Query Projection and its ablation alternatives."""

    kind: str = "tqp"  # tqp | qformer | linear | pool | text (sugar.models.tqp.TextBridge)
    num_queries: int = 32  # L (paper: 128)
    chunk_frames: int = 8  # encoder frames per TQP chunk
    hidden_size: int = 256  # Q-Former width
    num_layers: int = 2  # Q-Former depth
    num_heads: int = 4
    intermediate_size: int | None = None  # Q-Former MLP width; None = 4 x hidden_size
    dropout: float = 0.1
    text_dim: int = 384  # kind "text": the width of the encoder's text space (all-MiniLM-L6-v2: 384)


@dataclass
class LoraConfig:
    r: int = 16  # paper: 64
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class TuneConfig:
    """Stage 3: TQP + LoRA on a frozen LLM, encoder frozen."""

    encoder_run: str | None = None
    features: str | None = None  # `sugar extract` output: a folder with train/ val/ test/ sub-folders
    dataset: str | None = None  # None = the encoder run's dataset (online encoding only)
    protocol: str | None = None
    llm: str = "smollm2-135m"  # alias of the offline GGUF model, a Hugging Face name or path, or a .gguf file
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    knowledge: str | None = None  # knowledge file; None = the dataset's shipped file
    zero_shot_prompt: bool = False  # the paper's "choose the top five ..." instruction
    # > 0: each entry of the instruction's action list is followed by the first N words of its knowledge description
    # ("sit down (sits down on a chair, bending the knees ...)"), so a class the LLM was not tuned on is read by what
    # the body does (issue 15's unseen classes); 0 = names only, the paper's prompt
    list_gloss_words: int = 0
    epochs: int = 1
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4  # paper: 2e-5 for a 7B model
    bridge_lr: float | None = None  # learning rate of the fresh TQP bridge; None = lr
    weight_decay: float = 0.0
    warmup_steps: int = 10
    max_grad_norm: float = 1.0
    # > 0: validate, select and save an EMA of the trained weights (bridge, LoRA), `ema_decay` per optimizer step
    # (sugar.training.averaging, as stage 2's); 0 = the raw weights
    ema_decay: float = 0.0
    # which epoch's weights the recogniser keeps: "best" validation top-1 (LLM alone; the first of ties) | "last"
    # (as stage 2's; rerunning a finished run with another `keep` re-selects without training)
    keep: str = "best"
    # share of each answer token's target spread over the vocabulary; 0.1 lowered NW-UCLA's val and test top-1
    # (`stage3_results.sh lsmooth`, docs/RESULTS.md 2026-12-06 (7)), so off
    label_smoothing: float = 0.0
    max_answer_tokens: int = 48  # answers ("label. description") are cut to this many tokens
    max_description_tokens: int = 32  # generated after the label at inference
    decode: str = "rank"  # rank | generate (used for validation/test)
    rank_by: str = "label"  # rank mode scores "label." | "answer": "label. description" (from the knowledge)
    # rank mode: fuse the encoder's CE classifier too (lists of its classes), its weight chosen on validation with the
    # text head's (sugar.models.evidence; an encoder trained with loss: ce has only this one); false = the LLM and the
    # text head only
    fuse_classifier: bool = True
    eval_batch_size: int = 32
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps (0 = once per epoch)
    log_every: int = 10  # optimizer steps between TensorBoard loss points
    max_train_samples: int | None = None  # for quick runs
    max_eval_samples: int | None = None
    exclude_classes: tuple[str, ...] = ()  # held out of training for zero-shot
    vary_list: bool = False  # each training row's instruction lists a random subset (its class + distractors)
    min_list: int = 2  # smallest such list
    seed: int = 1
    amp: bool = True  # bf16 autocast on GPU only
    # bf16 autocast on CPUs with AMX, the frozen LLM's weights held in bf16 while training (docs/benchmarks.md: a step
    # 1.27x faster than fp32's, NW-UCLA fused top-1 kept); AVX512-BF16 without AMX measured slower: fp32 there
    cpu_bf16: bool = True


def to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-friendly dict (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: {value!r} does not fit {tp}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            value = [value]
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        if (len(args) == 2 and args[1] is Ellipsis) or len(args) == 1:
            return tuple(_coerce(inner, v, key) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, key) for a, v in zip(args, value, strict=True))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build config dataclass `cls` from a (possibly partial) dict, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in sorted(unknown))}")
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """`["train.lr=0.05", "model.preset=paper"]` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                defaults: dict[str, Any] | None = None) -> T:
    """Defaults <- `defaults` dict <- YAML file <- `--set` overrides, validated into `cls`."""
    data: dict[str, Any] = dict(defaults or {})
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file must be a YAML mapping")
        data = _merge(data, loaded)
    data = _merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
