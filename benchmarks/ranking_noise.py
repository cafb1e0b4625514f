"""How far a recogniser's ranking moves under changes that should not matter: the prompt prefix held once
(sugar.models.shared_prefix) or copied into every row, batch 32 or 16, rows in reverse order.

int8 dynamic quantisation takes one activation scale per input tensor, so which samples share a batch changes
each answer's scores a little; this script measures that spread on real data, so a change to the ranking path can
be judged against it (fp32 should move by float rounding only).

    PYTHONPATH=src python benchmarks/ranking_noise.py --run nw-ucla --precision int8 --separating \
        --json benchmarks/results/ranking-noise-int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from sugar.models import shared_prefix
from sugar.models.inference import set_precision
from sugar.models.recognizer_io import load_recognizer
from sugar.models.released import resolve_run

VARIANTS = {  # name: (prefix held once, batch size, rows reversed)
    "copied prefix, batch 32": (False, 32, False),
    "held prefix, batch 32": (True, 32, False),
    "copied prefix, batch 16": (False, 16, False),
    "held prefix, batch 16": (True, 16, False),
    "copied prefix, batch 32, rows reversed": (False, 32, True),
}


def llm_alone(rec, tokens: list[torch.Tensor], actions: list[str], batch: int, reverse: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its log-likelihood per sample, the LLM alone (no text-head fusion)."""
    order = np.arange(len(tokens))[::-1] if reverse else np.arange(len(tokens))
    results = rec.recognize([tokens[i] for i in order], actions=actions, describe=False, batch_size=batch,
                            fusion=0.0, top_k=len(actions))
    pred, loglik = np.empty(len(tokens), dtype=int), np.empty(len(tokens))
    pred[order] = [actions.index(r["label"]) for r in results]
    loglik[order] = [r["loglik"] for r in results]
    return pred, loglik


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="nw-ucla", help="a tuned run or released name")
    ap.add_argument("--precision", default="int8", choices=("fp32", "int8"))
    ap.add_argument("--separating", action="store_true")
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rec = load_recognizer(resolve_run(args.run))
    set_precision(rec, args.precision)
    rec.rank_separating = args.separating
    enable = shared_prefix.enable
    report: dict = {"run": args.run, "precision": args.precision, "separating": args.separating}
    try:
        for split in args.splits:
            ds = rec.data.open_split(split, layout=rec.encoder.layout)
            samples = [ds[i] for i in range(len(ds))]
            labels, actions = np.asarray(ds.labels), list(ds.classes)
            tokens = [t for i in range(0, len(samples), 32) for t in rec.encode(samples[i:i + 32])]
            rows, base = {}, None
            for name, (held, batch, reverse) in VARIANTS.items():
                shared_prefix.enable = enable if held else (lambda model: False)
                t0 = time.perf_counter()
                pred, loglik = llm_alone(rec, tokens, actions, batch, reverse)
                base = loglik if base is None else base
                rows[name] = {"top1": float((pred == labels).mean()), "seconds": time.perf_counter() - t0,
                              "max_abs_loglik_change": float(np.abs(loglik - base).max())}
                print(f"{split:5s} {name:40s} top-1 {rows[name]['top1'] * 100:5.1f} %  "
                      f"max |d loglik| {rows[name]['max_abs_loglik_change']:.2e}", flush=True)
            report[split] = {"samples": len(tokens), "variants": rows}
    finally:
        shared_prefix.enable = enable
    report["load_avg_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
