"""How fast the procedural dataset is generated, and how fast one sequence is drawn as a GIF.

Generation: `make_synthetic(per_class, seed)` for all 10 classes, repeated; reports samples per second.
Drawing: `sugar.viz.render_sequence` of one 60-frame synthetic sample; reports frames per second.

    PYTHONPATH=src python benchmarks/synthetic_speed.py [--per-class 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synthetic_speed.json"))
    args = ap.parse_args()

    from sugar import viz
    from sugar.skeleton.synthetic import SYNTHETIC_CLASSES, make_synthetic

    make_synthetic(1, 0)  # warm-up: imports and layout tables
    rates, frames = [], 0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        samples = make_synthetic(args.per_class, seed=r)
        rates.append(len(samples) / (time.perf_counter() - t0))
        frames += sum(s.num_frames for s in samples)
    sample = make_synthetic(1, 0, min_frames=60, max_frames=60, classes=("wave",))[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        viz.render_sequence(sample.joints, "ntu25", Path(tmp) / "wave.gif", label="wave")
        gif_s = time.perf_counter() - t0
    result = {
        "samples_per_run": args.per_class * len(SYNTHETIC_CLASSES),
        "mean_frames": frames / (args.repeats * args.per_class * len(SYNTHETIC_CLASSES)),
        "samples_per_s": {"runs": rates, "median": statistics.median(rates)},
        "gif_60_frames_s": gif_s,
        "gif_frames_per_s": 60 / gif_s,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "command": "PYTHONPATH=src python benchmarks/synthetic_speed.py",
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
