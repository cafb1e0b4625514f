"""Which of the LLM's linear layers read outlier ("massive") activations: per nn.Linear, the largest absolute input
value against the median over tokens of each token's largest one, while a tuned recogniser ranks real samples.

Layers with a large ratio cannot share one dynamic int8 scale per input tensor; this is how
`sugar.models.inference.FLOAT_LINEARS` was chosen (docs/benchmarks.md).

    PYTHONPATH=src python benchmarks/activations.py --run RUN --features FEATURES/val [--samples 16] [--top 15]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a `sugar tune` run or released recogniser name")
    ap.add_argument("--features", required=True, help="a `sugar extract` folder (the encoder tokens to rank)")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()

    from sugar.features import FeatureStore
    from sugar.models.recognizer_io import load_recognizer

    store = FeatureStore(args.features)
    tokens = [store[i][0] for i in range(min(args.samples, len(store)))]
    rec = load_recognizer(args.run, with_encoder=False)
    peaks: dict[str, list[float]] = {}

    def watch(name: str):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inputs[0].detach().abs().flatten(0, -2)
            seen = peaks.setdefault(name, [0.0, 0.0])
            seen[0] = max(seen[0], float(x.max()))
            seen[1] = max(seen[1], float(x.max(-1).values.median()))
        return hook

    for name, module in rec.llm.named_modules():
        if type(module) is nn.Linear:
            module.register_forward_hook(watch(name))
    with torch.no_grad():
        rec.recognize(tokens, describe=False, batch_size=len(tokens))
    rows = sorted(peaks.items(), key=lambda kv: -kv[1][0] / max(kv[1][1], 1e-6))
    print("| linear layer | largest input | median token's largest | ratio |\n|---|---|---|---|")
    for name, (peak, typical) in rows[:args.top]:
        print(f"| {name.removeprefix('base_model.model.')} | {peak:.1f} | {typical:.2f} | {peak / typical:.0f} |")


if __name__ == "__main__":
    main()
