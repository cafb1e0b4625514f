"""Do the recogniser's generated descriptions agree with the label it chose, and are they whole sentences?

For a seeded subset of a split, the recogniser answers in rank mode with descriptions (its default evidence,
fused or not); the text encoder (all-MiniLM-L6-v2, or the text head's model) compares each description with every
listed class's knowledge description (sugar.evaluation.recognizer.description_agreement). Writes
RUN/evaluation/descriptions-<split>.json (read by experiments/collect_results.py):

    PYTHONPATH=src python experiments/description_agreement.py runs/results/msr-llm --split test --limit 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sugar.evaluation.recognizer import description_agreement
from sugar.fileio import atomic_write_text
from sugar.models.recognizer_io import load_recognizer
from sugar.models.text import get_text_encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=64, help="seeded random subset of this many samples")
    ap.add_argument("--fusion", type=float, default=None, help="text-head weight (default: the calibrated one)")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    rec = load_recognizer(args.run)
    assert rec.data is not None and rec.encoder is not None, "the recogniser needs its encoder"
    ds = rec.data.open_split(args.split, layout=rec.encoder.layout).on_list(rec.actions)
    rows = np.random.default_rng(0).permutation(len(ds))[:args.limit]
    samples = [ds[int(r)] for r in rows]
    truth = [ds.classes[int(ds.labels[r])] for r in rows]
    results = rec.recognize(samples, mode="rank", batch_size=args.batch_size, fusion=args.fusion)
    model = rec.evidence.text_model if rec.evidence is not None else "all-MiniLM-L6-v2"
    encoder = get_text_encoder(model)
    descriptions = [r["description"] or "" for r in results]
    chosen = [r["label"] for r in results]
    report = {"run": str(args.run), "split": args.split, "fusion": results[0].get("fusion") if results else None,
              "fusion_ce": results[0].get("fusion_ce") if results else None,
              "text_model": model, "top1": float(np.mean([c == t for c, t in zip(chosen, truth, strict=True)])),
              **description_agreement(descriptions, chosen, rec.actions, rec.descriptions, encoder.encode),
              "examples": [{"truth": t, "label": c, "description": d}
                           for t, c, d in list(zip(truth, chosen, descriptions, strict=True))[:8]]}
    out = args.run / "evaluation" / f"descriptions-{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "examples"}, indent=1))
    for e in report["examples"]:
        print(f"  [{e['truth']}] -> {e['label']}. {e['description']}")


if __name__ == "__main__":
    main()
