"""Stage-3 speed on this machine: recognition throughput (rank / generate, batch 1 / 32, with and without the
prompt-prefix KV cache) and one training step, with the real SmolLM2-135M-Instruct.

Inputs are precomputed encoder tokens (random values of the stage-2 "cpu" encoder's shape: T'=16, d=128), so
the numbers are the bridge + LLM part; the encoder's own cost is stage 2's. The bridge and LoRA adapters are
freshly initialised, with the --actions dataset's knowledge descriptions (the training answers and the
"rank by answer" candidates), unless --run points at a tuned run (speed does not depend on the weight values,
except that generate mode decodes until the model stops or the token budget ends). Each configuration runs in its own
process so that its peak resident memory (ru_maxrss) is its own.

    PYTHONPATH=src python benchmarks/recognize.py [--classes 10] [--batches 3] [--run RUN] [--json OUT]
        [--tune-set bridge.num_queries=8 ...]   # the fresh recogniser's TuneConfig, e.g. the demo's stage 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

CONFIGS = [
    # (name, mode, batch, prefix cache, describe, precision, rank_by, fast): precision fp32 | bf16 | int8 (the
    # LLM's weights, models/inference.py); fast: rank stops at each entry's first separating token, or, for
    # train-step, the shared prompt prefix runs once per batch (+ CPU bf16 autocast when the name says bf16, with
    # the frozen linear weights held in bf16 as `sugar tune` does)
    ("rank", "rank", 1, True, False, "fp32", "label", False),
    ("rank", "rank", 1, False, False, "fp32", "label", False),
    ("rank bf16", "rank", 1, True, False, "bf16", "label", False),
    ("rank bf16 separating", "rank", 1, True, False, "bf16", "label", True),
    ("rank", "rank", 32, True, False, "fp32", "label", False),
    ("rank", "rank", 32, False, False, "fp32", "label", False),
    ("rank separating", "rank", 32, True, False, "fp32", "label", True),
    ("rank bf16", "rank", 32, True, False, "bf16", "label", False),
    ("rank bf16 separating", "rank", 32, True, False, "bf16", "label", True),
    ("rank int8", "rank", 32, True, False, "int8", "label", False),
    ("rank int8 separating", "rank", 32, True, False, "int8", "label", True),
    ("rank by answer", "rank", 32, True, False, "fp32", "answer", False),
    ("rank by answer bf16", "rank", 32, True, False, "bf16", "answer", False),
    ("rank by answer int8", "rank", 32, True, False, "int8", "answer", False),
    ("rank+describe", "rank", 32, True, True, "fp32", "label", False),
    ("rank+describe bf16", "rank", 32, True, True, "bf16", "label", False),
    ("rank+describe int8", "rank", 32, True, True, "int8", "label", False),
    ("generate", "generate", 1, True, True, "fp32", "label", False),
    ("generate", "generate", 1, False, True, "fp32", "label", False),
    ("generate", "generate", 32, True, True, "fp32", "label", False),
    ("generate", "generate", 32, False, True, "fp32", "label", False),
    ("train-step", "train", 8, False, False, "fp32", "label", False),
    ("train-step shared-prefix bf16", "train", 8, False, False, "fp32", "label", True),
    ("train-step shared-prefix", "train", 8, False, False, "fp32", "label", True),
    ("rank separating", "rank", 1, True, False, "fp32", "label", True),
    ("rank int8", "rank", 1, True, False, "int8", "label", False),
    ("rank int8 separating", "rank", 1, True, False, "int8", "label", True),
]


def _recognizer(args: argparse.Namespace):
    from sugar.config import TuneConfig, load_config
    from sugar.models.recognizer import Recognizer
    from sugar.skeleton.datasets import class_names

    if args.run:
        from sugar.models.recognizer_io import load_recognizer

        return load_recognizer(args.run, with_encoder=args.skeletons)
    from sugar.knowledge.schema import load_knowledge

    actions = list(class_names(args.actions))[: args.classes]
    descriptions = {c.label: c.description for c in load_knowledge(args.actions).classes if c.label in actions}
    torch.manual_seed(0)
    return Recognizer.build(load_config(TuneConfig, overrides=args.tune_set), args.dim, actions, descriptions)


def _skeletons(rec, batch: int, frames: int, g: torch.Generator) -> list:
    """Random skeleton sequences in the recogniser's encoder layout (speed does not depend on the values)."""
    from sugar.errors import SugarError
    from sugar.skeleton.sample import Sample

    if rec.processor is None:
        raise SugarError("--skeletons needs a --run whose recogniser has its encoder")
    shape = (1, frames, rec.processor.layout.num_joints, rec.processor.dims)
    return [Sample(f"bench-{i}", torch.rand(shape, generator=g).numpy()) for i in range(batch)]


@contextlib.contextmanager
def _profiled(on: bool):
    """With --profile: torch.profiler over the timed batches, its operator table (by self CPU time) to stderr."""
    if not on:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        yield
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)


def run_one(args: argparse.Namespace, index: int) -> dict:
    name, mode, batch, cached, describe, precision, rank_by, fast = CONFIGS[index]
    from sugar.training.allocator import hold_freed_memory

    held = hold_freed_memory() if mode == "train" and not args.system_malloc else False  # as `sugar tune` does
    torch.set_num_threads(args.threads)
    rec = _recognizer(args)
    if precision != "fp32":
        from sugar.models.inference import set_precision

        set_precision(rec.eval(), precision)
    if args.skeletons:
        from sugar.models.inference import set_encoder_precision

        set_encoder_precision(rec, args.encoder_precision)
    rec.rank_separating = fast and mode == "rank"
    rec.share_prefix = fast
    actions = rec.actions
    g = torch.Generator().manual_seed(1)
    if args.skeletons:  # whole skeletons through the run's encoder: what one request to `sugar serve` costs
        tokens = _skeletons(rec, batch, args.skeleton_frames, g)
    else:
        tokens = [torch.randn(args.frames, rec.encoder_dim, generator=g) for _ in range(batch)]
    record = {"config": name, "mode": mode, "batch": batch, "prefix_cache": cached, "describe": describe,
              "precision": precision, "fast": fast,
              "rank_by": rank_by,
              "classes": len(actions), "action_tokens": rec.cfg.bridge.num_queries,
              "inputs": f"skeletons of {args.skeleton_frames} frames" if args.skeletons else "encoder tokens",
              "fusion_weight": rec.fusion_weight,
              "encoder_precision": args.encoder_precision if args.skeletons else None,
              "held_freed_memory": held}
    if mode == "train":
        rec.train()
        params = [p for p in rec.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        labels = [i % len(actions) for i in range(batch)]
        times = []
        from sugar.training.frozen_bf16 import FrozenLinearsInBf16
        from sugar.training.loop import autocast, cpu_supports_bf16

        mixed = fast and "bf16" in name

        def step() -> None:
            t0 = time.perf_counter()
            opt.zero_grad()
            with autocast(torch.device("cpu"), False, mixed):
                loss = rec.loss(tokens, labels)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)

        # as `sugar tune` with cpu_bf16: the frozen LLM's linear weights held in bf16 while training
        frozen = FrozenLinearsInBf16(rec.llm, enabled=mixed and cpu_supports_bf16())
        with frozen.held():
            step()  # the first step (one-time set-up) is reported apart and never profiled
            with _profiled(args.profile):
                for _ in range(args.batches):
                    step()
        record.update({"step_s": sum(times[1:]) / len(times[1:]), "first_step_s": times[0],
                       "frozen_in_bf16": bool(frozen.linears),
                       "answer_tokens": rec.cfg.max_answer_tokens, "lora_dropout": rec.cfg.lora.dropout})
    else:
        rec.eval()
        rec.use_prefix_cache = cached
        t0 = time.perf_counter()
        # warm-up (+ prefix cache build)
        rec.recognize(tokens, mode=mode, describe=describe, batch_size=batch, rank_by=rank_by)
        record["first_batch_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with _profiled(args.profile):
            for _ in range(args.batches):
                out = rec.recognize(tokens, mode=mode, describe=describe, batch_size=batch, rank_by=rank_by)
        dt = time.perf_counter() - t0
        record.update({"samples_per_s": args.batches * batch / dt, "batch_s": dt / args.batches,
                       "example": {k: out[0][k] for k in ("label", "match") if k in out[0]}})
    record["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return record


def markdown_table(saved: dict) -> str:
    """The docs' table: one row per configuration of a --json result file."""
    lines = ["| configuration | batch | prefix cache | samples/s | s per batch (step) | peak RSS MiB |",
             "|---|---|---|---|---|---|"]  # the configuration's name carries its precision and fast paths
    for r in saved["results"]:
        speed = f"{r['samples_per_s']:.2f}" if "samples_per_s" in r else "-"
        per = r.get("batch_s", r.get("step_s", float("nan")))
        lines.append(f"| {r['config']} | {r['batch']} | {'yes' if r['prefix_cache'] else 'no'} | {speed} | "
                     f"{per:.2f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actions", default="nw-ucla", help="dataset whose action list is ranked")
    ap.add_argument("--classes", type=int, default=10, help="use the first N entries of that list")
    ap.add_argument("--batches", type=int, default=3, help="timed batches per configuration (after one warm-up)")
    ap.add_argument("--frames", type=int, default=16, help="encoder tokens per sample (T')")
    ap.add_argument("--dim", type=int, default=128, help="encoder width (d)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--run", default=None, help="a tuned run directory or released name (default: fresh bridge/LoRA)")
    ap.add_argument("--skeletons", action="store_true",
                    help="feed whole skeleton sequences through --run's encoder (end-to-end latency) instead of "
                         "precomputed encoder tokens")
    ap.add_argument("--skeleton-frames", type=int, default=52, help="frames per skeleton with --skeletons")
    ap.add_argument("--encoder-precision", default="fp32", choices=("fp32", "bf16", "auto"),
                    help="with --skeletons: the encoder's precision (sugar.models.inference.set_encoder_precision)")
    ap.add_argument("--tune-set", action="append", default=[], metavar="KEY=VALUE",
                    help="TuneConfig override for the fresh recogniser, repeatable (e.g. bridge.num_queries=8)")
    ap.add_argument("--profile", action="store_true",
                    help="print each configuration's operator profile (torch.profiler) over its timed batches")
    ap.add_argument("--select", default=None, help="only the configurations whose name contains this text")
    ap.add_argument("--configs", default=None, help="comma-separated indices into CONFIGS (default: all)")
    ap.add_argument("--system-malloc", action="store_true",
                    help="train configurations: leave glibc malloc's defaults instead of keeping freed memory in the "
                         "heap as `sugar tune` does (sugar.training.allocator; recognition never keeps it)")
    ap.add_argument("--only", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--table", default=None, metavar="JSON", help="print a saved result file as a markdown table")
    args = ap.parse_args()
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())))
        return
    if args.only is not None:
        print(json.dumps(run_one(args, args.only)))
        return
    # build the converted-model cache once, outside the timed processes
    from sugar.models.llm import load_causal_lm

    load_causal_lm()
    results = []
    for i in range(len(CONFIGS)):
        if args.select and args.select not in CONFIGS[i][0]:
            continue
        if args.configs and str(i) not in args.configs.split(","):
            continue
        cmd = [sys.executable, __file__, "--only", str(i), *sys.argv[1:]]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        if args.profile:
            print(done.stderr[done.stderr.find("---"):], flush=True)
        out = done.stdout.strip().splitlines()[-1]
        rec = json.loads(out)
        results.append(rec)
        speed = f"{rec['samples_per_s']:.2f} samples/s" if "samples_per_s" in rec else f"{rec['step_s']:.2f} s/step"
        print(f"{rec['config']:>20} batch {rec['batch']:>2} prefix-cache {rec['prefix_cache']!s:>5}: {speed:>18}"
              f"  peak RSS {rec['peak_rss_mib']:.0f} MiB", flush=True)
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": args.threads, "load_avg_after": os.getloadavg()}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
