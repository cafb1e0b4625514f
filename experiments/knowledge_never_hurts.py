"""Print the docs/RESULTS.md tables of "knowledge for new classes that never hurts" (issue 13).

1. Offline knowledge files (`sugar knowledge motion --provider hf`): per file, the classes whose motion text is
   word for word another class's, the classes in near-identical groups (sugar.knowledge.checks.same_motion),
   the near-duplicate pairs `sugar knowledge check` reports, and the classes that got the label template.
2. Stage-2 runs: test top-1 of the text head (report.json), the epochs and the training time (metrics.jsonl).

    PYTHONPATH=src python experiments/knowledge_never_hurts.py --knowledge NAME=FILE[:SECONDS] ... \
        --runs NAME=RUN_DIR ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sugar.knowledge import checks
from sugar.knowledge.schema import load_knowledge
from sugar.models.text import knowledge_duplicates


def knowledge_row(name: str, spec: str) -> str:
    path, _, seconds = spec.partition(":")
    know = load_knowledge(path)
    texts = [c.motion_text.lower() for c in know.classes]
    identical = sum(texts.count(t) > 1 for t in texts)
    near = {c.label for c in know.classes for o in know.classes
            if c.label != o.label and checks.same_motion(c.motion, o.motion)}
    templated = sum(c.motion == checks.template_motion(c.label) for c in know.classes)
    pairs = knowledge_duplicates(know)
    kinds = {k: sum(p.kind == k for p in pairs) for k in ("motion", "description")}
    per_class = f"{float(seconds) / len(know):.0f}" if seconds else "-"
    return (f"| {name} | {len(know)} | {identical} | {len(near)} | {kinds['motion']} | {kinds['description']} | "
            f"{templated} | {per_class} |")


def run_row(name: str, run: Path) -> str:
    report = json.loads((run / "report.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    test = report.get("test", {})
    minutes = sum(m.get("time", 0.0) for m in metrics) / 60
    return (f"| {name} | {100 * test.get('top1', float('nan')):.1f} | {100 * test.get('top5', float('nan')):.1f} | "
            f"{len(metrics)} | {report.get('best_epoch')} | {minutes:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--knowledge", nargs="*", default=[], help="NAME=FILE[:SECONDS of generation]")
    parser.add_argument("--runs", nargs="*", default=[], help="NAME=RUN_DIR")
    args = parser.parse_args()
    if args.knowledge:
        print("| knowledge file | classes | classes with another class's exact motion text | classes in "
              "near-identical motion groups | near-duplicate motion pairs (check) | near-duplicate description "
              "pairs (check) | label-template classes | s / class |")
        print("|---|---|---|---|---|---|---|---|")
        for item in args.knowledge:
            name, _, spec = item.partition("=")
            print(knowledge_row(name, spec))
    if args.runs:
        print("\n| run | text-head test top-1 % | top-5 % | epochs | best epoch | training min |")
        print("|---|---|---|---|---|---|")
        for item in args.runs:
            name, _, path = item.partition("=")
            if (Path(path) / "report.json").is_file():
                print(run_row(name, Path(path)))
            else:
                print(f"| {name} | (not finished) | | | | |")


if __name__ == "__main__":
    main()
