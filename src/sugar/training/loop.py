"""Training plumbing shared by stage 2 and stage 3: atomic files, run directories, checkpoints, DDP, metrics.

A run directory holds config.yaml, metrics.jsonl (one JSON object per epoch), TensorBoard events under tb/,
and checkpoints/. A checkpoint for epoch e is a pair epoch-XXXX.safetensors (weights) + epoch-XXXX.state.pt
(optimizer, RNG and counters; read back with torch.load(weights_only=True)); `checkpoints/last.json` points
at the newest complete pair and is replaced atomically only after both files are on disk, so a run killed
at any instant (kill -9 included) resumes from a consistent epoch. Older pairs are removed afterwards.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sugar.fileio import atomic_save_safetensors, atomic_torch_save, atomic_write_text

# --------------------------------------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup_distributed(device: str | None = None) -> DistInfo:
    """Single process, or DDP when launched by torchrun (WORLD_SIZE > 1): nccl on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local_rank, dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward is again a sum over ranks (the gradient of a replicated total)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class DistBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm with statistics over all ranks, for CPU (gloo) runs where torch's SyncBatchNorm refuses.

    Sums and squared sums are all-reduced with a differentiable all-reduce, so the
    forward and backward equal a single-process BatchNorm over the global batch.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp_min(1)), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Global-batch BatchNorm under DDP: torch's SyncBatchNorm on GPU, DistBatchNorm on CPU."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, DistBatchNorm):
        out = DistBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        out.load_state_dict(module.state_dict())
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_sync_batchnorm(child, device))
    return out


# --------------------------------------------------------------------------------------------- run directory


class RunDir:
    """One training run's folder: config, metrics, TensorBoard events, checkpoints."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    def create(self) -> RunDir:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    # ---- checkpoints
    def save_checkpoint(self, epoch: int, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Write the pair for `epoch`, then point last.json at it, then drop older pairs."""
        stem = f"epoch-{epoch:04d}"
        atomic_save_safetensors(weights, self.checkpoints / f"{stem}.safetensors", {"epoch": str(epoch)})
        atomic_torch_save(state, self.checkpoints / f"{stem}.state.pt")
        atomic_write_text(self.checkpoints / "last.json", json.dumps({"epoch": epoch, "stem": stem}))
        for old in self.checkpoints.glob("epoch-*"):
            if not old.name.startswith(stem + "."):
                old.unlink(missing_ok=True)

    def last_epoch(self) -> int | None:
        pointer = self.checkpoints / "last.json"
        if not pointer.is_file():
            return None
        return int(json.loads(pointer.read_text())["epoch"])

    def load_checkpoint(self, device: str | torch.device = "cpu") -> tuple[int, dict[str, torch.Tensor], dict] | None:
        """(epoch, weights, state) of the newest complete checkpoint, or None when the run has none yet."""
        from safetensors.torch import load_file

        pointer = self.checkpoints / "last.json"
        if not pointer.is_file():
            return None
        info = json.loads(pointer.read_text())
        weights = load_file(str(self.checkpoints / f"{info['stem']}.safetensors"), device=str(device))
        state = torch.load(self.checkpoints / f"{info['stem']}.state.pt", map_location=device, weights_only=True)
        return int(info["epoch"]), weights, state

    def save_best(self, weights: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        atomic_save_safetensors(weights, self.checkpoints / "best.safetensors", {"epoch": str(info.get("epoch"))})
        atomic_write_text(self.checkpoints / "best.json", json.dumps(info))

    def load_best(self, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict] | None:
        from safetensors.torch import load_file

        if not (self.checkpoints / "best.json").is_file():
            return None
        return (load_file(str(self.checkpoints / "best.safetensors"), device=str(device)),
                json.loads((self.checkpoints / "best.json").read_text()))

    # ---- metrics
    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop metric lines written after the checkpoint we resume from (a kill between the two writes)."""
        kept = [m for m in self.read_metrics() if m.get("epoch", 0) <= last_epoch]
        atomic_write_text(self.metrics_path, "".join(json.dumps(m) + "\n" for m in kept))


class MetricsWriter:
    """Appends one JSON line per epoch to metrics.jsonl and mirrors scalars to TensorBoard (tb/)."""

    def __init__(self, run: RunDir, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.run = run
        self.tb = SummaryWriter(str(run.path / "tb"), purge_step=purge_step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.tb.add_scalar(tag, value, step)

    def epoch(self, record: dict[str, Any], step: int) -> None:
        with open(self.run.metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for key, value in record.items():
            if key != "epoch" and isinstance(value, int | float) and value is not None:
                self.tb.add_scalar(f"epoch/{key}", value, step)
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def step_lr(step: int, steps_per_epoch: int, base_lr: float, warmup_epochs: int, lr_steps: tuple[int, ...],
            decay: float) -> float:
    """Linear warm-up over `warmup_epochs` then x`decay` at each epoch in `lr_steps` (CTR-GCN's schedule)."""
    epoch_float = step / max(1, steps_per_epoch)
    if warmup_epochs > 0 and epoch_float < warmup_epochs:
        return base_lr * (step + 1) / (warmup_epochs * steps_per_epoch)
    epoch = step // max(1, steps_per_epoch)
    return base_lr * decay ** sum(epoch >= s for s in lr_steps)
