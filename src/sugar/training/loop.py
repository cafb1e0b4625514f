"""What stage 2 and stage 3 training share: the loop frame (`Trainer`), DDP set-up (torchrun, gloo/nccl,
global-batch BatchNorm on CPU), the rule for resuming a run directory, run naming, RNG state and learning-rate
schedules. Each stage supplies only its model, loss, schedule and validation.

Run directories and checkpoints themselves live in sugar.runs (evaluation reads them too).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from sugar.config import load_config, to_dict
from sugar.errors import ConfigError
from sugar.runs import MetricsWriter, RunDir
from sugar.training.averaging import WeightAverage

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


def writing(run: RunDir, info: DistInfo) -> contextlib.AbstractContextManager:
    """The run directory held for this job while it trains: by the main process (the only one that writes)."""
    return run.exclusive() if info.is_main else contextlib.nullcontext()


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


RESUMABLE_CHANGES = ("epochs", "keep")  # a longer schedule; which epoch is exported (re-exports without training)


def check_resume(run: RunDir, cfg: Any, ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> None:
    """A run directory belongs to one config: refuse to resume it with different settings (keys in `ignore` may
    change). A run without a checkpoint yet (a failed start) is started over."""
    if not run.config_path.is_file() or run.last_epoch() is None:
        return
    old = to_dict(load_config(type(cfg), run.config_path))
    new = to_dict(cfg)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in ignore)
    if changed:
        raise ConfigError(f"{run.config_path}: this run was started with different settings ({', '.join(changed)}); "
                          "use another --run-dir or the same settings to resume")


# --------------------------------------------------------------------------------------------- the loop frame


class ShardedBatches(Sampler[list[int]]):
    """This process's index lists, one per global batch, for one epoch.

    The epoch's order is a seeded permutation (seed + epoch, as torch's DistributedSampler), padded by repetition
    to a multiple of the world size; global batch k is order[kB:(k+1)B] and process r takes every world-th item of
    it, so a global batch holds the same samples for any number of processes. `start` skips batches already
    trained (a resumed epoch)."""

    def __init__(self, size: int, global_batch: int, info: DistInfo, seed: int, epoch: int, drop_last: bool,
                 start: int = 0):
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        if len(order) % info.world:
            order += order[: info.world - len(order) % info.world]
        mine = order[info.rank :: info.world]
        local = global_batch // info.world
        self.batches = [mine[i : i + local] for i in range(0, len(mine), local)]
        if drop_last and len(self.batches) > 1 and len(self.batches[-1]) < local:
            self.batches.pop()
        self.start = start

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches[self.start :])


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon 4th generation and later), where stage 3's bf16 step pays."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check and check())


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast pays."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, gpu: bool, cpu: bool = False) -> contextlib.AbstractContextManager:
    """Mixed precision: on GPU (`gpu`) bf16 where supported, else fp16 (with a GradScaler); on CPU (`cpu`) bf16
    where the CPU has it natively (AVX512-BF16/AMX; emulated bf16 is slower than fp32, so nothing there)."""
    if device.type == "cuda" and gpu:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and cpu and cpu_supports_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class LoopSpec:
    """How a stage wants to be trained (its config's loop keys)."""

    epochs: int
    batch_size: int  # global, split over processes
    seed: int
    drop_last: bool = False  # drop a last, smaller batch (BatchNorm statistics of a few samples are noise)
    grad_accum: int = 1
    max_grad_norm: float | None = None
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps mid-epoch (0: once per epoch)
    log_every: int = 10  # optimizer steps between TensorBoard loss points
    amp: bool = False  # mixed precision on GPU
    cpu_bf16: bool = False  # bf16 autocast on CPUs with native bf16
    num_workers: int = 0
    desc: str = "epoch"
    ema_decay: float = 0.0  # > 0: validate and keep an EMA of the weights (sugar.training.averaging); 0: off
    keep: str = "best"  # best: the epoch with the best val_top1 (the first of ties) | last: the last epoch's weights


KEEP = ("best", "last")  # which epoch's weights a run keeps (LoopSpec.keep)

LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, torch.Tensor, int]]


class Trainer:
    """The one loop frame of both stages: seeded sharded batches, the learning-rate schedule, mixed precision,
    gradient accumulation and clipping, checkpoints (per epoch and every N steps), resuming them exactly,
    validation and the selected (best) weights, metrics.jsonl and TensorBoard.

    A stage supplies its model (what DDP wraps), optimizer, training set and collate function, and:
      loss_fn(model, batch) -> (loss to backpropagate, summed per-sample loss, samples) for this process;
      lr_at(step, steps_per_epoch, total_steps) -> base learning rate (groups scale it by their "lr_scale");
      weights() / load_weights(state): what a checkpoint holds (the whole model, or only what is trained);
      validate(epoch) -> the epoch record's extra keys (val_top1 selects the best epoch; None: keep the last).
    With spec.ema_decay > 0 validation and the best weights are the weights' moving average (checkpoints keep
    both, so a resumed run continues the same average).
    """

    def __init__(self, run: RunDir, info: DistInfo, spec: LoopSpec, *, model: nn.Module,
                 optimizer: torch.optim.Optimizer, train_set: Dataset, collate_fn: Callable | None, loss_fn: LossFn,
                 lr_at: Callable[[int, int, int], float], weights: Callable[[], dict[str, torch.Tensor]],
                 load_weights: Callable[[dict[str, torch.Tensor]], None],
                 validate: Callable[[int], dict[str, Any]], progress: bool = True):
        if spec.batch_size % info.world:
            raise ConfigError(f"batch_size {spec.batch_size} must be divisible by the {info.world} processes")
        self.run, self.info, self.spec = run, info, spec
        self.model, self.optimizer, self.train_set, self.collate_fn = model, optimizer, train_set, collate_fn
        self.loss_fn, self.lr_at, self.weights, self.load_weights = loss_fn, lr_at, weights, load_weights
        self.validate, self.progress = validate, progress
        fp16 = spec.amp and info.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.average = WeightAverage(model, spec.ema_decay) if spec.ema_decay else None
        if spec.keep not in KEEP:
            raise ConfigError(f"keep must be one of {', '.join(KEEP)}, got {spec.keep!r}")

    def batches(self, epoch: int, start: int = 0) -> ShardedBatches:
        return ShardedBatches(len(self.train_set), self.spec.batch_size, self.info, self.spec.seed, epoch,  # type: ignore[arg-type]
                              self.spec.drop_last, start)

    def fit(self, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train (or resume) to spec.epochs; returns the best record {"epoch", "val_top1"}, or
        {"stopped_at_step": n} when `stop_after_steps` ended this process's work early (resume tests)."""
        spec, info, run = self.spec, self.info, self.run
        steps_per_epoch = max(1, len(self.batches(0)) // spec.grad_accum)
        total_steps = steps_per_epoch * spec.epochs
        epoch, step, batch_in_epoch, best = 0, 0, 0, {"epoch": 0, "val_top1": -1.0}
        found = run.load_checkpoint(info.device)
        if found is not None:
            _, weights, state = found
            self.load_weights(weights)
            self.optimizer.load_state_dict(state["optimizer"])
            if "scaler" in state and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
            if self.average is not None:
                try:
                    self.average.load_state_dict(state.get("ema"))
                except ConfigError as exc:
                    raise ConfigError(f"{run.path}: {exc}") from None
            set_rng_state(state["rng"])
            epoch, step = int(state["epoch"]), int(state["step"])
            batch_in_epoch, best = int(state.get("batch_in_epoch", 0)), json.loads(state["best"])
            if info.is_main:
                run.truncate_metrics("step", step)
        writer = MetricsWriter(run, purge_step=step if found else None) if info.is_main else None

        def checkpoint() -> None:
            if info.is_main:
                state = {"optimizer": self.optimizer.state_dict(), "rng": rng_state(), "epoch": epoch, "step": step,
                         "batch_in_epoch": batch_in_epoch, "best": json.dumps(best)}
                if self.scaler.is_enabled():
                    state["scaler"] = self.scaler.state_dict()
                if self.average is not None:
                    state["ema"] = self.average.state_dict()
                run.save_checkpoint(step, {k: v.detach().cpu() for k, v in self.weights().items()}, state,
                                    epoch=epoch)
            barrier(info)

        steps_this_process = 0
        while epoch < spec.epochs:
            sampler = self.batches(epoch + 1, batch_in_epoch)
            for ds in (self.train_set, getattr(self.train_set, "dataset", None)):
                if hasattr(ds, "set_epoch"):
                    ds.set_epoch(epoch + 1)
            loader = DataLoader(self.train_set, batch_sampler=sampler, num_workers=spec.num_workers,
                                collate_fn=self.collate_fn, pin_memory=info.device.type == "cuda")
            total_batches = len(sampler) + batch_in_epoch
            usable = total_batches - total_batches % spec.grad_accum if total_batches >= spec.grad_accum \
                else total_batches
            self.model.train()
            t0 = time.time()
            sums = torch.zeros(2, dtype=torch.float64)
            bar = tqdm(total=usable, initial=batch_in_epoch, desc=f"{spec.desc} {epoch + 1}/{spec.epochs}",
                       leave=False, disable=not (self.progress and info.is_main))
            lr = self.lr_at(step, steps_per_epoch, total_steps)
            batches = iter(loader)
            while batch_in_epoch < usable:
                lr = self.lr_at(step, steps_per_epoch, total_steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                self.optimizer.zero_grad(set_to_none=True)
                for _ in range(min(spec.grad_accum, usable - batch_in_epoch)):
                    with autocast(info.device, spec.amp, spec.cpu_bf16):
                        loss, loss_sum, count = self.loss_fn(self.model, next(batches))
                    self.scaler.scale(loss / spec.grad_accum).backward()
                    sums += torch.tensor([float(loss_sum), float(count)], dtype=torch.float64)
                    batch_in_epoch += 1
                    bar.update(1)
                if spec.max_grad_norm:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.params, spec.max_grad_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.average is not None:
                    self.average.update()
                step += 1
                steps_this_process += 1
                if writer is not None and step % max(1, spec.log_every) == 0:
                    writer.scalar("train/loss", float(loss.detach()), step)
                    writer.scalar("train/lr", lr, step)
                if spec.checkpoint_every and step % spec.checkpoint_every == 0 and batch_in_epoch < usable:
                    checkpoint()
                if stop_after_steps is not None and steps_this_process >= stop_after_steps:
                    checkpoint()
                    bar.close()
                    return {"stopped_at_step": step}
            bar.close()
            if info.distributed:
                dist.all_reduce(sums)
            epoch, batch_in_epoch = epoch + 1, 0
            record: dict[str, Any] = {"epoch": epoch, "step": step, "lr": lr,
                                      "loss": float(sums[0] / sums[1].clamp_min(1))}
            if info.is_main:
                with self._kept_weights():
                    record.update(self.validate(epoch))
                    score = record.get("val_top1")
                    score = float(epoch) if score is None else score  # no validation: the last epoch is selected
                    if spec.keep == "last" or score > best["val_top1"]:
                        best = self._save_best(epoch, score)
                record["time"] = round(time.time() - t0, 3)
                assert writer is not None
                writer.epoch(record, step)
            checkpoint()
        if spec.keep == "last" and best["epoch"] != epoch and info.is_main:
            best = self._keep_last(epoch)  # a run trained under keep: best, finished again under keep: last
        if writer is not None:
            writer.close()
        return best

    def _kept_weights(self) -> contextlib.AbstractContextManager:
        """The weights a run validates and keeps: the moving average where there is one, else the model's own."""
        return self.average.swapped_in() if self.average is not None else contextlib.nullcontext()

    def _save_best(self, epoch: int, score: float) -> dict[str, Any]:
        best = {"epoch": epoch, "val_top1": score}
        self.run.save_best({k: v.detach().cpu() for k, v in self.weights().items()}, best)
        return best

    def _keep_last(self, epoch: int) -> dict[str, Any]:
        """Make the last epoch's weights (the average, with one) the kept ones; the model holds the last
        checkpoint's weights here, as a resumed run has nothing left to train."""
        with self._kept_weights():
            score = self.validate(epoch).get("val_top1")
            return self._save_best(epoch, float(epoch) if score is None else score)
