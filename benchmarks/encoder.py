"""Encoder speed: training and inference samples/s and peak memory, per preset, temporal stride and shape.

Each configuration runs in its own subprocess so that peak RSS (resource.getrusage ru_maxrss, minus the RSS
after the model and the batch are built) belongs to it alone; on GPU, torch.cuda.max_memory_allocated.
Training = forward + backward + SGD step on the encoder with a mean-token loss, in train mode. Speeds are
batch size / median step time (the medians resist the stalls of a shared CPU); every step time is in the JSON.

  python benchmarks/encoder.py                      # NTU and NW-UCLA shapes, both presets, both strides
  python benchmarks/encoder.py --presets paper --strides stock --json out.json --profile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {  # name: (layout, T, M, batch)
    "ntu": ("ntu25", 64, 2, 16),
    "nw-ucla": ("kinect20", 52, 1, 16),
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def use_reference_formulation(model=None) -> None:  # type: ignore[no-untyped-def]
    """Swap in CTR-GCN's straightforward formulation (same weights): per-subset convs with the time-mean after
    the relation convs, alpha applied to the full refined topology, einsum aggregation, and one 1x1 conv per
    temporal branch. The A/B baseline for the fused code in sugar.models.encoder."""
    import torch
    from torch import nn

    from sugar.models import encoder as enc

    def ctrgc(self, x, adjacency, alpha):  # type: ignore[no-untyped-def]
        r, c, y = self.rel, self.out, 0
        for i in range(self.subsets):
            q = nn.functional.conv2d(x, self.phi.weight[i * r:(i + 1) * r], self.phi.bias[i * r:(i + 1) * r]).mean(-2)
            k = nn.functional.conv2d(x, self.psi.weight[i * r:(i + 1) * r], self.psi.bias[i * r:(i + 1) * r]).mean(-2)
            v = nn.functional.conv2d(x, self.value.weight[i * c:(i + 1) * c], self.value.bias[i * c:(i + 1) * c])
            rel = torch.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))
            topo = nn.functional.conv2d(rel, self.lift.weight[i * c:(i + 1) * c],
                                        self.lift.bias[i * c:(i + 1) * c]) * alpha + adjacency[i]
            y = y + torch.einsum("ncuv,nctv->nctu", topo, v)
        return y

    def tcn(self, x):  # type: ignore[no-untyped-def]
        conv, bn = self.entry[0], self.entry[1]
        outs, start = [], 0
        for i, w in enumerate(self.widths[:-1]):
            sl = slice(start, start + w)
            h = nn.functional.conv2d(x, conv.weight[sl], conv.bias[sl])
            h = torch.relu(nn.functional.batch_norm(h, bn.running_mean[sl], bn.running_var[sl], bn.weight[sl],
                                                    bn.bias[sl], self.training, bn.momentum, bn.eps))
            outs.append(self.dilated[i](h) if i < len(self.dilated) else self.pool(h))
            start += w
        return torch.cat([*outs, self.point(x)], dim=1)

    if model is None:  # patch the classes (every encoder built afterwards)
        enc.CTRGC.forward = ctrgc
        enc.MultiScaleTemporalConv.forward = tcn
        return
    import types

    for module in model.modules():  # patch one model's modules only
        if isinstance(module, enc.CTRGC):
            module.forward = types.MethodType(ctrgc, module)
        elif isinstance(module, enc.MultiScaleTemporalConv):
            module.forward = types.MethodType(tcn, module)


def interleaved_ab(preset: str, stride: str, shape: str, rounds: int, threads: int) -> dict:
    """Reference vs fused vs fused-bf16 (vs fused-bf16-nchw) in ONE process, alternating steps, so CPU stalls hit
    all alike.

    Training = forward + backward + SGD step (train mode); inference = forward in eval mode under
    inference_mode. bf16 is the training loop's CPU autocast (the default where the CPU has native bf16), which
    runs the encoder channels-last; fused-bf16-nchw is the same kept in NCHW, the layout's ablation.
    Reported: best and median samples/s, and the ratios of the medians to the reference.
    """
    import contextlib
    import copy
    from unittest import mock

    import torch

    from sugar.models import encoder
    from sugar.models.encoder import SkeletonEncoder
    from sugar.skeleton.layouts import get_layout
    from sugar.training.loop import autocast

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layout_name, t, m, n = SHAPES[shape]
    layout = get_layout(layout_name)
    x = torch.randn(n, 3, t, layout.num_joints, m)
    fused = SkeletonEncoder(layout, 3, preset, stride)
    reference = copy.deepcopy(fused)
    use_reference_formulation(reference)
    variants = {"reference": (reference, False), "fused": (fused, False), "fused-bf16": (copy.deepcopy(fused), True),
                "fused-bf16-nchw": (copy.deepcopy(fused), True)}
    opts = {k: torch.optim.SGD(mod.parameters(), lr=0.01, momentum=0.9) for k, (mod, _) in variants.items()}
    cpu = torch.device("cpu")
    times: dict[str, dict[str, list[float]]] = {"train": {k: [] for k in variants}, "infer": {k: [] for k in variants}}

    def timed_steps(name: str, model: torch.nn.Module, bf16: bool, record: bool) -> None:
        model.train()
        start = time.perf_counter()
        opts[name].zero_grad(set_to_none=True)
        with autocast(cpu, False, bf16):
            loss = model(x).float().mean()
        loss.backward()
        opts[name].step()
        if record:
            times["train"][name].append(time.perf_counter() - start)
        model.eval()
        with torch.inference_mode(), autocast(cpu, False, bf16):
            start = time.perf_counter()
            model(x)
            if record:
                times["infer"][name].append(time.perf_counter() - start)

    keep_nchw = mock.patch.object(encoder, "working_layout", lambda x: torch.contiguous_format)
    for r in range(rounds + 1):  # round 0 is warm-up
        for name, (model, bf16) in variants.items():
            with keep_nchw if name == "fused-bf16-nchw" else contextlib.nullcontext():
                timed_steps(name, model, bf16, r > 0)
    row: dict = {"preset": preset, "stride": stride, "shape": shape, "batch": n, "threads": threads,
                 "load_avg": os.getloadavg()}
    for phase, per in times.items():
        for k, v in per.items():
            row[f"{k}_{phase}_samples_per_s_best"] = round(n / min(v), 2)
            row[f"{k}_{phase}_samples_per_s_median"] = round(n / statistics.median(v), 2)
        for k in ("fused", "fused-bf16", "fused-bf16-nchw"):
            row[f"{k}_{phase}_ratio"] = round(statistics.median(per["reference"]) / statistics.median(per[k]), 2)
    row["step_s"] = {f"{p}/{k}": [round(x, 3) for x in v] for p, per in times.items() for k, v in per.items()}
    return row


def measure(preset: str, stride: str, shape: str, steps: int, warmup: int, threads: int, profile: bool,
            variant: str = "fused", hold_freed: bool = False) -> dict:
    import torch

    from sugar.models.encoder import SkeletonEncoder
    from sugar.skeleton.layouts import get_layout
    from sugar.training.allocator import hold_freed_memory
    from sugar.training.loop import autocast

    held = hold_freed_memory() if hold_freed else False  # `sugar pretrain` does not: it gains nothing here
    if variant == "reference":
        use_reference_formulation()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layout_name, t, m, n = SHAPES[shape]
    layout = get_layout(layout_name)
    model = SkeletonEncoder(layout, 3, preset, stride).to(device)
    x = torch.randn(n, 3, t, layout.num_joints, m, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    base = rss_mb()
    # fused-bf16: the training loop's CPU bf16 autocast (cpu_bf16: true), on CPUs with native bf16
    mixed = lambda: autocast(device, variant == "fused-bf16", variant == "fused-bf16")  # noqa: E731

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with mixed():
            loss = model(x).float().mean()
        loss.backward()
        opt.step()

    model.train()
    for _ in range(warmup):
        train_step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step()
        sync()
        train_times.append(time.perf_counter() - start)
    train_mem = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else rss_mb() - base

    model.eval()
    with torch.inference_mode(), mixed():
        for _ in range(warmup):
            model(x)
        sync()
        infer_times = []
        for _ in range(steps):
            start = time.perf_counter()
            model(x)
            sync()
            infer_times.append(time.perf_counter() - start)
    out = {"variant": variant, "held_freed_memory": held, "preset": preset, "stride": stride, "shape": shape,
           "T": t, "V": layout.num_joints, "M": m, "batch": n,
           "threads": threads, "device": str(device), "params": sum(p.numel() for p in model.parameters()),
           "train_samples_per_s": round(n / statistics.median(train_times), 2),
           "infer_samples_per_s": round(n / statistics.median(infer_times), 2),
           "train_step_s": [round(v, 3) for v in train_times], "infer_step_s": [round(v, 3) for v in infer_times],
           "train_peak_mem_mb": round(train_mem, 1)}
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof

        model.train()
        with prof(activities=[ProfilerActivity.CPU]) as p:
            train_step()
        out["profile"] = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["paper", "cpu"])
    ap.add_argument("--strides", nargs="+", default=["stock", "none"])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--variants", nargs="+", default=["fused"], choices=["fused", "fused-bf16", "reference"],
                    help="fused: the project's encoder; fused-bf16: the same under CPU bf16 autocast; reference: "
                         "CTR-GCN's formulation with the same weights")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/encoder.json"))
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table per configuration")
    ap.add_argument("--ab", type=int, metavar="ROUNDS", help="interleaved fused-vs-reference A/B (train steps)")
    ap.add_argument("--hold-freed-memory", action="store_true",
                    help="keep freed memory in the heap, as `sugar tune` does (sugar.training.allocator)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = ap.parse_args()
    if args.one:
        preset, stride, shape, variant = args.one.split(",")
        print(json.dumps(measure(preset, stride, shape, args.steps, args.warmup, args.threads, args.profile,
                                 variant, args.hold_freed_memory)))
        return

    rows = []
    if args.ab:
        for shape in args.shapes:
            for preset in args.presets:
                for stride in args.strides:
                    row = interleaved_ab(preset, stride, shape, args.ab, args.threads)
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "step_s"}), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
        return
    for shape in args.shapes:
        for preset in args.presets:
            for stride in args.strides:
                for variant in args.variants:
                    cmd = [sys.executable, __file__, "--one", f"{preset},{stride},{shape},{variant}",
                           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
                    cmd += ["--profile"] if args.profile else []
                    cmd += ["--hold-freed-memory"] if args.hold_freed_memory else []
                    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    row = json.loads(res.stdout.strip().splitlines()[-1])
                    if "profile" in row:
                        print(f"--- {variant} {preset} {stride} {shape}\n{row.pop('profile')}")
                    rows.append(row)
                    print(f"{shape:8s} {preset:6s} stride={stride:5s} {variant:9s} "
                          f"train {row['train_samples_per_s']:8.2f}/s  infer {row['infer_samples_per_s']:8.2f}/s  "
                          f"peak +{row['train_peak_mem_mb']:.0f} MB", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
