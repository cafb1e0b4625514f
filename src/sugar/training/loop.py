"""What stage 2 and stage 3 training share: DDP set-up (torchrun, gloo/nccl, global-batch BatchNorm on CPU),
the rule for resuming a run directory, run naming, RNG state and learning-rate schedules.

Run directories and checkpoints themselves live in sugar.runs (evaluation reads them too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sugar.config import load_config, to_dict
from sugar.errors import ConfigError
from sugar.runs import RunDir

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


def default_run_dir(stage: str, name: str, protocol: str | None = None) -> Path:
    """runs/<stage>/<name>[-<protocol>]: fixed for a command, so rerunning it resumes the same run."""
    return Path("runs") / stage / (name + (f"-{protocol}" if protocol else ""))


def check_resume(run: RunDir, cfg: Any, ignore: tuple[str, ...] = ("epochs",)) -> None:
    """A run directory belongs to one config: refuse to resume it with different settings (keys in `ignore`,
    such as a longer `epochs`, may change). A run without a checkpoint yet (a failed start) is started over."""
    if not run.config_path.is_file() or run.last_epoch() is None:
        return
    old = to_dict(load_config(type(cfg), run.config_path))
    new = to_dict(cfg)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in ignore)
    if changed:
        raise ConfigError(f"{run.config_path}: this run was started with different settings ({', '.join(changed)}); "
                          "use another --run-dir or the same settings to resume")
