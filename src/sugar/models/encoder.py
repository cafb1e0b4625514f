"""The skeleton encoder: a CTR-GCN-family graph network for any joint layout, returning per-frame tokens.

Read top to bottom: the graph (CTR-GCN's 3-subset spatial partition built from `layout.bones`), the
channel-wise topology refinement graph conv (CTR-GC), the multi-scale temporal conv, the TCN-GCN unit, the
encoder, the training-only projection head, and save/load. Differences from CTR-GCN (model/ctrgcn.py),
each deliberate:

- no classifier and no global pooling: `forward` returns per-frame tokens [N, T', d] (persons and joints
  averaged), as SUGAR needs; the time axis keeps every frame with `temporal_stride="none"` (the paper) or is
  down-sampled 4x with CTR-GCN's strides 2 at units 5 and 8 (`"stock"`);
- the input BatchNorm normalises each (joint, channel) pair with statistics shared by all persons, so an
  encoder trained with M=2 also accepts single-person input;
- CTR-GC's two relation convs are applied after the time-mean (a 1x1 conv commutes with the mean, so this
  is the same function, T times cheaper), the three subsets' convs are fused into one conv each, the lift
  conv runs as a batched matmul, and the refined topology is built transposed and applied with one batched
  matmul (see docs/encoder.md for the measurements).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from sugar.config import EncoderConfig
from sugar.errors import ConfigError, SugarError
from sugar.fileio import atomic_save_safetensors, atomic_write_text, file_digest, read_json_object
from sugar.models.released import resolve_run
from sugar.skeleton.datasets import DataSource
from sugar.skeleton.layouts import Layout
from sugar.skeleton.processor import PROCESSOR_FILE, Processor, TransformSettings

# --------------------------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """Unit widths and the (0-based) units that down-sample time by 2 under `temporal_stride="stock"`."""

    widths: tuple[int, ...]
    stride_units: tuple[int, ...]


PRESETS: dict[str, Preset] = {
    # CTR-GCN exactly: 10 units, widths 64x4, 128x3, 256x3, strides at units 5 and 8 (1-based).
    "paper": Preset((64, 64, 64, 64, 128, 128, 128, 256, 256, 256), (4, 7)),
    # 6 narrower units for 2-core CPUs (same unit design).
    "cpu": Preset((32, 32, 64, 64, 128, 128), (2, 4)),
}


def resolve_preset(cfg: EncoderConfig) -> Preset:
    if cfg.preset not in PRESETS:
        raise ConfigError(f"model.preset: unknown preset {cfg.preset!r}; choose from {sorted(PRESETS)}")
    if cfg.temporal_stride not in ("none", "stock"):
        raise ConfigError(f"model.temporal_stride: {cfg.temporal_stride!r} must be 'none' or 'stock'")
    return PRESETS[cfg.preset]


# --------------------------------------------------------------------------------------------- graph


def spatial_graph(layout: Layout) -> np.ndarray:
    """CTR-GCN's 3-subset adjacency [3, V, V]: identity, inward (child->parent), outward, column-normalised.

    A[k][j, i] = 1 when information flows from joint i to joint j in subset k; each column is divided by its
    in-degree sum as in CTR-GCN's `normalize_digraph` (A @ D^-1).
    """
    v = layout.num_joints

    def edges_to_matrix(edges: list[tuple[int, int]]) -> np.ndarray:
        a = np.zeros((v, v), dtype=np.float32)
        for i, j in edges:
            a[j, i] = 1.0
        return a

    def normalise(a: np.ndarray) -> np.ndarray:
        degree = a.sum(0)
        inv = np.where(degree > 0, 1.0 / np.maximum(degree, 1e-12), 0.0).astype(np.float32)
        return a @ np.diag(inv)

    inward = [(int(c), int(p)) for c, p in layout.bones]
    outward = [(p, c) for c, p in inward]
    identity = edges_to_matrix([(i, i) for i in range(v)])
    return np.stack([identity, normalise(edges_to_matrix(inward)), normalise(edges_to_matrix(outward))])


# --------------------------------------------------------------------------------------------- blocks


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout a [N, C, T, V] activation is in: channels_last (NHWC) or the default (NCHW)."""
    nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if nhwc else torch.contiguous_format


def working_layout(x: torch.Tensor) -> torch.memory_format:
    """NHWC under CPU bf16 autocast, NCHW otherwise. oneDNN's bf16 convolutions run fastest in NHWC: on AMX (a 1x1
    conv 1.15 vs 8.6 ms in NCHW, benchmarks/encoder_layouts.py) and, by less, with AVX512-BF16 alone (AMD EPYC:
    16.8 vs 22.0 ms). With the contiguous gradients below, bf16 training ran 1.25x faster on an Intel Xeon with AMX
    and 1.11-1.16x on the EPYC (docs/benchmarks.md). The defaults enter CPU bf16 autocast only where the CPU has
    native bf16 (training loop, `--encoder-precision auto`); fp32 and GPUs keep NCHW, measured fastest there."""
    cpu_bf16 = x.device.type == "cpu" and torch.is_autocast_enabled("cpu") \
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return torch.channels_last if cpu_bf16 else torch.contiguous_format


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient in the input's layout. torch.cat's backward gives
    each input a channel slice of the gradient, and BatchNorm on such a slice took 10x as long as on a contiguous
    one in NHWC (4x in NCHW; benchmarks/encoder_layouts.py); the copy costs far less. Used in NHWC only: in NCHW
    fp32 it changes BatchNorm's summation order, which the one-vs-two-process exactness test
    (tests/test_pretrain_loop.py) then fails, though the gradients are equally accurate either way."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.layout = memory_format(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=ctx.layout)


def _conv_init(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _bn_init(bn: nn.modules.batchnorm._BatchNorm, scale: float) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class CTRGC(nn.Module):
    """Channel-wise topology refinement for `subsets` adjacency subsets at once (CTR-GCN's CTRGC, fused).

    For each subset k: a shared topology A_k plus alpha * a channel-specific refinement
    conv4(tanh(phi(x)_u - psi(x)_v)) built from time-averaged features, applied to conv3(x) per channel.
    """

    def __init__(self, in_channels: int, out_channels: int, subsets: int, rel_reduction: int = 8):
        super().__init__()
        rel = 8 if in_channels <= 16 else in_channels // rel_reduction
        self.subsets, self.rel, self.out = subsets, rel, out_channels
        self.phi = nn.Conv2d(in_channels, rel * subsets, 1)
        self.psi = nn.Conv2d(in_channels, rel * subsets, 1)
        self.value = nn.Conv2d(in_channels, out_channels * subsets, 1)
        self.lift = nn.Conv2d(rel * subsets, out_channels * subsets, 1, groups=subsets)
        for conv in (self.phi, self.psi, self.value, self.lift):
            _conv_init(conv)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        k, c = self.subsets, self.out
        pooled = x.mean(2, keepdim=True)  # [n, c_in, 1, v]; 1x1 convs commute with the time mean
        q = self.phi(pooled).squeeze(2)  # [n, k*rel, v]
        r = self.psi(pooled).squeeze(2)
        # the relations built transposed, rel_t[..., v, u] = tanh(q_u - r_v), so that the topology below only
        # needs whole v*u blocks moved (a transpose inside each block made the permute copy the slowest op in bf16)
        rel_t = torch.tanh(q.unsqueeze(-2) - r.unsqueeze(-1))  # [n, k*rel, v, u]
        # the grouped 1x1 lift conv as one batched matmul per subset (oneDNN's grouped conv is slow here), with
        # alpha folded into its (small) weights and bias instead of the (large) output
        lift = (self.lift.weight * alpha).view(k, c, -1)
        refined = torch.matmul(lift, rel_t.reshape(n, k, -1, v * v))  # [n, k, c, v*u]
        # bias and shared topology as one small addend, cast to the activations' dtype: under CPU bf16 autocast
        # an fp32 addend would promote the whole [n, k, c, v, u] tensor to fp32
        addend = (self.lift.bias * alpha).view(k, c, 1) + adjacency.transpose(1, 2).reshape(k, 1, v * v)
        topo = (refined + addend.to(refined.dtype)).view(n, k, c, v, v)  # [n, k, c, v, u]
        # y[n, c, t, u] = sum_{k, v} values[n, k, c, t, v] * topo[n, k, c, v, u]: one matmul per (n, c) that
        # contracts over subsets and joints together (k*v), instead of k matmuls and a sum
        values = self.value(x).view(n, k, c, t, v).permute(0, 2, 3, 1, 4).reshape(n, c, t, k * v)
        y = torch.matmul(values, topo.transpose(1, 2).reshape(n, c, k * v, v))
        return y.contiguous(memory_format=memory_format(x))  # the layout the rest of the network runs in


class GraphConv(nn.Module):
    """CTR-GCN's unit_gcn: CTR-GC over the learnable 3-subset adjacency, BN, residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray):
        super().__init__()
        self.adjacency = nn.Parameter(torch.from_numpy(adjacency.astype(np.float32)))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.ctrgc = CTRGC(in_channels, out_channels, adjacency.shape[0])
        self.bn = nn.BatchNorm2d(out_channels)
        _bn_init(self.bn, 1e-6)
        if in_channels != out_channels:
            self.down: nn.Module = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
            _conv_init(self.down[0])
            _bn_init(self.down[1], 1.0)
        else:
            self.down = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.ctrgc(x, self.adjacency, self.alpha))
        return self.relu(y + self.down(x))


class TemporalConv(nn.Sequential):
    """A (k x 1) convolution over time followed by BN (CTR-GCN's TemporalConv / unit_tcn)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, dilation: int = 1):
        pad = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
        conv = nn.Conv2d(in_channels, out_channels, (kernel, 1), padding=(pad, 0), stride=(stride, 1),
                         dilation=(dilation, 1))
        _conv_init(conv)
        bn = nn.BatchNorm2d(out_channels)
        _bn_init(bn, 1.0)
        super().__init__(conv, bn)


class MultiScaleTemporalConv(nn.Module):
    """Parallel branches (dilated k-convs, a max-pool, a strided 1x1) concatenated along channels.

    The 1x1 conv + BN + ReLU that opens each of the dilated and max-pool branches is computed as one wider
    conv and split (BatchNorm is per channel, so this is the same function as separate branches).
    """

    def __init__(self, channels: int, kernel: int = 5, stride: int = 1, dilations: tuple[int, ...] = (1, 2)):
        super().__init__()
        branches = len(dilations) + 2
        widths = [channels // branches] * branches
        widths[0] += channels - sum(widths)  # any remainder goes to the first branch
        self.widths = widths
        opened = sum(widths[:-1])
        entry = nn.Conv2d(channels, opened, 1)
        _conv_init(entry)
        entry_bn = nn.BatchNorm2d(opened)
        _bn_init(entry_bn, 1.0)
        self.entry = nn.Sequential(entry, entry_bn, nn.ReLU(inplace=True))
        self.dilated = nn.ModuleList(TemporalConv(w, w, kernel, stride, d) for w, d in zip(widths, dilations,
                                                                                          strict=False))
        pool_bn = nn.BatchNorm2d(widths[-2])
        _bn_init(pool_bn, 1.0)
        self.pool = nn.Sequential(nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), pool_bn)
        point = nn.Conv2d(channels, widths[-1], 1, stride=(stride, 1))
        _conv_init(point)
        point_bn = nn.BatchNorm2d(widths[-1])
        _bn_init(point_bn, 1.0)
        self.point = nn.Sequential(point, point_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        opened = self.entry(x).split(self.widths[:-1], dim=1)
        outs = [conv(part) for conv, part in zip(self.dilated, opened, strict=False)]
        outs += [self.pool(opened[-1]), self.point(x)]
        if memory_format(x) == torch.channels_last:  # where the sliced gradients cost most (bf16 on CPU)
            outs = [_ContiguousGrad.apply(out) for out in outs]
        return torch.cat(outs, dim=1)


class Unit(nn.Module):
    """CTR-GCN's TCN_GCN_unit: graph conv, multi-scale temporal conv, residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray, stride: int = 1,
                 residual: bool = True):
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, adjacency)
        self.tcn = MultiScaleTemporalConv(out_channels, stride=stride)
        self.relu = nn.ReLU(inplace=True)
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(in_channels, out_channels, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


# --------------------------------------------------------------------------------------------- encoder


class SkeletonEncoder(nn.Module):
    """x [N, C, T, V, M] -> per-frame tokens [N, T', d]; T' = T (stride "none") or ceil(T/4) ("stock")."""

    def __init__(self, layout: Layout, in_channels: int = 3, preset: str = "cpu", temporal_stride: str = "stock",
                 dropout: float = 0.0):
        super().__init__()
        spec = resolve_preset(EncoderConfig(preset=preset, temporal_stride=temporal_stride))
        self.layout, self.in_channels = layout, in_channels
        self.preset, self.temporal_stride, self.dropout = preset, temporal_stride, dropout
        adjacency = spatial_graph(layout)
        v = layout.num_joints
        self.data_bn = nn.BatchNorm1d(v * in_channels)
        _bn_init(self.data_bn, 1.0)
        units, previous = [], in_channels
        for i, width in enumerate(spec.widths):
            stride = 2 if temporal_stride == "stock" and i in spec.stride_units else 1
            units.append(Unit(previous, width, adjacency, stride=stride, residual=i > 0))
            previous = width
        self.units = nn.Sequential(*units)
        self.dim = previous
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def downsample(self) -> int:
        """How many input frames one output token covers."""
        spec = PRESETS[self.preset]
        return 2 ** len(spec.stride_units) if self.temporal_stride == "stock" else 1

    def output_length(self, frames: int) -> int:
        t = frames
        for _ in range(int(math.log2(self.downsample))):
            t = (t - 1) // 2 + 1
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected input [N, C, T, V, M], got shape {tuple(x.shape)}")
        n, c, t, v, m = x.shape
        if c != self.in_channels or v != self.layout.num_joints:
            raise ValueError(f"encoder expects C={self.in_channels}, V={self.layout.num_joints}; got C={c}, V={v}")
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)  # [NM, VC, T]
        x = self.data_bn(x)
        x = x.view(n * m, v, c, t).permute(0, 2, 3, 1)  # [NM, C, T, V]
        x = x.contiguous(memory_format=working_layout(x))
        x = self.units(x)  # [NM, d, T', V]
        x = x.mean(3).view(n, m, self.dim, -1).mean(1)  # [N, d, T']
        return self.drop(x.transpose(1, 2))  # [N, T', d]


def build_encoder(cfg: EncoderConfig, layout: Layout, in_channels: int = 3) -> SkeletonEncoder:
    resolve_preset(cfg)
    return SkeletonEncoder(layout, in_channels, cfg.preset, cfg.temporal_stride, cfg.dropout)


# --------------------------------------------------------------------------------------------- save/load

ENCODER_WEIGHTS = "encoder.safetensors"
ENCODER_META = "encoder.json"
ENCODER_FORMAT = "sugar-encoder/1"


def save_pretrained(encoder: SkeletonEncoder, folder: str | Path, processor: Processor,
                    data: DataSource | None = None, extra: dict[str, Any] | None = None) -> None:
    """A self-describing encoder folder: encoder.json (architecture, layout, the data it was trained on),
    processor.json (how samples become its input) and encoder.safetensors; written atomically, file by file."""
    folder = Path(folder)
    meta = {"format": ENCODER_FORMAT, "layout": encoder.layout.to_dict(), "in_channels": encoder.in_channels,
            "dim": encoder.dim, "preset": encoder.preset, "temporal_stride": encoder.temporal_stride,
            "dropout": encoder.dropout, "data": data.to_dict() if data is not None else None, **(extra or {})}
    atomic_save_safetensors(encoder.state_dict(), folder / ENCODER_WEIGHTS)
    processor.save_pretrained(folder)
    atomic_write_text(folder / ENCODER_META, json.dumps(meta, indent=2))


def _legacy_run_config(folder: Path) -> dict[str, Any]:
    """The training config of an encoder folder written before encoders described themselves (no
    processor.json): its run's config.yaml, or a clear message of what to do."""
    path = folder / "config.yaml"
    if not path.is_file():
        raise SugarError(f"{folder}: this encoder has no {PROCESSOR_FILE} and no config.yaml to rebuild it from; "
                         "re-export it with a current `sugar pretrain` (rerunning the command finishes again)")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SugarError(f"{path}: cannot read config ({exc})") from None
    return cfg


def _legacy_processor(folder: Path, layout: Layout, in_channels: int) -> Processor:
    data = _legacy_run_config(folder).get("data") or {}
    settings = {k: data[k] for k in ("frames", "max_persons", "centre", "align", "random_rotate", "stream")
                if k in data}
    if "random_crop" in data:
        settings["random_crop"] = tuple(data["random_crop"])
    return Processor(layout, in_channels, TransformSettings(**settings))


def _legacy_data_source(folder: Path) -> DataSource:
    cfg = _legacy_run_config(folder)
    data = cfg.get("data") or {}
    return DataSource(str(data.get("dataset", "synthetic")), data.get("protocol"), data.get("root"),
                      int(cfg.get("seed", 1)), float(data.get("val_fraction", 0.1)),
                      tuple(cfg.get("exclude_classes") or ()), cfg.get("knowledge"))


@dataclass
class EncoderBundle:
    """What `load_encoder` returns: the encoder (eval mode), its processor, where its data came from, and the
    rest of encoder.json (class list, best epoch)."""

    encoder: SkeletonEncoder
    processor: Processor
    data: DataSource | None
    meta: dict[str, Any]


def encoder_digest(folder: str | Path) -> str:
    """sha256 of a saved encoder's weights: what its extracted features came from, whatever its folder is called
    (a released name keeps its folder across releases)."""
    path = resolve_run(folder) / ENCODER_WEIGHTS
    if not path.is_file():
        raise SugarError(f"{path.parent}: not a finished encoder (missing {ENCODER_WEIGHTS})")
    return file_digest(path)


def load_encoder(folder: str | Path, map_location: str | torch.device = "cpu") -> EncoderBundle:
    """THE public loader of a saved encoder (a finished `sugar pretrain` run or any save_pretrained folder).

    Reads encoder.json, processor.json and encoder.safetensors; folders written before processor.json
    existed are rebuilt from their run's config.yaml. A released encoder's name (`sugar models list`) works too."""
    folder = resolve_run(folder)
    for name in (ENCODER_META, ENCODER_WEIGHTS):
        if not (folder / name).is_file():
            raise SugarError(f"{folder}: not a finished encoder (missing {name}); run `sugar pretrain` first")
    meta = read_json_object(folder / ENCODER_META, "the encoder description")
    try:
        layout = Layout.from_dict(meta["layout"], source=str(folder / ENCODER_META))
        in_channels = int(meta["in_channels"])
        encoder = SkeletonEncoder(layout, in_channels, meta["preset"], meta["temporal_stride"],
                                  float(meta.get("dropout", 0.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise SugarError(f"{folder / ENCODER_META}: unreadable encoder description ({exc})") from None
    if (folder / PROCESSOR_FILE).is_file():
        processor = Processor.from_pretrained(folder)
        data = DataSource.from_dict(meta["data"]) if meta.get("data") else None
    else:
        processor = _legacy_processor(folder, layout, in_channels)
        data = _legacy_data_source(folder)
    state = load_file(str(folder / ENCODER_WEIGHTS), device=str(map_location))
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SugarError(f"{folder / ENCODER_WEIGHTS}: weights do not fit the encoder "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return EncoderBundle(encoder.to(map_location).eval(), processor, data, meta)
