"""How long loading a dataset takes: cold (parse every file into an empty cache) vs warm (from the cache).

Each run opens NW-UCLA's xview trainval and test splits (all 1,484 sequences) and touches every sample's
array (sums it), so the memory-mapped data is really read. Cold runs each use a fresh empty cache folder;
warm runs reuse the cache built by the first cold run. The source files are in the OS page cache after the
first run, so cold timings measure parsing, not the disk.

    PYTHONPATH=src python benchmarks/data_load.py [--dataset nw-ucla] [--cold 3] [--warm 5]
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

import numpy as np


def load_all(name: str, root: str | None) -> tuple[int, float]:
    """Open train+test, read every sample's joints; returns (samples, checksum)."""
    from sugar.skeleton.datasets import open_dataset

    total, checksum = 0, 0.0
    for split in ("trainval", "test"):
        d = open_dataset(name, root=root, split=split)
        for s in d:
            checksum += float(np.add.reduce(s.joints, axis=None))
            total += 1
    return total, checksum


def timed(name: str, root: str | None) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    n, checksum = load_all(name, root)
    return time.perf_counter() - t0, n, checksum


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="nw-ucla")
    ap.add_argument("--root", default=None)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "data_load.json"))
    args = ap.parse_args()

    import sugar.skeleton.datasets  # noqa: F401  (import cost outside the timings)

    cold, warm, counts, sums = [], [], set(), set()
    with tempfile.TemporaryDirectory() as keep:
        for i in range(args.cold):
            with tempfile.TemporaryDirectory() as fresh:
                os.environ["SUGAR_CACHE"] = fresh if i else keep
                dt, n, c = timed(args.dataset, args.root)
                cold.append(dt)
                counts.add(n)
                sums.add(round(c, 2))
        os.environ["SUGAR_CACHE"] = keep
        for _ in range(args.warm):
            dt, n, c = timed(args.dataset, args.root)
            warm.append(dt)
            counts.add(n)
            sums.add(round(c, 2))
    if len(counts) != 1 or len(sums) != 1:
        raise SystemExit(f"runs disagree: sample counts {counts}, checksums {sums}")

    result = {
        "dataset": args.dataset,
        "samples": counts.pop(),
        "cold_s": {"runs": cold, "median": statistics.median(cold), "min": min(cold)},
        "warm_s": {"runs": warm, "median": statistics.median(warm), "min": min(warm)},
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "command": "PYTHONPATH=src python benchmarks/data_load.py",
    }
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.dataset}: load all {result['samples']} sequences and touch every array")
    for col in ("cache", "runs", "median (s)", "min (s)"):
        table.add_column(col)
    for label, key in (("cold (parse + write cache)", "cold_s"), ("warm (memory-mapped cache)", "warm_s")):
        r = result[key]
        table.add_row(label, str(len(r["runs"])), f"{r['median']:.3f}", f"{r['min']:.3f}")
    Console().print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
