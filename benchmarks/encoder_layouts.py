"""Why the encoder runs channels-last under CPU bf16 (docs/benchmarks.md, Stage 2): one 1x1 convolution in NCHW
vs NHWC, bf16 vs fp32, and BatchNorm's forward + backward on a contiguous gradient vs on the channel slice that
torch.cat's backward hands each temporal branch. Medians of repeated calls, one thread.

    PYTHONPATH=src python benchmarks/encoder_layouts.py [--json benchmarks/results/encoder-layouts.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def median_ms(fn: Callable[[], object], repeats: int = 15, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def conv_layouts() -> dict[str, float]:
    """A 1x1 conv 128 -> 768 on [16, 128, 26, 20] (the paper preset's value conv at NW-UCLA's middle stage)."""
    conv = nn.Conv2d(128, 768, 1).eval()
    x = torch.randn(16, 128, 26, 20)
    out = {}
    with torch.inference_mode():
        out["fp32 NCHW"] = median_ms(lambda: conv(x))
        cb, xb = nn.Conv2d(128, 768, 1).eval().bfloat16(), x.bfloat16()
        out["bf16 NCHW"] = median_ms(lambda: cb(xb))
        cl, xl = cb.to(memory_format=torch.channels_last), xb.contiguous(memory_format=torch.channels_last)
        out["bf16 NHWC"] = median_ms(lambda: cl(xl))
    return out


def batchnorm_gradients() -> dict[str, float]:
    """BatchNorm2d(32) forward + backward on [16, 32, 26, 20] bf16 with a contiguous vs a sliced gradient."""
    bn = nn.BatchNorm2d(32).train()
    out = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(16, 32, 26, 20).bfloat16().contiguous(memory_format=layout).requires_grad_()
        whole = torch.randn(16, 128, 26, 20).bfloat16().contiguous(memory_format=layout)
        name = "NHWC" if layout == torch.channels_last else "NCHW"
        for kind, grad in (("contiguous", whole[:, 32:64].contiguous(memory_format=layout)),
                           ("slice", whole[:, 32:64])):
            out[f"{name} {kind} grad"] = median_ms(lambda g=grad, x=x: bn(x).backward(g))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = {"conv_1x1_ms": conv_layouts(), "batchnorm_fwd_bwd_ms": batchnorm_gradients(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
