"""Print docs/RESULTS.md's stage-2 tables from the run directories of experiments/stage2_results.sh.

Reads each run's config.yaml, metrics.jsonl (per-epoch training time), report.json and
evaluation/test/results.json (written by `sugar evaluate RUN --split test`), so the numbers in the doc are
generated, never typed.

    PYTHONPATH=src python experiments/collect_results.py [--runs runs/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

# Published top-1 (%) quoted for comparison; they are not produced here.
REFERENCES = {
    "ucla": [("CTR-GCN (ICCV 2021), 4-stream ensemble (joint, bone, motions); ours: joints only", 96.5),
             ("InfoGCN (CVPR 2022)", 97.0)],
    "msr": [("Lie group (Vemulapalli et al., CVPR 2014), mean over 10 random subject splits; ours: subjects "
             "1,3,5,7,9 train", 90.7)],
}


def pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.1f}"


def load(run: Path) -> dict[str, Any] | None:
    """Everything the tables need from one run, or None when it has not finished (no evaluation yet)."""
    res_path = run / "evaluation" / "test" / "results.json"
    if not res_path.is_file():
        return None
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    report = json.loads((run / "report.json").read_text())
    return {"name": run.name, "cfg": cfg, "metrics": metrics, "report": report,
            "results": json.loads(res_path.read_text())}


def setting(r: dict[str, Any]) -> str:
    c = r["cfg"]
    total = sum(m["time"] for m in r["metrics"])
    return (f"{c['epochs']} ep, best ep {r['report']['best_epoch']}, {total / 60:.1f} min "
            f"({total / max(1, len(r['metrics'])):.0f} s/ep)")


def head_row(label: str, r: dict[str, Any], head: str, view: str = "all") -> str:
    h = r["results"]["heads"][head][view]
    return (f"| {label} | {head} | {h['samples']} | {pct(h['top1'])} | {pct(h['top5'])} | "
            f"{pct(h['mean_class_accuracy'])} | {setting(r)} |")


def supervised_table(title: str, runs: Path, prefix: str, key: str) -> list[str]:
    lines = [f"### {title}", "", "| method | head | test samples | top-1 % | top-5 % | mean class acc % | training |",
             "|---|---|---|---|---|---|---|"]
    found = False
    for name, label, head in ((f"{prefix}-milnce", "MIL-NCE (knowledge texts)", "text"),
                              (f"{prefix}-ce", "CE only (linear classifier)", "ce")):
        r = load(runs / name)
        if r is not None:
            lines.append(head_row(f"{label}, run `{name}`", r, head))
            found = True
    for label, top1 in REFERENCES[key]:
        lines.append(f"| {label} | - | - | {top1:.1f} | - | - | published |")
    return [*lines, ""] if found else []


def zeroshot_table(runs: Path) -> list[str]:
    lines = ["### NW-UCLA zero-shot (text head, 2 held-out classes per seed)", "",
             "| seed | held-out classes | unseen test samples | zero-shot top-1 % (2-way) | "
             "seen classes top-1 % | training |", "|---|---|---|---|---|---|"]
    tops = []
    for seed in (1, 2, 3):
        r = load(runs / f"ucla-zs-seed{seed}")
        if r is None:
            continue
        views = r["results"]["heads"]["text"]
        zs, seen = views["zero_shot"], views["seen"]
        tops.append(zs["top1"])
        lines.append(f"| {seed} | {', '.join(r['cfg']['exclude_classes'])} | {zs['samples']} | {pct(zs['top1'])} | "
                     f"{pct(seen['top1'])} | {setting(r)} |")
    if not tops:
        return []
    lines.append(f"| mean of {len(tops)} | | | {pct(sum(tops) / len(tops))} | | |")
    return [*lines, ""]


def ablation_table(runs: Path) -> list[str]:
    rows = [("ucla-ce", "CE only"), ("ucla-abl-visual", "CE + visual"), ("ucla-abl-motion", "CE + motion"),
            ("ucla-abl-both", "CE + motion + visual")]
    lines = ["### NW-UCLA knowledge ablation (CE head; paper Table, Toyota SH: 69.2 / 69.4 / 72.1 / 73.4)", "",
             "| method | head | test samples | top-1 % | top-5 % | mean class acc % | training |",
             "|---|---|---|---|---|---|---|"]
    n = 0
    for name, label in rows:
        r = load(runs / name)
        if r is not None:
            lines.append(head_row(f"{label}, run `{name}`", r, "ce"))
            n += 1
    return [*lines, ""] if n > 1 else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/results"))
    runs = parser.parse_args().runs
    out = []
    out += supervised_table("NW-UCLA cross-view (train views 1+2, test view 3)", runs, "ucla", "ucla")
    out += supervised_table("MSR Action3D cross-subject (train subjects 1,3,5,7,9)", runs, "msr", "msr")
    out += zeroshot_table(runs)
    out += ablation_table(runs)
    print("\n".join(out) if out else f"no finished runs under {runs}")


if __name__ == "__main__":
    main()
