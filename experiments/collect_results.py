"""Print docs/RESULTS.md's stage-2 and stage-3 tables from the run directories of experiments/stage2_results.sh.

Reads each run's config.yaml, metrics.jsonl (per-epoch training time), report.json and
evaluation/test/results.json (written by `sugar evaluate RUN --split test`), so the numbers in the doc are
generated, never typed.

    PYTHONPATH=src python experiments/collect_results.py [--runs runs/results]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import binomtest

# Published top-1 (%) quoted for comparison; they are not produced here.
REFERENCES = {
    "ucla": [("CTR-GCN (ICCV 2021), 4-stream ensemble (joint, bone, motions); ours: joints only", 96.5),
             ("InfoGCN (CVPR 2022)", 97.0)],
    "msr": [("Lie group (Vemulapalli et al., CVPR 2014), mean over 10 random subject splits; ours: subjects "
             "1,3,5,7,9 train", 90.7)],
}


# runs over seeds 1-3 are named NAME, NAME-s2, NAME-s3 (the experiment scripts' seed_suffix / seed_name)
SEED_SUFFIXES = ("", "-s2", "-s3")


def seed_family(name: str) -> str:
    """NAME of NAME-sN (a seeded run of the setting NAME), else the name itself."""
    stem, sep, seed = name.rpartition("-s")
    return stem if sep and seed.isdigit() else name


def pooled(values: list[float], counts: list[int]) -> float:
    """The mean of per-part accuracies weighted by their sample counts: the accuracy over all parts together."""
    return float(np.dot(values, counts) / sum(counts))


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
    for seed in ZS_SEEDS:
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


def best_val(r: dict[str, Any]) -> str:
    """The selection number: the kept epoch's validation top-1 of the run's main head and the epoch (report.json;
    the best one, or the last with `keep: last`)."""
    if not any(m.get("val_top1") is not None for m in r["metrics"]):
        return "- (no val part: last epoch kept)"
    last = ", last kept" if r["cfg"].get("keep") == "last" else ""
    return f"{pct(r['report']['best_val_top1'])} (ep {r['report']['best_epoch']}{last})"


def both_heads(r: dict[str, Any], head: str) -> str:
    h = r["results"]["heads"].get(head)
    return pct(h["all"]["top1"]) if h else "-"


RECIPES = [("msr-milnce", "MIL-NCE only (published row above)"), ("msr-ce", "CE only (published row above)"),
           ("msr-r-joint", "MIL-NCE + CE jointly"),
           ("msr-r-aug", "+ rotation ±1 rad (was 0.3), per-axis scale 0.7-1.3"),
           ("msr-r-neg", "MIL-NCE + CE, every training class's texts as candidates (text_negatives=all)"),
           ("msr-r-neg-text", "MIL-NCE only, text_negatives=all"),
           ("msr-r-rep", "+ repeat 4 (each sample 4x per epoch, augmented differently)"),
           ("msr-k-label", "label-only texts, MIL-NCE + CE, text_negatives=all (released until 2026-12-05)"),
           ("msr-f-label", "msr-k-label on the field schedule (65 epochs, lr x0.1 at 50), random frames, min-max "
                           "(released since 2026-12-05)")]


def recipe_table(runs: Path) -> list[str]:
    """Issue 14's recipe steps on MSR Action3D: chosen by validation top-1, test shown for the record."""
    lines = ["### MSR Action3D recipe steps (msr-action3d-cpu.yaml, 40 epochs unless said; chosen on validation)", "",
             "| run | change | val top-1 % (best epoch) | text head test top-1 % | CE head test top-1 % | training |",
             "|---|---|---|---|---|---|"]
    rows = [(name, label, load(runs / name)) for name, label in RECIPES]
    rows = [(n, lab, r) for n, lab, r in rows if r is not None]
    lines += [f"| `{n}` | {lab} | {best_val(r)} | {both_heads(r, 'text')} | {both_heads(r, 'ce')} | {setting(r)} |"
              for n, lab, r in rows]
    return [*lines, ""] if rows else []


ZS_SEEDS = range(1, 11)  # the zero-shot seeds looked for (ZS_SEEDS / MSR_ZS_SEEDS of the scripts); missing ones skipped

FIELD_STREAMS = [("ucla-f-joint", "joint"), ("ucla-f-bone", "bone"), ("ucla-f-joint-motion", "joint motion"),
                 ("ucla-f-bone-motion", "bone motion"),
                 ("ucla-p-joint", "joint, `paper` preset (CTR-GCN's widths; `--set model.preset=paper`)"),
                 ("ucla-c1-joint", "joint, CTR-GCN's NW-UCLA data recipe (random frames, +-60 deg xy, min-max)"),
                 ("ucla-pr-joint", "joint, `paper` preset with CTR-GCN's NW-UCLA data recipe"),
                 ("ucla-c1-joint-all", "joint, CTR-GCN's NW-UCLA data recipe on every training sample (no val part, "
                                       "`refit_joint`)"),
                 ("ucla-c-joint", "joint, CTR-GCN's NW-UCLA data recipe, repeat 5 (325 views of each sample)"),
                 ("ucla-fr-bone", "bone, CTR-GCN's NW-UCLA data recipe"),
                 ("ucla-fr-joint-motion", "joint motion, CTR-GCN's NW-UCLA data recipe"),
                 ("ucla-fr-bone-motion", "bone motion, CTR-GCN's NW-UCLA data recipe"),
                 ("ucla-prs-bone", "bone, `paper` preset with CTR-GCN's NW-UCLA data recipe"),
                 ("ucla-prs-joint-motion", "joint motion, `paper` preset with CTR-GCN's NW-UCLA data recipe"),
                 ("ucla-prs-bone-motion", "bone motion, `paper` preset with CTR-GCN's NW-UCLA data recipe"),
                 ("ucla-vp-field", "view proxy, earlier field settings (`xview:1>2`: test columns are view 2)"),
                 ("ucla-vp-recipe", "view proxy, CTR-GCN's data recipe (`xview:1>2`: test columns are view 2)"),
                 ("ucla-vp-paper", "view proxy, `paper` preset with the recipe (`xview:1>2`: test columns are view 2)"),
                 ("ucla-vp-drop", "view proxy, the recipe + dropout 0.3 before the heads (`viewproxy`)"),
                 ("ucla-vp-xyz", "view proxy, the recipe rotating about x, y and z (`viewproxy`)"),
                 ("ucla-vp-rot90", "view proxy, the recipe rotating up to +-90 deg (`viewproxy2`)"),
                 ("ucla-vp-wd", "view proxy, the recipe with weight decay 4e-4 (`viewproxy2`)"),
                 ("ucla-vp-rep2", "view proxy, the recipe with repeat 2 (`viewproxy2`)"),
                 ("ucla-vp-scale", "view proxy, the recipe scaling by 0.3-1.7 (`viewproxy3`)"),
                 ("ucla-vp-f64", "view proxy, the recipe with 64 frames per clip (`viewproxy3`)"),
                 *[(f"ucla-vp-rep{r}{suffix}", f"view proxy, the recipe with repeat {r}, seed {n}, last epoch "
                    f"(`viewproxy_candidate`, 2026-12-07)")
                   for r in (1, 5) for n, suffix in enumerate(SEED_SUFFIXES, 1)],
                 ("ucla-pr-joint-fp", "joint, `paper` preset with the recipe, test also scored every epoch "
                                      "(`field_protocol`)"),
                 ("ucla-c1-joint-fp", "joint, the recipe, test also scored every epoch (`field_protocol`)"),
                 ("ucla-c1-joint-fp-s2", "joint, the recipe, seed 2, test also scored every epoch (`field_protocol`)"),
                 ("ucla-c1-joint-fp-s3", "joint, the recipe, seed 3, test also scored every epoch (`field_protocol`)"),
                 *[(f"ucla-frl-{s}", f"{s.replace('-', ' ')}, the recipe, last epoch kept (`recipe_last_field`)")
                   for s in ("bone", "joint-motion", "bone-motion")],
                 ("ucla-pr-joint-last-fp", "joint, `paper` preset with the recipe, the same run at its last epoch "
                                           "(`keep: last`, `ucla_joint_last`)"),
                 *[(f"ucla-c1-joint-last-fp{suffix}", f"joint, the recipe, seed {n}, the same run at its last epoch "
                    f"(`keep: last`, `ucla_joint_last`)") for n, suffix in enumerate(SEED_SUFFIXES, 1)],
                 *[(f"ucla-c1-joint-ema-fp{suffix}", f"joint, the recipe with a moving average of the weights "
                    f"(`ema_decay: 0.995`), seed {n}, test also scored every epoch (`ema_joint`)")
                   for n, suffix in enumerate(SEED_SUFFIXES, 1)],
                 *[(f"ucla-r5-joint-fp{suffix}", f"joint, the recipe with repeat 5 (CTR-GCN's), seed {n}, last epoch, "
                    f"test also scored every epoch (`ucla_rep5_joint`)") for n, suffix in enumerate(SEED_SUFFIXES, 1)],
                 *[(f"ucla-r5-{s}", f"{s.replace('-', ' ')}, the recipe with repeat 5, seed 1, last epoch "
                    f"(`ucla_rep5_streams`)") for s in ("bone", "joint-motion", "bone-motion")],
                 *[(f"ucla-r5-{s}-s{seed}", f"{s.replace('-', ' ')}, the recipe with repeat 5, seed {seed}, last "
                    f"epoch (`ucla_rep5_seed_streams`)") for seed in (2, 3)
                   for s in ("joint", "bone", "joint-motion", "bone-motion")],
                 ("ucla-f64-joint", "joint, the recipe with 64 frames per clip (`recipe_f64`)"),
                 ("ucla-f64-bone", "bone, the recipe with 64 frames per clip (`recipe_f64`)"),
                 ("ucla-f64-joint-motion", "joint motion, the recipe with 64 frames per clip (`recipe_f64`)"),
                 ("ucla-f64-bone-motion", "bone motion, the recipe with 64 frames per clip (`recipe_f64`)")]

PROXY_SEEDS = [("ucla-vp-recipe", "CTR-GCN's data recipe"), ("ucla-vp-f64", "the recipe with 64 frames per clip"),
               ("ucla-vp-align", "the recipe with SGN view alignment (`data.align: true`)"),
               ("ucla-vp-ema", "the recipe with a moving average of the weights (`ema_decay: 0.995`)"),
               ("ucla-vp-last", "the recipe's runs at their last epoch (`keep: last`, `viewproxy_last`)"),
               ("ucla-vp-rep1", "the recipe (repeat 1), last epoch, rerun on an AMD EPYC (`viewproxy_candidate`)"),
               ("ucla-vp-rep5", "the recipe with repeat 5 (CTR-GCN's), last epoch (`viewproxy_candidate`)"),
               ("ucla-vp-paper-rep5", "the `paper` preset (CTR-GCN's widths) with repeat 5, last epoch "
                                      "(`viewproxy_candidate`)")]


def proxy_seeds_table(runs: Path) -> list[str]:
    """Issue 14: proxy candidates over seeds 1-3 (seed 1 is the run without a suffix), view-2 test top-1."""
    lines = ["### Cross-view proxy over seeds (`xview:1>2`: train view 1, score view 2; `viewproxyseeds`)", "",
             "| setting | runs | text head, seeds 1 / 2 / 3 % | mean | CE head, seeds 1 / 2 / 3 % | mean |",
             "|---|---|---|---|---|---|"]
    for stem, label in PROXY_SEEDS:
        found = [r for suffix in SEED_SUFFIXES if (r := load(runs / f"{stem}{suffix}")) is not None]
        if not found:  # a candidate's first seed is its screen (printed alone until the others finish)
            continue
        cells = []
        for head in ("text", "ce"):
            values = [heads_top1(r)[head] for r in found]
            cells += [" / ".join(pct(v) for v in values), pct(float(np.mean(values)))]
        names = ", ".join(f"`{r['name']}`" for r in found)
        lines.append(f"| {label} | {names} | {' | '.join(cells)} |")
        for n in (2, 3):  # seed ensembles (`ucla_proxy_seed_fuse`)
            summed = [fused_cell(runs, f"{stem}x{n}-fused-{head}-equal") for head in ("text", "ce")]
            if summed != ["-", "-"]:
                seeds = " + ".join(str(i) for i in range(1, n + 1))
                lines.append(f"| {label}, seeds {seeds} summed (`ucla_proxy_seed_fuse`) | `{stem}x{n}-fused-*-equal` "
                             f"| {summed[0]} | | {summed[1]} | |")
    return [*lines, ""] if len(lines) > 4 else []


def field_protocol_table(runs: Path) -> list[str]:
    """Issue 14: our selection (best val epoch, test once) beside the field's reporting (best test epoch)."""
    lines = ["### The field's reporting beside ours (NW-UCLA cross-view; `score_test_each_epoch`, nothing chosen "
             "from it)", "",
             "| run | ours: val-selected epoch, text / CE test top-1 % | field: best test epoch, text % (epoch) | "
             "field: best test epoch, CE % (epoch) | last epoch, text / CE % |",
             "|---|---|---|---|---|"]
    families: dict[str, list[dict[str, Any]]] = {}
    for name, _ in FIELD_STREAMS:
        r = load(runs / name)
        if r is None or "field_protocol" not in r["report"]:
            continue
        fp = r["report"]["field_protocol"]
        best = {h: f"{pct(fp[h]['best_top1'])} (ep {fp[h]['best_epoch']})" if h in fp else "-" for h in ("text", "ce")}
        last = " / ".join(pct(fp[h]["last_top1"]) if h in fp else "-" for h in ("text", "ce"))
        ours = f"{both_heads(r, 'text')} / {both_heads(r, 'ce')} ({best_val(r)})"
        lines.append(f"| `{name}` | {ours} | {best['text']} | {best['ce']} | {last} |")
        families.setdefault(seed_family(name), []).append(r)
    for family, found in families.items():  # seeds of one setting: the means
        if len(found) < 2:
            continue
        mean = {k: pct(float(np.mean(v))) for k, v in {
            "text": [heads_top1(r)["text"] for r in found], "ce": [heads_top1(r)["ce"] for r in found],
            **{f"field {h}": [r["report"]["field_protocol"][h]["best_top1"] for r in found] for h in ("text", "ce")},
            **{f"last {h}": [r["report"]["field_protocol"][h]["last_top1"] for r in found] for h in ("text", "ce")},
        }.items()}
        lines.append(f"| `{family}*`, mean of {len(found)} seeds | {mean['text']} / {mean['ce']} | "
                     f"{mean['field text']} | {mean['field ce']} | {mean['last text']} / {mean['last ce']} |")
    return [*lines, ""] if len(lines) > 4 else []


def fused_cell(runs: Path, name: str) -> str:
    rep = read_json(runs / name / "results.json")
    if rep is None:
        return "-"
    weights = "/".join(f"{w:g}" for w in rep["weights"])
    return f"{pct(rep['fused']['top1'])} (w {weights})"


FIELD_FUSED = [("ucla-f", "earlier field settings"), ("ucla-fr", "CTR-GCN's recipe (`recipe_field`)"),
               ("ucla-frp", "CTR-GCN's recipe, `paper` joint stream (`recipe_paper_field`)"),
               ("ucla-frc5", "CTR-GCN's recipe, 5 clips per sample (`recipe_clips`)"),
               ("ucla-fpp", "CTR-GCN's recipe, `paper` joint, bone and bone motion, recipe joint motion "
                            "(`paper_field_partial`)"),
               ("ucla-fpa", "CTR-GCN's recipe, all four streams `paper` (`paper_field`)"),
               ("ucla-frr", "the four released recipe streams, fp16 (`recipe_swap_bone_motion`)"),
               ("ucla-frs", "the released recipe streams with the `paper` bone motion (`recipe_swap_bone_motion`)"),
               ("ucla-frr5", "the four released recipe streams, fp16, 5 clips per sample (`released_clips`)"),
               ("ucla-frr1", "the four released streams (the recipe's last epochs since (10)), fp16 "
                             "(`released_field`)"),
               ("ucla-f64", "the recipe with 64 frames per clip (`fuse_f64`)"),
               ("ucla-f64c5", "the recipe with 64 frames per clip, 5 clips per sample (`fuse_f64`)"),
               ("ucla-frl", "the recipe, every stream at its last epoch (`keep: last`, `recipe_last_field`)"),
               ("ucla-frj5", "the four released streams with the repeat-5 joint (2026-12-07), fp16 "
                             "(`release_rep5_joint`)"),
               ("ucla-fr5", "the recipe with repeat 5, all four streams (`ucla_rep5_streams ucla_rep5_fuse`)"),
               ("ucla-frs5", "the four released streams after the repeat-5 streams that finished were released, "
                             "fp16 (`release_rep5_streams`)"),
               *[(f"ucla-fr5x2-s2-{n}", f"the released four and {which} (`ucla_rep5_seed_fuse`)",
                  f"{n} runs fused") for n, which in ((6, "seed 2 of the repeat-5 joint and bone"),
                                                      (8, "seed 2 of all four repeat-5 streams"))],
               ("ucla-frr8", "the eight released streams (seeds 1 and 2 of the repeat-5 four), fp16 "
                             "(`release_rep5_seed released_seeds`)", "8 runs fused"),
               *[(f"ucla-fr5x3-s3-{n}", f"the eight released streams and {which} (`R5_SEED=3 ucla_rep5_seed_fuse`)",
                  f"{n} runs fused") for n, which in ((10, "seed 3 of the repeat-5 joint and bone"),
                                                      (12, "seed 3 of all four repeat-5 streams"))],
               ("ucla-frr12", "the twelve released streams (seeds 1-3 of the repeat-5 four), fp16 "
                              "(`RELEASED_SEEDS=3 released_seeds`)", "12 runs fused")]

MSR_STREAMS = [("msr-f-label", "joint (released as `msr-action3d-joint`)"), ("msr-fs-bone", "bone"),
               ("msr-fs-joint-motion", "joint motion"), ("msr-fs-bone-motion", "bone motion"),
               *[(f"msr-fl-{s}", f"{s.replace('-', ' ')}, the same run at its last epoch (`msr_field_last`)")
                 for s in ("joint", "bone", "joint-motion", "bone-motion")]]
MSR_FUSED = [("msr-fs", "msr-f-label's settings (`msr_field`)"),
             ("msr-fsr", "the released streams, fp16 (`msr_field_released`)"),
             ("msr-fl", "the same runs at their last epoch (`msr_field_last`)")]


def streams_table(runs: Path, title: str, streams: list[tuple[str, str]],
                  fused: list[tuple[str, ...]]) -> list[str]:
    """Single streams and their fusions (weights chosen on val, and equal weights); fusions print without their
    streams' runs too (released streams are fused from the package)."""
    found = [(n, lab, r) for n, lab in streams if (r := load(runs / n)) is not None]
    lines = [f"| {lab} | `{n}` | {best_val(r)} | {both_heads(r, 'text')} | {both_heads(r, 'ce')} | {setting(r)} |"
             for n, lab, r in found]
    for prefix, described, *what in fused:  # what: how many runs, when not the four streams
        for tag, label in (("", "weights chosen on val"), ("-equal", "equal weights")):
            text, ce = fused_cell(runs, f"{prefix}-fused-text{tag}"), fused_cell(runs, f"{prefix}-fused-ce{tag}")
            val = "" if tag else f"{fused_cell(runs, f'{prefix}-fused-text-val')} text, " \
                                 f"{fused_cell(runs, f'{prefix}-fused-ce-val')} CE"
            if text != "-" or ce != "-":
                lines.append(f"| {what[0] if what else '4 streams fused'}, {described}, {label} | "
                             f"`{prefix}-fused-*{tag}` | {val} | {text} | {ce} | |")
    if not lines:
        return []
    return [title, "", "| stream | run | val top-1 % (best epoch) | text head test top-1 % | CE head test top-1 % | "
            "training |", "|---|---|---|---|---|---|", *lines, ""]


def field_table(runs: Path) -> list[str]:
    """Issue 14: NW-UCLA's four streams at CTR-GCN's schedule and their fusion (weights chosen on val)."""
    return streams_table(runs, "### NW-UCLA cross-view, four streams at CTR-GCN's schedule (nw-ucla-field-cpu.yaml, "
                               "65 epochs)", FIELD_STREAMS, FIELD_FUSED)


def msr_field_table(runs: Path) -> list[str]:
    """Issue 14: MSR Action3D's four streams on the field schedule and their fusion (weights chosen on val)."""
    return streams_table(runs, "### MSR Action3D cross-subject, four streams on the field schedule (msr-f-label's "
                               "settings, 65 epochs)", MSR_STREAMS, MSR_FUSED)


TEXTSCORE_MODELS = ["nw-ucla-field-joint", "nw-ucla-field-bone", "nw-ucla-field-joint-motion",
                    "nw-ucla-field-bone-motion", "nw-ucla-joint", "msr-action3d-joint"]


def textscore_table(runs: Path, released: Path) -> list[str]:
    """Issue 14: the text head's scoring rule (prototype vs mil) on the released encoders, from
    `stage2_results.sh textscore` (RELEASED/NAME/evaluation/<split>-text-<rule>); the rule is chosen on val."""

    def top1(name: str, split: str, rule: str, head: str = "text") -> float | None:
        res = read_json(released / name / "evaluation" / f"{split}-text-{rule}" / "results.json")
        return None if res is None else res["heads"][head]["all"]["top1"]

    rows = [m for m in TEXTSCORE_MODELS if top1(m, "val", "mil") is not None]
    if not rows:
        return []
    lines = ["### Text head scoring: prototype vs mil (released encoders; `stage2_results.sh textscore`)", "",
             "| released encoder | val: prototype | val: mil | rule chosen on val | test: prototype | test: mil | "
             "test: CE head |", "|---|---|---|---|---|---|---|"]
    for m in rows:
        val = {rule: top1(m, "val", rule) for rule in ("prototype", "mil")}
        chosen = "mil" if (val["mil"] or 0) > (val["prototype"] or 0) else "prototype"
        lines.append(f"| `{m}` | {pct(val['prototype'])} | {pct(val['mil'])} | {chosen} | "
                     f"{pct(top1(m, 'test', 'prototype'))} | {pct(top1(m, 'test', 'mil'))} | "
                     f"{pct(top1(m, 'test', 'prototype', 'ce'))} |")
    for tag, how in (("", "weights chosen on val"), ("-equal", "equal weights")):
        fused = {rule: read_json(runs / "textscore" / f"fused-{rule}{tag}" / "results.json")
                 for rule in ("prototype", "mil", "ce")}
        if any(fused.values()):
            cells = [pct(f["fused"]["top1"]) if f else "-" for f in fused.values()]
            weights = ", ".join(f"{rule} {f['weights']}" for rule, f in fused.items() if f and tag == "")
            lines.append(f"| four NW-UCLA streams fused, {how}{f' ({weights})' if weights else ''} | | | | "
                         f"{' | '.join(cells)} |")
    return [*lines, ""]


def knowledge_table(runs: Path, prefix: str, title: str) -> list[str]:
    """Issue 13: which knowledge the text head learns best from, every run MIL-NCE + CE with every class's texts
    as candidates (custom.yaml's loss) at the same budget; the class name is always one more positive text."""
    rows = [(f"{prefix}-r-neg", "shipped (hand-checked, motion + visual)"),
            (f"{prefix}-k-gen", "offline generator (SmolLM2-135M), as written for own data"),
            (f"{prefix}-k-label", "label only (no knowledge text)")]
    found = [(n, lab, r) for n, lab in rows if (r := load(runs / n)) is not None]
    if len(found) < 2:
        return []
    lines = [f"### {title}", "", "| knowledge | run | text head test top-1 % | CE head test top-1 % | val top-1 % "
             "(best epoch) | training |", "|---|---|---|---|---|---|"]
    lines += [f"| {lab} | `{n}` | {both_heads(r, 'text')} | {both_heads(r, 'ce')} | {best_val(r)} | {setting(r)} |"
              for n, lab, r in found]
    return [*lines, ""]


def knowledge_kind(cfg: dict[str, Any]) -> str:
    """What a stage-2 run's texts were: label only, a given file, or the dataset's shipped knowledge."""
    if not cfg.get("use_motion", True) and not cfg.get("use_visual", True):
        return "label only"
    return f"file `{Path(cfg['knowledge']).name}`" if cfg.get("knowledge") else "shipped"


OWN_RUNS = [("", "custom.yaml"), ("-ucfg", "custom.yaml with the built-in config's frames, carve and schedule")]


def own_defaults_table(runs: Path) -> list[str]:
    """Issue 13: custom.yaml's schedule chosen on VALIDATION (`stage2_results.sh owndefaults`); only the best
    validation top-1 is read, never the candidates' test numbers."""
    rows = []
    for key in ("msr", "ucla"):
        for tag, label in (("", "40 epochs, warm-up 1, lr x0.1 at 30 (custom.yaml now)"),
                           ("-sched30", "30 epochs, warm-up 3, lr x0.1 at 22 and 27 (custom.yaml before)")):
            report = read_json(runs / f"own-{key}{tag}" / "report.json")
            if report is not None:
                rows.append(f"| {key} | {label} | `own-{key}{tag}` | {pct(report['best_val_top1'])} "
                            f"(ep {report['best_epoch']}) |")
    if not rows:
        return []
    return ["### Own data: custom.yaml's schedule, chosen on validation (10 % carve, at least 2 per class)", "",
            "| folder | schedule | run | best val top-1 % (epoch) |", "|---|---|---|---|", *rows, ""]


def own_data_table(runs: Path, key: str, title: str, builtins: list[str]) -> list[str]:
    """Issue 13's check: a built-in dataset converted and trained as a user's own folder (offline knowledge,
    configs/pretrain/custom.yaml as is) against the best built-in run of the same loss, any knowledge."""
    own_runs = [(f"own-{key}{tag}", config, r) for tag, config in OWN_RUNS if (r := load(runs / f"own-{key}{tag}"))]
    if not own_runs:
        return []
    lines = [f"### {title}", "", "| run | data | knowledge | config | text head top-1 % | CE head top-1 % | "
             "mean class acc % (main head) | training |", "|---|---|---|---|---|---|---|---|"]
    best: dict[str, float] = {}
    for name in builtins:
        r = load(runs / name)
        if r is None:
            continue
        for head, h in r["results"]["heads"].items():
            best[head] = max(best.get(head, 0.0), h["all"]["top1"])
        main = "text" if "text" in r["results"]["heads"] else "ce"
        lines.append(f"| `{name}` | built-in | {knowledge_kind(r['cfg'])} | {r['cfg']['loss']}, "
                     f"{r['cfg']['epochs']} ep | {both_heads(r, 'text')} | {both_heads(r, 'ce')} | "
                     f"{pct(r['results']['heads'][main]['all']['mean_class_accuracy'])} | {setting(r)} |")
    gaps = []
    for name, config, own in own_runs:
        heads = own["results"]["heads"]
        lines.append(f"| `{name}` | converted folder | offline generator (SmolLM2) | {config} | "
                     f"{both_heads(own, 'text')} | {both_heads(own, 'ce')} | "
                     f"{pct(heads['text']['all']['mean_class_accuracy'])} | {setting(own)} |")
        diffs = [f"{head} {100 * (heads[head]['all']['top1'] - b):+.1f}" for head, b in best.items() if head in heads]
        gaps.append(f"`{name}` {', '.join(diffs)}")
    lines += ["", f"Own data minus the best built-in run, per head: {'; '.join(gaps)} points (target: no worse "
                  "than -2)."]
    return [*lines, ""]


def mean_sd(values: list[float]) -> str:
    """'mean ± sd' in percent (sample sd; just the mean for one value)."""
    if not values:
        return "-"
    arr = 100 * np.asarray(values)
    return f"{arr.mean():.1f}" + (f" ± {arr.std(ddof=1):.1f}" if len(arr) > 1 else "")


def heads_top1(r: dict[str, Any]) -> dict[str, float]:
    return {head: h["all"]["top1"] for head, h in r["results"]["heads"].items()}


def seeds_table(runs: Path) -> list[str]:
    """Issue 13 over seeds: own data (custom.yaml) vs the best built-in configuration (label-only texts), seed 1 =
    the runs of the own-data tables, seeds 2-10 from `stage2_results.sh seeds` (SEEDS)."""
    lines = []
    for key, builtin in (("ucla", "ucla-k-label"), ("msr", "msr-k-label")):
        means: dict[str, dict[str, float]] = {}
        for base in (f"own-{key}", builtin):
            names = [(1, base)] + [(seed, f"{base}-s{seed}") for seed in range(2, 11)]
            found = [(seed, r) for seed, name in names if (r := load(runs / name)) is not None]
            if not found:
                continue
            per = {head: [heads_top1(r)[head] for _, r in found] for head in ("text", "ce")}
            means[base] = {head: float(np.mean(v)) for head, v in per.items()}
            cells = " / ".join(f"{100 * heads_top1(r)['text']:.1f}" for _, r in found)
            lines.append(f"| {key} | `{base}` | {', '.join(str(s) for s, _ in found)} | {cells} | "
                         f"{mean_sd(per['text'])} | {mean_sd(per['ce'])} |")
        if len(means) == 2:
            own, ref = means[f"own-{key}"], means[builtin]
            lines.append(f"| {key} | own minus built-in (means) | | | {100 * (own['text'] - ref['text']):+.1f} | "
                         f"{100 * (own['ce'] - ref['ce']):+.1f} |")
    if not lines:
        return []
    return ["### Own data vs the best built-in configuration over seeds (`stage2_results.sh seeds`)", "",
            "| dataset | run | seeds | text head top-1 % per seed | text head mean ± sd | CE head mean ± sd |",
            "|---|---|---|---|---|---|", *lines, ""]


OWN_TEXTS = [("own-msr", "generated, templates as written"), ("own-msr-nt", "generated, templates as the name"),
             ("own-msr-ntall", "every motion as the name"), ("own-msr-label", "label only")]


def own_knowledge_table(runs: Path) -> list[str]:
    """Issue 13: what the offline knowledge does on the own MSR folder, seed by seed (same config, so the same
    validation carve): `stage2_results.sh ownlabel`, `ownnotemplate` and `ownntall` (the last two at commit 6566668).
    The choice reads the val columns only."""
    vals: dict[str, list[float]] = {name: [] for name, _ in OWN_TEXTS}
    tests: dict[str, list[dict[str, float]]] = {name: [] for name, _ in OWN_TEXTS}
    rows = []
    for seed in range(1, 11):
        tag = "" if seed == 1 else f"-s{seed}"
        found = {name: load(runs / f"{name}{tag}") for name, _ in OWN_TEXTS}
        if sum(r is not None for r in found.values()) < 2:
            continue
        cells_val, cells_test = [], []
        for name, r in found.items():
            if r is None:
                cells_val.append("-")
                cells_test.append("-")
                continue
            vals[name].append(max(m.get("val_top1") or 0.0 for m in r["metrics"]))
            tests[name].append(heads_top1(r))
            cells_val.append(pct(vals[name][-1]))
            cells_test.append(f"{pct(tests[name][-1]['text'])} / {pct(tests[name][-1]['ce'])}")
        rows.append(f"| {seed} | {' | '.join(cells_val)} | {' | '.join(cells_test)} |")
    if not rows:
        return []
    means_val = [f"**{mean_sd(vals[name])}**" for name, _ in OWN_TEXTS]
    means_test = [f"{mean_sd([t['text'] for t in tests[name]])} / {mean_sd([t['ce'] for t in tests[name]])}"
                  for name, _ in OWN_TEXTS]
    rows.append(f"| **mean** | {' | '.join(means_val)} | {' | '.join(means_test)} |")
    head = " | ".join(f"best val % ({label})" for _, label in OWN_TEXTS)
    test_head = " | ".join(f"test text / CE % ({label})" for _, label in OWN_TEXTS)
    rule = "|---" * (1 + 2 * len(OWN_TEXTS)) + "|"
    return ["### Own MSR folder: offline knowledge vs label-only texts, seed by seed (`stage2_results.sh ownlabel "
            "ownnotemplate ownntall`)", "", f"| seed | {head} | {test_head} |", rule, *rows, ""]


def msr_splits_table(runs: Path) -> list[str]:
    """Issue 14: MSR Action3D over 10 random subject splits (`stage2_results.sh msrsplits`), no choice made."""
    found = [r for i in range(10) if (r := load(runs / f"msr-split{i}")) is not None]
    if not found:
        return []
    lines = ["### MSR Action3D, random subject splits (5 training subjects each; msr-k-label's configuration)", "",
             "| run | training subjects | text head top-1 % | CE head top-1 % | test samples |",
             "|---|---|---|---|---|"]
    for r in found:
        subjects = str(r["cfg"]["data"]["protocol"]).split(":", 1)[-1]
        t = heads_top1(r)
        lines.append(f"| `{r['name']}` | {subjects} | {pct(t['text'])} | {pct(t['ce'])} | "
                     f"{r['results']['heads']['text']['all']['samples']} |")
    lines.append(f"| **mean of {len(found)}** | | **{mean_sd([heads_top1(r)['text'] for r in found])}** | "
                 f"**{mean_sd([heads_top1(r)['ce'] for r in found])}** | |")
    return [*lines, "", "Lie group (Vemulapalli et al., CVPR 2014), mean over 10 random subject splits: 90.7 %.", ""]


FOUR_STREAMS = ("joint", "bone", "joint-motion", "bone-motion")
FOUR_FUSIONS = {f"{kind}-{head}": f"-fused-{head}{tag}" for kind, tag in (("fused", ""), ("equal", "-equal"))
                for head in ("text", "ce")}  # what `stage2_results.sh fuse_streams PREFIX ...` writes


def four_streams(runs: Path, prefix: str) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]] | None:
    """PREFIX-STREAM runs fused by `fuse_streams PREFIX`: top-1 per stream (text head) and per fusion (FOUR_FUSIONS
    keys), the runs and the fusion reports; None until all of them have finished."""
    found = {st: load(runs / f"{prefix}-{st}") for st in FOUR_STREAMS}
    fused = {k: read_json(runs / f"{prefix}{suffix}" / "results.json") for k, suffix in FOUR_FUSIONS.items()}
    if any(r is None for r in found.values()) or any(r is None for r in fused.values()):
        return None
    values = {st: heads_top1(r)["text"] for st, r in found.items()}
    values.update({k: r["fused"]["top1"] for k, r in fused.items()})
    return values, found, fused


def msr_field_splits_table(runs: Path, setting: str = "") -> list[str]:
    """Issue 14: MSR's four streams over the 10 random subject splits (`stage2_results.sh msr_field_splits`), for
    msr-f-label's settings or a candidate's (FSP_TAG=`setting`: runs msr-fspI<setting>-STREAM)."""
    streams = FOUR_STREAMS
    rows, cols = [], {k: [] for k in (*streams, *FOUR_FUSIONS)}
    for i in range(10):
        got = four_streams(runs, f"msr-fsp{i}{setting}")
        if got is None:
            continue
        values, found, _ = got
        subjects = str(found["joint"]["cfg"]["data"]["protocol"]).split(":", 1)[-1]
        for k, v in values.items():
            cols[k].append(v)
        rows.append(f"| {i} | {subjects} | " + " | ".join(pct(values[s]) for s in streams) + " | "
                    f"{pct(values['fused-text'])} / {pct(values['fused-ce'])} | "
                    f"{pct(values['equal-text'])} / {pct(values['equal-ce'])} |")
    if not rows:
        return []
    mean = {k: mean_sd(v) for k, v in cols.items()}
    which = {"": "msr-f-label's settings", "-last": "the same runs at their last epoch, `msr_splits_last`"}.get(
        setting, f"FSP_TAG={setting}")
    return [f"### MSR Action3D, four streams over random subject splits (`stage2_results.sh msr_field_splits`; "
            f"{which}, 5 training subjects each)", "",
            "| split | training subjects | joint text top-1 % | bone | joint motion | bone motion | 4 streams fused, "
            "weights chosen on val: text / CE top-1 % | 4 streams fused, equal weights: text / CE top-1 % |",
            "|---|---|---|---|---|---|---|---|", *rows,
            f"| **mean of {len(rows)}** | | " + " | ".join(mean[s] for s in streams) +
            f" | **{mean['fused-text']}** / **{mean['fused-ce']}** | {mean['equal-text']} / {mean['equal-ce']} |", "",
            "Lie group (Vemulapalli et al., CVPR 2014), mean over 10 random subject splits: 90.7 %.", ""]


PROXY_SUBJECTS = (1, 3, 5, 7, 9)


def msr_proxy_tags(runs: Path) -> list[str]:
    """The PX_TAGs of `msr_proxy_folds` runs under `runs` ("" is the baseline; "-bN" ends a setting's seed N)."""
    return sorted({p.name[len("msr-px"):].rsplit("-s", 1)[0] for p in runs.glob("msr-px*-s[0-9]")})


def msr_proxy_runs(runs: Path, tag: str) -> list[dict[str, Any]] | None:
    """A tag's five fold runs, in PROXY_SUBJECTS order (None until all five are evaluated)."""
    found = [load(runs / f"msr-px{tag}-s{s}") for s in PROXY_SUBJECTS]
    return None if any(r is None for r in found) else found  # type: ignore[return-value]


def pooled_heads(found: list[dict[str, Any]]) -> dict[str, float]:
    """Text and CE top-1 pooled over the folds (every training sample scored once)."""
    counts = [r["results"]["heads"]["text"]["all"]["samples"] for r in found]
    return {head: pooled([heads_top1(r)[head] for r in found], counts) for head in ("text", "ce")}


def msr_proxy_seeds_table(runs: Path) -> list[str]:
    """Each MSR proxy setting over its seeds (tag TAG is seed 1, TAG-bN seed N), as the two-seed rules read them."""
    settings = sorted({re.sub(r"-b[0-9]+$", "", t) for t in msr_proxy_tags(runs)})
    lines = ["### MSR Action3D cross-subject proxy over seeds (pooled over the five folds; seed 1 is the tag without "
             "`-bN`)", "",
             "| setting | seeds | pooled text head, by seed % | mean | pooled CE head, by seed % | mean |",
             "|---|---|---|---|---|---|"]
    for setting in settings:
        seeds = [(1, setting)] + [(n, f"{setting}-b{n}") for n in range(2, 10)]
        found = [(n, pooled_heads(folds)) for n, tag in seeds if (folds := msr_proxy_runs(runs, tag)) is not None]
        if len(found) < 2:
            continue
        cells = []
        for head in ("text", "ce"):
            values = [got[head] for _, got in found]
            cells += [" / ".join(pct(v) for v in values), pct(float(np.mean(values)))]
        lines.append(f"| `msr-px{setting}` | {', '.join(str(n) for n, _ in found)} | {' | '.join(cells)} |")
    return [*lines, ""] if len(lines) > 4 else []


def proxy_fusion(runs: Path, prefix: str) -> tuple[int, dict[str, float], str] | None:
    """`fuse_streams PREFIX` on a proxy: (samples scored, top-1 per stream and fusion, the val-chosen weights of the
    text / CE fusions); None until all of it has finished."""
    got = four_streams(runs, prefix)
    if got is None:
        return None
    values, _, fused = got
    weights = " / ".join(",".join(f"{w:g}" for w in fused[f"fused-{h}"]["weights"]) for h in ("text", "ce"))
    return fused["fused-text"]["fused"]["samples"], values, weights


def msr_proxy_streams_folds(runs: Path, stem: str) -> list[tuple[int, int, dict[str, float], str]]:
    """One seed's finished folds of `msr_proxy_streams`: (held-out subject, samples, top-1 per stream and fusion,
    the val-chosen weights of the text / CE fusions)."""
    folds = []
    for s in PROXY_SUBJECTS:
        got = proxy_fusion(runs, f"{stem}-s{s}")
        if got is not None:
            folds.append((s, *got))
    return folds


def msr_proxy_streams_table(runs: Path) -> list[str]:
    """Issue 14: the four streams on each proxy fold (`msr_proxy_streams`), fused at the fold's val-chosen weights
    and by the plain sum, pooled over the folds' held-out subjects: which fusion rule MSR reports."""
    rows, every, seeds = [], [], 0
    for seed in range(1, 10):
        stem = "msr-pxf" + ("" if seed == 1 else f"-b{seed}")
        folds = msr_proxy_streams_folds(runs, stem)
        if not folds:
            continue
        seeds, every = seeds + 1, every + folds
        for s, n, got, weights in folds:
            rows.append(f"| {seed} | {s} | {n} | {_proxy_cells(got, weights)} |")
        rows.append(_pooled_folds_row(f"seed {seed}, pooled", folds))
    if not rows:
        return []
    if seeds > 1:
        rows.append(_pooled_folds_row(f"{seeds} seeds, pooled", every))
    return ["### MSR Action3D cross-subject proxy, four streams fused (`stage2_results.sh msr_proxy_streams`; last "
            "epoch; text head per stream)", "",
            "| seed | held-out subject | samples | joint % | bone % | joint motion % | bone motion % | fused, weights "
            "chosen on the fold's val: text / CE % (weights text / CE) | fused, plain sum: text / CE % |",
            "|---|---|---|---|---|---|---|---|---|", *rows, ""]


def ucla_proxy_streams_table(runs: Path) -> list[str]:
    """Issue 14: NW-UCLA's four streams on the view proxy (`ucla_proxy_streams`, `ucla_proxy_fuse`: trained on view
    1, scored on view 2), fused at val-chosen weights and by the plain sum: which fusion rule NW-UCLA reports."""
    rows, every = [], []
    for seed in range(1, 10):
        got = proxy_fusion(runs, "ucla-vpf" + ("" if seed == 1 else f"-s{seed}"))
        if got is None:
            continue
        n, values, weights = got
        every.append((seed, n, values, weights))
        rows.append(f"| {seed} | view 2 | {n} | {_proxy_cells(values, weights)} |")
    if not rows:
        return []
    if len(every) > 1:
        rows.append(_pooled_folds_row(f"{len(every)} seeds, pooled", every, "view 2"))
    return ["### NW-UCLA cross-view proxy, four streams fused (`stage2_results.sh ucla_proxy_streams ucla_proxy_fuse`;"
            " train view 1, score view 2; last epoch; text head per stream)", "",
            "| seed | scored on | samples | joint % | bone % | joint motion % | bone motion % | fused, weights chosen "
            "on view 1's val carve: text / CE % (weights text / CE) | fused, plain sum: text / CE % |",
            "|---|---|---|---|---|---|---|---|---|", *rows, ""]


def ucla_proxy_both_table(runs: Path) -> list[str]:
    """Issue 14: the view proxy's four streams with both heads of each summed (`ucla_proxy_both`) beside the plain
    sum of one head per stream: whether NW-UCLA reports eight score sets instead of four."""
    rows, both, one = [], [], []
    for seed in range(1, 10):
        prefix = "ucla-vpf" + ("" if seed == 1 else f"-s{seed}")
        fused = [read_json(runs / f"{prefix}-fused-{h}" / "results.json") for h in ("both-equal", "text-equal",
                                                                                       "ce-equal")]
        if any(r is None for r in fused):
            continue
        n = fused[0]["fused"]["samples"]
        both.append((fused[0]["fused"]["top1"], n))
        one.append([r["fused"]["top1"] for r in fused[1:]])
        rows.append(f"| {seed} | {n} | {pct(fused[1]['fused']['top1'])} / {pct(fused[2]['fused']['top1'])} | "
                    f"{pct(fused[0]['fused']['top1'])} |")
    if len(rows) > 1:
        counts = [n for _, n in both]
        rows.append(f"| {len(rows)} seeds, pooled | {sum(counts)} | "
                    f"{pct(pooled([o[0] for o in one], counts))} / {pct(pooled([o[1] for o in one], counts))} | "
                    f"{pct(pooled([b for b, _ in both], counts))} |")
    if not rows:
        return []
    return ["### NW-UCLA cross-view proxy: four streams with both heads of each summed (`stage2_results.sh "
            "ucla_proxy_both`; view 2, plain sum)", "",
            "| seed | samples | one head per stream: text / CE % | both heads of every stream % |", "|---|---|---|---|",
            *rows, ""]


def _proxy_cells(values: dict[str, float], weights: str) -> str:
    """A proxy row's cells after its samples: each stream, then the val-weighted and the plain-sum fusions."""
    return (" | ".join(pct(values[st]) for st in FOUR_STREAMS) +
            f" | {pct(values['fused-text'])} / {pct(values['fused-ce'])} ({weights}) | "
            f"{pct(values['equal-text'])} / {pct(values['equal-ce'])}")


def _pooled_folds_row(label: str, folds: list[tuple[int, int, dict[str, float], str]], scored: str = "") -> str:
    counts = [n for _, n, _, _ in folds]
    total = {k: pct(pooled([got[k] for _, _, got, _ in folds], counts)) for k in (*FOUR_STREAMS, *FOUR_FUSIONS)}
    return (f"| **{label}** | {scored or f'{len(folds)} folds'} | {sum(counts)} | " +
            " | ".join(total[st] for st in FOUR_STREAMS) +
            f" | **{total['fused-text']}** / **{total['fused-ce']}** | **{total['equal-text']}** / "
            f"**{total['equal-ce']}** |")


def msr_proxy_table(runs: Path) -> list[str]:
    """MSR's leave-one-training-subject-out proxy (`msr_proxy_folds`): each fold's held-out subject and, pooled over
    the folds, every training sample scored once by a model that never saw its subject. One row per tag."""
    tags = msr_proxy_tags(runs)
    lines = ["### MSR Action3D cross-subject proxy: leave one training subject out (`msr_proxy_folds`; official test "
             "subjects never read)", "",
             "| setting | " + " | ".join(f"subject {s}: text / CE %" for s in PROXY_SUBJECTS) +
             " | pooled text / CE % (samples) | val (random carve) at the kept epoch, mean text % |",
             "|---|" + "---|" * (len(PROXY_SUBJECTS) + 2)]
    for tag in tags:
        found = msr_proxy_runs(runs, tag)
        if found is None:
            continue
        cells = [f"{pct(heads_top1(r)['text'])} / {pct(heads_top1(r)['ce'])}" for r in found]
        both = pooled_heads(found)
        samples = sum(r["results"]["heads"]["text"]["all"]["samples"] for r in found)
        vals = [r["report"]["best_val_top1"] for r in found]  # the kept epoch's (the last one's with keep: last)
        lines.append(f"| `msr-px{tag}` | " + " | ".join(cells) + f" | {pct(both['text'])} / {pct(both['ce'])} "
                     f"({samples}) | {pct(float(np.mean(vals)))} |")
    return [*lines, ""] if len(lines) > 4 else []


def proxy_recogniser_table(runs: Path, parts: list[tuple[str, str, str]], title: str, part: str) -> list[str]:
    """Issue 15: recognisers tuned on proxy encoders, each scored on the group its encoder held out (a subject, a
    view), beside the encoder's CE head; pooled over the parts that have finished. `parts`: (recogniser run,
    encoder run, label)."""
    kinds = ("llm", "text", "fused", "ce")
    acc: dict[str, list[float]] = {k: [] for k in kinds}
    cells, counts = [], []
    for rec_name, enc_name, label in parts:
        rep = read_json(runs / rec_name / "evaluation" / "test" / "results.json")
        enc = load(runs / enc_name)
        if rep is None or enc is None:
            continue
        evidence = rep["evidence"]["all"]
        got = {k: evidence[k]["top1"] for k in kinds[:3]} | {"ce": heads_top1(enc)["ce"]}
        counts.append(evidence["llm"]["samples"])
        for k in kinds:
            acc[k].append(got[k])
        cells.append(f"| {label} | {counts[-1]} | " + " | ".join(pct(got[k]) for k in kinds) + " |")
    if not cells:
        return []
    return [f"### {title}", "",
            f"| {part} | samples | LLM alone % | text head % | LLM + text head fused (the run's val-chosen w) % "
            "| encoder's CE head % |",
            "|---|---|---|---|---|---|", *cells,
            f"| **pooled** | {sum(counts)} | " + " | ".join(pct(pooled(acc[k], counts)) for k in kinds) + " |", ""]


def proxy_recogniser_tables(runs: Path) -> list[str]:
    """MSR's recognisers on the proxy folds (`stage3_results.sh msrproxyllm`) and NW-UCLA's on the cross-view proxy
    encoders (`vpllm`)."""
    msr = [(f"msr-px-s{s}-llm", f"msr-px-s{s}", str(s)) for s in PROXY_SUBJECTS]
    ucla = [(f"ucla-vp-recipe{suffix}-llm", f"ucla-vp-recipe{suffix}", f"`ucla-vp-recipe{suffix}`")
            for suffix in SEED_SUFFIXES]
    return [*proxy_recogniser_table(runs, msr, "MSR Action3D recognisers on the proxy folds (issue 15; `msrproxyllm`: "
                                    "tuned on each fold's encoder, scored on its held-out training subject)",
                                    "held-out subject"),
            *proxy_recogniser_table(runs, ucla, "NW-UCLA recognisers on the cross-view proxy (issue 15; `vpllm`: "
                                    "tuned on each view-1 encoder, scored on view 2)", "encoder (seed)"),
            *proxy_recogniser_table(runs, [(f"{r}-aug", e, label) for r, e, label in ucla],
                                    "NW-UCLA recognisers on the cross-view proxy, tuned on augmented views (issue 15; "
                                    "`vpllmaug`: ONLINE, the recipe's transform every step; scored on view 2)",
                                    "encoder (seed)"),
            *proxy_recogniser_table(runs, [(f"{r}-last", e, label) for r, e, label in ucla],
                                    "NW-UCLA recognisers on the cross-view proxy, each at its last epoch (issue 15; "
                                    "`vpllmlast`, `keep: last`; scored on view 2)", "encoder (seed)"),
            *proxy_recogniser_table(runs, [(f"{r}-ema", e, label) for r, e, label in ucla],
                                    "NW-UCLA recognisers on the cross-view proxy with a moving average of the bridge "
                                    "and LoRA (issue 15; `vpllmema`, `ema_decay: 0.99`; scored on view 2)",
                                    "encoder (seed)")]


def msr_splits_clips_table(runs: Path) -> list[str]:
    """Issue 14: MSR's 10-split fusions with 1 and 5 clips per sample (`msr_splits_clips`), means over the splits
    that have both; val at the weights chosen there (what the rule reads), then test."""
    kinds = [("val", "-val"), ("test", ""), ("test, equal weights", "-equal")]
    found: dict[str, dict[str, list[float]]] = {}
    splits = [i for i in range(10) if all(read_json(runs / f"msr-fsp{i}{c}-fused-{h}{t}" / "results.json")
                                          for c in ("", "-c5") for h in ("text", "ce") for _, t in kinds)]
    if not splits:
        return []
    for clips, tag in (("1 clip", ""), ("5 clips", "-c5")):
        found[clips] = {f"{k} {h}": [read_json(runs / f"msr-fsp{i}{tag}-fused-{h}{t}" / "results.json")["fused"]["top1"]
                                     for i in splits] for k, t in kinds for h in ("text", "ce")}
    lines = [f"### MSR Action3D, four streams fused over {len(splits)} random subject splits: 1 or 5 clips per sample "
             "(`msr_splits_clips`; mean of the splits)", "",
             "| clips per sample | " + " | ".join(f"{k}: text / CE top-1 %" for k, _ in kinds) + " |",
             "|---|" + "---|" * len(kinds)]
    for clips, cols in found.items():
        lines.append(f"| {clips} | " + " | ".join(f"{mean_sd(cols[f'{k} text'])} / {mean_sd(cols[f'{k} ce'])}"
                                                   for k, _ in kinds) + " |")
    return [*lines, ""]


# ------------------------------------------------------------------------------------------- stage 3


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def tune_setting(run: Path) -> str:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    total = sum(m.get("time", m.get("epoch_time_s", 0.0)) for m in metrics)  # epoch_time_s: older runs
    samples = cfg.get("max_train_samples") or "all"
    done = len({m["epoch"] for m in metrics if "epoch" in m}) or cfg["epochs"]
    epochs = (f"{cfg['epochs']} ep" if done >= cfg["epochs"]
              else f"{done} of {cfg['epochs']} ep (stopped, finished early)")
    vary = ", random list per row" if cfg.get("vary_list") else ""
    kind = cfg["bridge"]["kind"]
    tokens = {"pool": "1 token", "linear": "1 token per frame"}.get(kind, f"{cfg['bridge']['num_queries']} tokens")
    precision = ", CPU bf16 autocast (used on AMX CPUs only)" if cfg.get("cpu_bf16") else ""
    dropout = ", no LoRA dropout" if cfg["lora"].get("dropout") == 0 else ""
    return (f"{kind}, {tokens}, LoRA r={cfg['lora']['r']}{dropout}{vary}{precision}, "
            f"{epochs} on {samples} train samples, {total / 60:.1f} min")


def row(label: str, rep: dict[str, Any] | None, training: str) -> str | None:
    if rep is None or not rep.get("samples"):
        return None
    return (f"| {label} | {rep['samples']} | {pct(rep['top1'])} | {pct(rep['top5'])} | "
            f"{pct(rep['mean_class_accuracy'])} | {training} |")


HEADER = ["| method | test samples | top-1 % | top-5 % | mean class acc % | training |", "|---|---|---|---|---|---|"]


def stage3_closed_table(runs: Path, prefix: str, title: str) -> list[str]:
    lines = [f"### {title}: the LLM recogniser vs the stage-2 classifiers (same encoder)", "", *HEADER]
    found = []
    for name, label, head in ((f"{prefix}-ce", "stage 2: CE linear classifier", "ce"),
                              (f"{prefix}-milnce", "stage 2: text classifier (cosine to knowledge texts)", "text")):
        r = load(runs / name)
        if r is not None:
            found.append(row(f"{label}, run `{name}`", r["results"]["heads"][head]["all"], setting(r)))
    llm = runs / f"{prefix}-llm"
    report = read_json(llm / "report.json")
    if report is not None:
        found.append(row(f"stage 3: SmolLM2-135M + TQP + LoRA, rank mode, run `{llm.name}`", report.get("test"),
                         tune_setting(llm)))
        found.append(row("stage 3: same run, rank by label + knowledge description (`--rank-by answer`)",
                         by_answer(llm, "all"), "same weights"))
        gen = read_json(llm / "evaluation" / "test-generate" / "results.json")
        if gen is not None:
            rep = gen["views"]["all"]
            found.append(row(f"stage 3: same run, generate mode + label matching ({rep.get('unmatched', 0)} "
                             "answers matched no list entry; top-5 not defined)", {**rep, "top5": float("nan")},
                             "seeded subset of the test split"))
    found = [f for f in found if f]
    return [*lines, *found, ""] if found else []


def by_answer(run: Path, view: str, eval_dir: str = "test-answer") -> dict[str, Any] | None:
    """A view of `sugar evaluate RUN --rank-by answer` (stage3_results.sh byanswer), if it was run."""
    res = read_json(run / "evaluation" / eval_dir / "results.json")
    return res["views"].get(view) if res is not None else None


def mean_cell(values: list[float | None], rows: int) -> str:
    got = [v for v in values if v is not None]
    return pct(sum(got) / len(got)) if got and len(got) == rows else "-"


def stage3_zeroshot_table(runs: Path, prefix: str, title: str, variant: str = "") -> list[str]:
    """Runs PREFIX-llm-zs{variant}-seedN over their stage-2 encoders PREFIX-zs-seedN."""
    lines = [f"### {title} (never seen by the encoder or the LLM)", "",
             "| seed | held-out classes | unseen test samples | LLM rank by label top-1 % | LLM rank by label + "
             "description top-1 % | stage-2 text head top-1 % | LLM + text head fused top-1 % (weight from seen-class "
             "val) | fused top-1 % (weight from other seeds' held-out classes, w) | LLM seen classes "
             "top-1 % (by label / + description) |",
             "|---|---|---|---|---|---|---|---|---|"]
    cols: dict[str, list[float | None]] = {"llm": [], "answer": [], "text": [], "fused": [], "leaveout": [],
                                           "seen": [], "seen_answer": []}
    for seed in ZS_SEEDS:
        run = runs / f"{prefix}-llm-zs{variant}-seed{seed}"
        report = read_json(run / "report.json")
        if report is None or "test_unseen" not in report:
            continue
        enc = load(runs / f"{prefix}-zs-seed{seed}")
        un = report["test_unseen"]
        answer, seen_answer = by_answer(run, "zero_shot"), by_answer(run, "seen")
        leaveout = read_json(run / "evaluation" / "test" / "zero_shot-leave-classes-out.json")  # sugar calibrate-unseen
        row_values = {"llm": un["top1"], "answer": answer["top1"] if answer else None,
                      "text": enc["results"]["heads"]["text"]["zero_shot"]["top1"] if enc else None,
                      "fused": report.get("test_unseen_fused", {}).get("top1"),
                      "leaveout": leaveout["evidence"]["fused"]["top1"] if leaveout else None,
                      "seen": report["test"]["top1"], "seen_answer": seen_answer["top1"] if seen_answer else None}
        for k, v in row_values.items():
            cols[k].append(v)
        cell = {k: pct(v) if v is not None else "-" for k, v in row_values.items()}
        weight = f" (w {leaveout['weight']:g})" if leaveout else ""
        lines.append(f"| {seed} | {', '.join(report['excluded'])} | {un['samples']} | {cell['llm']} | "
                     f"{cell['answer']} | {cell['text']} | {cell['fused']} | {cell['leaveout']}{weight} | "
                     f"{cell['seen']} / {cell['seen_answer']} |")
    n = len(cols["llm"])
    if not n:
        return []
    if n > 1:
        mean = {k: mean_cell(v, n) for k, v in cols.items()}
        lines.append(f"| mean of {n} | | | {mean['llm']} | {mean['answer']} | {mean['text']} | {mean['fused']} | "
                     f"{mean['leaveout']} | {mean['seen']} / {mean['seen_answer']} |")
    return [*lines, ""]


def zs_seed_results(runs: Path, stem: str, split: str, kind: str, view: str) -> Iterator[tuple[int, dict]]:
    """(seed, results.json) of each STEM-seedN evaluated on `split` whose `view` has evidence `kind`."""
    for seed in ZS_SEEDS:
        res = read_json(runs / f"{stem}-seed{seed}" / "evaluation" / split / "results.json")
        if res is not None and kind in res["evidence"].get(view, {}):
            yield seed, res


PRIOR_KINDS = ("llm", "llm_prior", "text", "fused_prior")  # LLM, its list prior divided out, text head, the two fused


def list_prior_table(runs: Path, prefix: str, title: str, split: str) -> list[str]:
    """Issue 15: zero-shot runs with their LLM's list prior divided out (`stage3_results.sh listprior`, runs
    PREFIX-lp-seedN): the held-out list, and the whole list's harmonic mean of seen and unseen top-1."""
    lines = [f"### {title}, {split} split: the LLM's list prior divided out", "",
             "| seed | held-out classes | held-out samples | held-out list top-1 %: LLM / LLM, prior divided out / "
             "text head / the LLM with its prior fused with the text head (seen-class val weight) | whole list, "
             "harmonic mean of seen and unseen top-1 %: LLM / LLM, prior divided out / the two fused |",
             "|---|---|---|---|---|"]
    cols: dict[str, list[float]] = {}
    for seed, res in zs_seed_results(runs, f"{prefix}-lp", split, "fused_prior", "zero_shot"):
        held, whole = res["evidence"]["zero_shot"], res["evidence"].get("all", {})
        values = {f"held-{k}": held[k]["top1"] for k in PRIOR_KINDS if k in held}
        values.update({f"h-{k}": whole[k]["generalized"]["harmonic"] for k in ("llm", "llm_prior", "fused_prior")
                       if k in whole})
        for k, v in values.items():
            cols.setdefault(k, []).append(v)
        cell = {k: pct(values[k]) if k in values else "-" for k in
                [*(f"held-{k}" for k in PRIOR_KINDS), "h-llm", "h-llm_prior", "h-fused_prior"]}
        lines.append(f"| {seed} | {', '.join(held['llm']['classes'])} | {held['llm']['samples']} | "
                     + " / ".join(cell[f"held-{k}"] for k in PRIOR_KINDS) + " | "
                     + " / ".join(cell[k] for k in ("h-llm", "h-llm_prior", "h-fused_prior")) + " |")
    n = len(lines) - 4
    if n < 1:
        return []
    mean = {k: pct(sum(v) / len(v)) if len(v) == n else "-" for k, v in cols.items()}
    lines.append(f"| mean of {n} | | | " + " / ".join(mean.get(f"held-{k}", "-") for k in PRIOR_KINDS) + " | "
                 + " / ".join(mean.get(k, "-") for k in ("h-llm", "h-llm_prior", "h-fused_prior")) + " |")
    return [*lines, ""]


def list_prior_train_table(runs: Path, prefix: str, title: str) -> list[str]:
    """Issue 15, rules R5 of (21) (`stage3_results.sh listpriortrain`): zero-shot runs PREFIX-seedN on their
    held-out classes' samples in the training views / subjects (never trained on), the held-out list only."""
    return seed_kinds_table(
        runs, prefix, "list-train", "all", PRIOR_KINDS, "llm_prior",
        f"### {title}: the held-out classes' samples in the training views / subjects (never trained on), the LLM's "
        "list prior divided out", "LLM / LLM, prior divided out / text head / the LLM with its prior fused with the "
        "text head", "the prior")


BATCH_COLUMNS = ("llm", "llm_prior", "llm_batch", "text", "text_batch", "fused", "fused_batch")
BATCH_COLUMN_NAMES = ("LLM / LLM, list prior divided out / LLM, batch prior / text head / text head, batch prior / "
                      "fused / fused, batch prior")


def batch_prior_table(runs: Path, prefix: str, title: str, split: str, view: str) -> list[str]:
    """Issue 15, rules R6 of (22): zero-shot runs PREFIX-seedN on their held-out list with each kind's batch prior
    (the scored samples' own mean answer) divided out, beside the list prior; split "list-train" is
    `stage3_results.sh listpriortrain` (view "all"), "test" / "val" the runs' own evaluation (view "zero_shot")."""
    where = ("the held-out classes' samples in the training views / subjects (never trained on)"
             if split == "list-train" else f"{split} split, held-out list")
    return seed_kinds_table(runs, prefix, split, view, BATCH_COLUMNS, "llm_batch", f"### {title}, {where}: the batch "
                            "prior", BATCH_COLUMN_NAMES, "the batch prior")


def seed_kinds_table(runs: Path, prefix: str, split: str, view: str, kinds: tuple[str, ...], gain_kind: str,
                     heading: str, names: str, gain_name: str) -> list[str]:
    """Top-1 of each evidence kind of the runs PREFIX-seedN (evaluation/SPLIT, view VIEW) a row per seed, their
    mean, and the LLM's gain from `gain_kind`."""
    lines = [heading, "", f"| seed | held-out classes | samples | top-1 %: {names} | LLM: gain from {gain_name}, "
             "points |", "|---|---|---|---|---|"]
    cols: dict[str, list[float]] = {}
    for seed, res in zs_seed_results(runs, prefix, split, gain_kind, view):
        ev = res["evidence"][view]
        for k in kinds:
            if k in ev:
                cols.setdefault(k, []).append(ev[k]["top1"])
        lines.append(f"| {seed} | {', '.join(ev['llm']['classes'])} | {ev['llm']['samples']} | "
                     + " / ".join(pct(ev[k]["top1"]) if k in ev else "-" for k in kinds)
                     + f" | {100 * (ev[gain_kind]['top1'] - ev['llm']['top1']):+.1f} |")
    n = len(lines) - 4
    if n < 1:
        return []
    mean = {k: sum(v) / len(v) for k, v in cols.items() if len(v) == n}
    lines.append(f"| mean of {n} | | | " + " / ".join(pct(mean[k]) if k in mean else "-" for k in kinds)
                 + f" | {100 * (mean[gain_kind] - mean['llm']):+.1f} |")
    return [*lines, ""]


OPEN_KINDS = ("llm", "text", "fused", "fused_open_list")  # LLM alone, text head alone, one weight, open-list


def open_list_table(runs: Path, prefix: str, title: str, split: str) -> list[str]:
    """Issue 15: zero-shot runs scored with open-list fusion (`stage3_results.sh openlist`): the held-out list, and
    the whole list (generalized zero-shot: seen and held-out samples among every class, harmonic mean)."""
    lines = [f"### {title}, {split} split: open-list fusion vs one weight for every entry", "",
             "| seed | held-out classes | held-out list top-1 %: LLM / text head / fused, one weight / fused, "
             "open-list | whole list, harmonic mean of seen and unseen top-1 %: LLM / text head / one weight / "
             "open-list | whole list, seen / unseen top-1 %: one weight | open-list |",
             "|---|---|---|---|---|"]
    cols: dict[str, list[float]] = {}
    for seed, res in zs_seed_results(runs, prefix, split, "fused_open_list", "all"):
        held, whole = res["evidence"]["zero_shot"], res["evidence"]["all"]
        values = {**{f"held-{k}": held[k]["top1"] for k in OPEN_KINDS},
                  **{f"h-{k}": whole[k]["generalized"]["harmonic"] for k in OPEN_KINDS},
                  **{f"{side}-{k}": whole[k]["generalized"][side] for k in OPEN_KINDS[2:]
                     for side in ("seen", "unseen")}}
        for k, v in values.items():
            cols.setdefault(k, []).append(v)
        lines.append(f"| {seed} | {', '.join(held['fused']['classes'])} | "
                     + " / ".join(pct(values[f"held-{k}"]) for k in OPEN_KINDS) + " | "
                     + " / ".join(pct(values[f"h-{k}"]) for k in OPEN_KINDS) + " | "
                     + " | ".join(f"{pct(values[f'seen-{k}'])} / {pct(values[f'unseen-{k}'])}" for k in OPEN_KINDS[2:])
                     + " |")
    n = len(lines) - 4
    if n < 1:
        return []
    mean = {k: sum(v) / len(v) for k, v in cols.items()}
    lines.append(f"| mean of {n} | | " + " / ".join(pct(mean[f"held-{k}"]) for k in OPEN_KINDS) + " | "
                 + " / ".join(pct(mean[f"h-{k}"]) for k in OPEN_KINDS) + " | "
                 + " | ".join(f"{pct(mean[f'seen-{k}'])} / {pct(mean[f'unseen-{k}'])}" for k in OPEN_KINDS[2:])
                 + " |")
    return [*lines, ""]


def stacking_table(runs: Path, prefix: str, title: str) -> list[str]:
    """Issue 15: the whole list with a bonus for never-seen classes chosen on other runs (`stage3_results.sh
    zsstacking`): seen / unseen top-1 and their harmonic mean, at bonus 0 and at the chosen bonus."""
    lines = [f"### {title}: whole list, a bonus for never-seen classes (calibrated stacking, chosen on other runs' "
             "val)", "",
             "| seed | held-out classes | evidence | bonus | val harmonic %: 0 -> bonus | test seen / unseen / "
             "harmonic % at 0 | test seen / unseen / harmonic % at the bonus |", "|---|---|---|---|---|---|---|"]
    means: dict[tuple[str, str], list[float]] = {}
    for seed in ZS_SEEDS:
        res = read_json(runs / f"{prefix}-seed{seed}" / "evaluation" / "test" / "all-calibrated-stacking.json")
        if res is None:
            continue
        for kind, v in res["kinds"].items():
            cells = {at: " / ".join(pct(v["test"][at][k]) for k in ("seen", "unseen", "harmonic"))
                     for at in ("at_0", "at_bias")}
            lines.append(f"| {seed} | {', '.join(res['held_out'])} | {kind} | {v['bias']:g} | "
                         f"{pct(v['val']['at_0']['harmonic'])} -> {pct(v['val']['at_bias']['harmonic'])} | "
                         f"{cells['at_0']} | {cells['at_bias']} |")
            for split in ("val", "test"):
                for at in ("at_0", "at_bias"):
                    for k in ("seen", "unseen", "harmonic"):
                        means.setdefault((kind, f"{split}-{at}-{k}"), []).append(v[split][at][k])
    if len(lines) == 4:
        return []
    for kind in sorted({k for k, _ in means}):
        m = {key: sum(v) / len(v) for (kd, key), v in means.items() if kd == kind}
        n = len(means[kind, "test-at_0-seen"])
        lines.append(f"| mean of {n} | | {kind} | | {pct(m['val-at_0-harmonic'])} -> "
                     f"{pct(m['val-at_bias-harmonic'])} | "
                     + " | ".join(" / ".join(pct(m[f"test-{at}-{k}"]) for k in ("seen", "unseen", "harmonic"))
                                  for at in ("at_0", "at_bias")) + " |")
    return [*lines, ""]


def cross_dataset_table(runs: Path) -> list[str]:
    lines = ["### Cross-dataset zero-shot: trained on NW-UCLA, tested on MSR Action3D's test subjects with MSR's "
             "20-action list (chance: 5 % top-1, 25 % top-5)", "", *HEADER]
    found = []
    enc = read_json(runs / "ucla-milnce" / "evaluation" / "msr-action3d-test" / "results.json")
    if enc is not None:
        found.append(row("stage 2: text classifier, run `ucla-milnce`", enc["heads"]["text"]["all"], "NW-UCLA only"))
    llm = read_json(runs / "ucla-llm" / "evaluation" / "msr-action3d-test" / "results.json")
    if llm is not None:
        found.append(row("stage 3: LLM recogniser (rank), run `ucla-llm`", llm["views"]["all"], "NW-UCLA only"))
    found.append(row("stage 3: same, rank by label + MSR's knowledge descriptions (`--rank-by answer`)",
                     by_answer(runs / "ucla-llm", "all", "msr-action3d-test-answer"), "NW-UCLA only"))
    pool = read_json(runs / "ucla-f-joint-llm-pool" / "evaluation" / "msr-action3d-test" / "results.json")
    field = read_json(runs / "ucla-f-joint" / "evaluation" / "msr-action3d-test" / "results.json")
    if field is not None:
        found.append(row("stage 2: text classifier, run `ucla-f-joint` (the released recogniser's encoder)",
                         field["heads"]["text"]["all"], "NW-UCLA only"))
    # its "text" evidence is the stage-2 text classifier's row above (the same head, texts and rule)
    found += evidence_rows(pool, "stage 3: released recogniser `ucla-f-joint-llm-pool` (pool bridge)", "NW-UCLA only")
    found = [f for f in found if f]
    return [*lines, *found, "", *shared_actions_table(pool, field)] if found else []


def evidence_rows(report: dict[str, Any] | None, label: str, training: str) -> list[str | None]:
    """A recogniser's LLM-alone and fused rows of a `sugar evaluate` report (its "all" view)."""
    evidence = (report or {}).get("evidence", {}).get("all", {})
    return [row(f"{label}, {name}", evidence[kind], training)
            for kind, name in (("llm", "LLM alone"), ("fused", "fused")) if kind in evidence]


# NW-UCLA actions with a counterpart in MSR Action3D's list (issue 15's cross-dataset check)
SHARED_ACTIONS = [("throw", "high throw"), ("pick up with one hand", "pickup and throw")]


def shared_actions_table(pool: dict[str, Any] | None, enc: dict[str, Any] | None, tested: str = "msr") -> list[str]:
    """Per-class recall on the tested dataset's test samples of the actions both lists have (tested: "msr" for
    NW-UCLA's recogniser on MSR Action3D, "ucla" for the other way)."""
    if pool is None:
        return []
    evidence = pool["evidence"]["all"]
    sources = [("LLM alone", evidence.get("llm")), ("fused", evidence.get("fused")),
               ("stage 2 text classifier", enc["heads"]["text"]["all"] if enc else None)]
    sources = [(n, r) for n, r in sources if r]
    where = "MSR's test samples of that class (20-way list)" if tested == "msr" else \
        "NW-UCLA's test samples of that class (10-way list)"
    lines = [f"#### Actions both lists share: recall on {where}", "",
             "| NW-UCLA action | MSR Action3D action | " + " | ".join(f"{n}: recall (precision) %" for n, _ in sources)
             + " |",
             "|---|---|" + "---|" * len(sources)]
    for ucla, msr in SHARED_ACTIONS:
        cells = [recall_precision(r, msr if tested == "msr" else ucla) for _, r in sources]
        lines.append(f"| {ucla} | {msr} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def reverse_cross_table(runs: Path) -> list[str]:
    """Issue 15 the other way (`stage3_results.sh crossmsr`): MSR Action3D's recogniser on NW-UCLA's test view."""
    lines = ["### Cross-dataset zero-shot: trained on MSR Action3D, tested on NW-UCLA's test view with NW-UCLA's "
             "10-action list (chance: 10 % top-1, 50 % top-5)", "", *HEADER]
    pool = read_json(runs / "msr-f-label-llm-e8-pool" / "evaluation" / "nw-ucla-test" / "results.json")
    enc = read_json(runs / "msr-f-label" / "evaluation" / "nw-ucla-test" / "results.json")
    found = []
    if enc is not None:
        found.append(row("stage 2: text classifier, run `msr-f-label` (the recogniser's encoder)",
                         enc["heads"]["text"]["all"], "MSR Action3D only"))
    found += evidence_rows(pool, "stage 3: `msr-f-label-llm-e8-pool` (pool bridge)", "MSR Action3D only")
    found = [f for f in found if f]
    return [*lines, *found, "", *shared_actions_table(pool, enc, "ucla")] if found else []


CROSS_PAIRS = (("nw-ucla", "msr-action3d", "MSR Action3D", 20), ("msr-action3d", "nw-ucla", "NW-UCLA", 10))
CROSS_KINDS = ("llm", "llm_prior", "text", "fused", "fused_prior")


def cross_prior_table(runs: Path, kinds: tuple[str, ...] = CROSS_KINDS, what: str = "the LLM's list prior divided out",
                      names: str = "LLM / LLM, prior divided out / text head / fused / fused, prior divided out"
                      ) -> list[str]:
    """Issue 15 (`stage3_results.sh crossprior`, rules R4 of (21); R6c of (22) with the batch kinds): the released
    recognisers, given reference samples (`sugar list-prior --out NAME-lp`), on the other dataset's skeletons and
    list, val then test."""
    lines = [f"### Cross-dataset with {what}: the released recognisers on the other "
             "dataset's skeletons and action list (`stage3_results.sh crossprior`)", "",
             f"| released recogniser | tested on | split | samples | chance top-1 % | top-1 %: {names} | top-5 %, same "
             "order | one-sided binomial p of each top-1 against chance, same order |",
             "|---|---|---|---|---|---|---|---|"]
    shared: list[str] = []
    for name, other, other_label, classes in CROSS_PAIRS:
        for split in ("val", "test"):
            res = read_json(runs / f"{name}-lp" / "evaluation" / f"{other}-{split}" / "results.json")
            if res is None:
                continue
            ev = res["evidence"]["all"]
            cells = [" / ".join(pct(ev[k][m]) if k in ev else "-" for k in kinds) for m in ("top1", "top5")]
            n = ev["llm"]["samples"]
            p_values = " / ".join(f"{binomtest(round(ev[k]['top1'] * n), n, 1 / classes, 'greater').pvalue:.3f}"
                                  if k in ev else "-" for k in kinds)
            lines.append(f"| `{name}` | {other_label} | {split} | {n} | {pct(1 / classes)} | "
                         f"{cells[0]} | {cells[1]} | {p_values} |")
            if split == "test":
                for ucla, msr in SHARED_ACTIONS:
                    recalls = " / ".join(recall_precision(ev[k], msr if other == "msr-action3d" else ucla)
                                         if k in ev else "-" for k in kinds)
                    shared.append(f"| `{name}` | {ucla} | {msr} | {recalls} |")
    if len(lines) == 4:
        return []
    if shared:
        shared = ["#### Actions both lists share: recall (precision) % on the tested dataset's test samples of that "
                  "class", "", f"| released recogniser | NW-UCLA action | MSR Action3D action | {names} |",
                  "|---|---|---|---|", *shared, ""]
    return [*lines, "", *shared]


def recall_precision(report: dict[str, Any], name: str) -> str:
    """A class's recall, and its precision from the confusion matrix (rows: true class, columns: answer):
    recall alone rewards a model that answers this class for everything."""
    if name not in report["classes"]:
        return "-"
    i = report["classes"].index(name)
    answered = sum(row[i] for row in report["confusion"])
    precision = report["confusion"][i][i] / answered if answered else None
    return f"{pct(report['per_class_recall'][i])} ({pct(precision)})"


def evidence_table(runs: Path, names: list[str], title: str) -> list[str]:
    """Per stage-3 run: the LLM alone, the encoder's text head alone and the two fused (weight chosen on the
    validation split's seen classes by `sugar tune` / `sugar calibrate`), on seen classes and on held-out ones."""
    lines = [f"### {title}", "",
             "| run | classes | test samples | LLM alone top-1 % | text head top-1 % | LLM + text head fused top-1 % "
             "| fusion weight w (val samples, val top-1 % at w) | training |", "|---|---|---|---|---|---|---|---|"]
    found = []
    for name in names:
        run = runs / name
        report = read_json(run / "report.json")
        if report is None or "fusion" not in report:
            continue
        fusion = report["fusion"]
        table = read_json(run / "recognizer.json") or {}
        calib = (table.get("evidence") or {}).get("calibration") or {}
        at_w = next((r["top1"] for r in calib.get("table", []) if r["weight"] == fusion["weight"]), None)
        w = f"{fusion['weight']:.2f} ({fusion['samples']}, {pct(at_w)})"
        for key, view in (("test", "seen" if report.get("excluded") else "all"), ("test_unseen", "held out")):
            llm, text, fused = report.get(key), report.get(f"{key}_text"), report.get(f"{key}_fused")
            if not llm or not llm.get("samples") or text is None or fused is None:
                continue
            classes = f"{view}, {len(llm['classes'])}-way"
            found.append(f"| `{name}` | {classes} | {llm['samples']} | {pct(llm['top1'])} | {pct(text['top1'])} | "
                         f"{pct(fused['top1'])} | {w} | {tune_setting(run)} |")
    return [*lines, *found, ""] if found else []


def kept_val_top1(run: Path) -> float | None:
    """The val top-1 of the LLM alone at the epoch `sugar tune` kept (report.json's `selected`: the last epoch's
    with keep: last); runs whose report predates it kept the best epoch of metrics.jsonl."""
    selected = (read_json(run / "report.json") or {}).get("selected") or {}
    if "val_top1" in selected:
        return selected["val_top1"]
    path = run / "metrics.jsonl"
    if not path.is_file():
        return None
    vals = [rec["val_top1"] for rec in map(json.loads, path.read_text().splitlines()) if "val_top1" in rec]
    return max(vals) if vals else None


# closed-set recognisers run over seeds 1-3 (stage3_results.sh ucla_closed / msr_closed)
CLOSED_FAMILIES = [("ucla-fj-llm-e4", "NW-UCLA, 4 epochs (`epochs4`, `closedseeds`)"),
                   ("ucla-fj-llm-e6", "NW-UCLA, 6 epochs (`epochs6`)"),
                   ("ucla-fj-llm-e4-ls", "NW-UCLA, 4 epochs, label smoothing 0.1 (`lsmooth`)"),
                   ("ucla-fj-llm-e6-ls", "NW-UCLA, 6 epochs, label smoothing 0.1 (`E_LS=6 lsmooth`)"),
                   ("msr-f-label-llm-e8-pool", "MSR Action3D, 8 epochs (`msrfpool`, `closedseeds`)"),
                   ("msr-f-label-llm-e8-pool-ls", "MSR Action3D, 8 epochs, label smoothing 0.1 (`msrlsmooth`)"),
                   ("msr-aj-llm-e8-pool", "MSR Action3D on the released last-epoch joint, 8 epochs (`msrlastpool`)"),
                   ("msr-aj-llm-e8-pool-last", "the same at their last epoch (`msrlastpool`)"),
                   ("ucla-fj10-llm-e4", "NW-UCLA on the joint released since 2026-12-06 (10), 4 epochs, last epoch "
                    "(`fj10closed`)"),
                   ("ucla-fj5-llm-e4", "NW-UCLA on the repeat-5 joint released since 2026-12-07 (14), 4 epochs, last "
                    "epoch (`fj5closed`)"),
                   ("ucla-fj5g-llm-e4", "the same with Gemma 3 270M as the LLM (`fj5gemma`)"),
                   ("msr-ajg-llm-e8-pool", "MSR Action3D on the released last-epoch joint with Gemma 3 270M as the "
                    "LLM, 8 epochs, last epoch (`msrgemma`)")]


def seed_means_table(runs: Path, families: list[tuple[str, str]], title: str) -> list[str]:
    """Closed-set recognisers over seeds 1-3 (run NAME, NAME-s2, NAME-s3): what val chose on and what test gave."""
    lines = [f"### {title}", "",
             "| recipe | runs | val LLM alone (kept epoch) % | val fused % | test LLM alone % | test text head % | "
             "test fused % |", "|---|---|---|---|---|---|---|"]
    found = []
    for name, label in families:
        cols: dict[str, list[float]] = {"val": [], "val_fused": [], "llm": [], "text": [], "fused": []}
        done = []
        for run in (runs / f"{name}{suffix}" for suffix in SEED_SUFFIXES):
            report = read_json(run / "report.json")
            calib = ((read_json(run / "recognizer.json") or {}).get("evidence") or {}).get("calibration") or {}
            if report is None or "test_fused" not in report or not calib:
                continue
            done.append(run.name)
            cols["val"].append(kept_val_top1(run) or float("nan"))
            cols["val_fused"].append(next(r["top1"] for r in calib["table"] if r["weight"] == calib["weight"]))
            for key, rep in (("llm", "test"), ("text", "test_text"), ("fused", "test_fused")):
                cols[key].append(report[rep]["top1"])
        if not done:
            continue
        cells = [" / ".join(pct(v) for v in vals) + f" (mean {pct(sum(vals) / len(vals))})" for vals in cols.values()]
        found.append(f"| {label} | {', '.join(f'`{d}`' for d in done)} | {' | '.join(cells)} |")
    return [*lines, *found, ""] if found else []


FAST_RANK = [("", "fp32, every token of each entry (default)"), ("-separating", "fp32, `--separating`"),
             ("-int8", "int8 (`--precision int8`)"), ("-int8-separating", "int8 + `--separating`"),
             ("-bf16", "bf16 weights (`--precision bf16`)"), ("-bf16-separating", "bf16 + `--separating`"),
             ("-int8-separating-encoder-bf16", "int8 + `--separating`, encoder bf16 (`--encoder-precision bf16`; "
                                               "`stage3_results.sh encoderbf16`)")]


CE_FUSION_FAMILIES = [("ucla-fj-llm-e4", "NW-UCLA, 4 epochs"), ("msr-f-label-llm-e8-pool", "MSR Action3D, 8 epochs"),
                      ("msr-aj-llm-e8-pool", "MSR Action3D on the released last-epoch joint, 8 epochs"),
                      ("msr-aj-llm-e8-pool-last", "the same at their last epoch"),
                      ("ucla-fj10-llm-e4", "NW-UCLA on the joint released since (10), 4 epochs, last epoch"),
                      ("ucla-fj5-llm-e4", "NW-UCLA on the repeat-5 joint released since (14), 4 epochs, last epoch"),
                      ("ucla-fj5g-llm-e4", "the same with Gemma 3 270M as the LLM (`fj5gemma`)"),
                      ("msr-ajg-llm-e8-pool", "MSR Action3D on the released last-epoch joint with Gemma 3 270M, "
                       "8 epochs")]


def seeds_cell(values: list[float | None]) -> str:
    if any(v is None for v in values) or not values:
        return "-"
    return " / ".join(pct(v) for v in values) + f" (mean {pct(float(np.mean(values)))})"


def ce_fusion_table(runs: Path) -> list[str]:
    """Issue 15: the closed-set recognisers fused with their encoder's CE head (`stage3_results.sh cefusion`); val
    at the weights chosen there, then test; the seeds of 1-3 that were run."""
    lines = ["### Closed-set recognisers fused with their encoder's CE head (issue 15; `cefusion`, weights chosen on "
             "val; seeds 1 / 2 / 3)", "",
             "| recogniser | split | CE head alone % | LLM alone % | LLM + text head (the recogniser's fusion) % | "
             "LLM + CE head % | LLM + text + CE heads % |", "|---|---|---|---|---|---|---|"]
    for stem, label in CE_FUSION_FAMILIES:
        names = [stem + suffix for suffix in SEED_SUFFIXES if (runs / f"{stem}{suffix}").is_dir()]
        if not names:
            continue
        for split in ("val", "test"):
            llmce = [read_json(runs / f"{n}-llmce-{split}" / "results.json") for n in names]
            three = [read_json(runs / f"{n}-llmtextce-{split}" / "results.json") for n in names]
            own = [read_json(runs / n / "evaluation" / split / "results.json") for n in names]
            if any(r is None for r in (*llmce, *three, *own)):
                continue
            ce = [r["single"][1]["top1"] for r in llmce]
            llm = [r["single"][0]["top1"] for r in llmce]
            fused = [r["evidence"]["all"]["fused"]["top1"] for r in own]
            lines.append(f"| {label} | {split} | {seeds_cell(ce)} | {seeds_cell(llm)} | {seeds_cell(fused)} | "
                         f"{seeds_cell([r['fused']['top1'] for r in llmce])} | "
                         f"{seeds_cell([r['fused']['top1'] for r in three])} |")
    return [*lines, ""] if len(lines) > 4 else []


def encoder_ce_top1(recogniser: Path) -> float | None:
    """Test top-1 of the CE head of the encoder a recogniser was tuned on: its run's evaluation, or for a released
    encoder folder the package index's record."""
    encoder = Path(((read_json(recogniser / "recognizer.json") or {}).get("encoder_run")) or "")
    res = read_json(encoder / "evaluation" / "test" / "results.json")
    if res is not None:
        return res["heads"]["ce"]["all"]["top1"]
    entry = (read_json(encoder.parent / "index.json") or {}).get(encoder.name) or {}
    return entry.get("metrics", {}).get("heads_top1", {}).get("ce")


# issue 15 (`stage3_results.sh proxyweight`): seed 1-3 recognisers, their proxies, and the val-chosen weight of the
# released recogniser (nw-ucla, msr-action3d) when the rule was written (2026-12-06 (9)), which the rule compares with;
# None: each seed's own val-chosen weight (`fj10proxyweight`, 2026-12-06 (12))
PROXY_WEIGHT_FAMILIES = [("ucla-fj-llm-e4", "NW-UCLA", "view 2 of 3 cross-view proxy recognisers (`vpllm`)", 0.45),
                         ("msr-f-label-llm-e8-pool", "MSR Action3D", "held-out subjects of 5 proxy folds "
                          "(`msrproxyllm`)", 0.45),
                         ("ucla-fj10-llm-e4", "NW-UCLA, the (10) joint", "view 2 of the recognisers on 2 last-epoch "
                          "view-proxy joints (`fj10proxyweight`)", None)]


def proxy_weight_table(runs: Path) -> list[str]:
    """Issue 15: the recognisers' fusion weight chosen on proxy runs (`sugar calibrate --on`): first what the rule
    reads (the pooled proxy samples at a few weights, from the calibration table saved with the copy), then test
    for the seed 1-3 copies against the val-chosen originals."""
    decide = ["### The recogniser's fusion weight chosen on proxies that hold out a view or subject (issue 15; "
              "`proxyweight`): the pooled proxy samples", "",
              "| dataset | proxy samples | LLM alone (w 0) % | text head (w 1) % | fused at the val-chosen w (the "
              "released recogniser's, or each seed's) % | fused at the proxy-chosen w % |", "|---|---|---|---|---|---|"]
    test = ["### ... and on test, read after the decision: seeds 1 / 2 / 3 at the val-chosen and the proxy-chosen "
            "weight", "",
            "| dataset | weight chosen on | w | test fused top-1 % | test LLM alone % | test text head % | "
            "encoder's CE head % |", "|---|---|---|---|---|---|---|"]
    for stem, dataset, proxies, released_w in PROXY_WEIGHT_FAMILIES:
        copies = [runs / f"{stem}{suffix}-pw" for suffix in SEED_SUFFIXES]
        calib = ((read_json(copies[0] / "recognizer.json") or {}).get("evidence") or {}).get("calibration") or {}
        if not calib.get("proxies"):
            continue
        at = {round(r["weight"], 2): r["top1"] for r in calib["table"]}
        originals = [runs / f"{stem}{suffix}" for suffix in SEED_SUFFIXES]
        reported = {"val carve (`sugar tune`)": [read_json(r / "report.json") or {} for r in originals],
                    "proxies (`sugar calibrate --on`)": [read_json(r / "report.json") or {} for r in copies]}
        val_w = [released_w] if released_w is not None else \
            [(r.get("fusion") or {}).get("weight") for r in reported["val carve (`sugar tune`)"]]
        if None in val_w:
            continue
        decide.append(f"| {dataset}: {proxies} | {calib['samples']} | {pct(at[0.0])} | {pct(at[1.0])} | "
                      f"{' / '.join(pct(at.get(round(w, 2))) for w in val_w)} "
                      f"(w {' / '.join(f'{w:.2f}' for w in val_w)}) | {pct(at[round(calib['weight'], 2)])} "
                      f"(w {calib['weight']:.2f}) |")
        for label, reports in reported.items():
            if not all("test_fused" in r for r in reports):
                continue
            weights = " / ".join(f"{r['fusion']['weight']:.2f}" for r in reports)
            test.append(f"| {dataset} | {label} | {weights} | "
                        f"{seeds_cell([r['test_fused']['top1'] for r in reports])} | "
                        f"{seeds_cell([r['test']['top1'] for r in reports])} | "
                        f"{seeds_cell([r['test_text']['top1'] for r in reports])} | "
                        f"{pct(encoder_ce_top1(originals[0]))} |")
    return [*decide, "", *test, ""] if len(decide) > 4 else []


# issue 15 (`stage3_results.sh ceproxy ceclosed released_ucla_classifier`): recognisers recalibrated with their
# encoder's CE classifier (copies RUN-ce of the two-way originals): (label, runs pooled or per seed, pooled?)
CLASSIFIER_FAMILIES = [("NW-UCLA cross-view proxy, view 2 (`ceproxy`; decides)",
                        ["ucla-vpf-joint-llm", "ucla-vpf-s2-joint-llm"], True),
                       ("NW-UCLA on the (10) joint, seeds 1 / 2 / 3 (`ceclosed`)",
                        [f"ucla-fj10-llm-e4{s}" for s in SEED_SUFFIXES], False),
                       ("MSR Action3D on the released joint, last epoch, seeds 1 / 2 / 3 (`ceclosed`)",
                        [f"msr-aj-llm-e8-pool-last{s}" for s in SEED_SUFFIXES], False)]


def _calibration(run: Path) -> dict[str, Any]:
    return ((read_json(run / "recognizer.json") or {}).get("evidence") or {}).get("calibration") or {}


def _val_at(table: list[dict[str, Any]], weight: float, ce_weight: float = 0.0) -> float | None:
    return next((r["top1"] for r in table if round(r["weight"], 2) == round(weight, 2)
                 and round(r.get("ce_weight", 0.0), 2) == round(ce_weight, 2)), None)


def _runs_cell(values: list[float], counts: list[int] | None) -> str:
    """Seed by seed, or pooled over the runs' samples when `counts` are given."""
    return pct(pooled(values, counts)) if counts else seeds_cell(list(values))


def classifier_table(runs: Path) -> list[str]:
    """Issue 15: the recogniser's fusion with the encoder's CE classifier too (three-way, weights chosen on val)
    against its two-way fusion (LLM + text head, weight chosen on val): val and test top-1."""
    lines = ["### The recogniser fused with its encoder's CE classifier too (issue 15; weights chosen on val; "
             "`stage3_results.sh ceproxy ceclosed`)", "",
             "| recognisers | val: two-way -> three-way % | weights: two-way w -> three-way w (text) / v (CE) | "
             "test samples | LLM alone % | "
             "text head % | CE head % | two-way fused % | three-way fused % |", "|---|---|---|---|---|---|---|---|---|"]
    for label, names, pool in CLASSIFIER_FAMILIES:
        originals = [read_json(runs / n / "report.json") for n in names]
        copies = [read_json(runs / f"{n}-ce" / "report.json") for n in names]
        if any(r is None or "test_ce" not in (c or {}) for r, c in zip(originals, copies, strict=True)):
            continue
        tables = [_calibration(runs / f"{n}-ce").get("table") or [] for n in names]
        two_val = [_val_at(t, o["fusion"]["weight"]) for t, o in zip(tables, originals, strict=True)]
        three_val = [_val_at(t, c["fusion"]["weight"], c["fusion"]["ce_weight"]) for t, c in zip(tables, copies,
                                                                                                 strict=True)]
        counts = [c["test"]["samples"] for c in copies] if pool else None
        weights = " ; ".join(f"{o['fusion']['weight']:.2f} -> {c['fusion']['weight']:.2f} / "
                             f"{c['fusion']['ce_weight']:.2f}" for o, c in zip(originals, copies, strict=True))
        val = " ; ".join(f"{pct(a)} -> {pct(b)}" for a, b in zip(two_val, three_val, strict=True))
        lines.append(f"| {label} | {val} | {weights} | {sum(c['test']['samples'] for c in copies)} | "
                     + " | ".join(_runs_cell([c[k]["top1"] for c in copies], counts)
                                  for k in ("test", "test_text", "test_ce"))
                     + f" | {_runs_cell([o['test_fused']['top1'] for o in originals], counts)} | "
                       f"{_runs_cell([c['test_fused']['top1'] for c in copies], counts)} |")
    return [*lines, ""] if len(lines) > 4 else []


ENCODER_SEED_RECOGNISERS = [("1 (the released `nw-ucla-field-joint`)", "ucla-fj10-llm-e4"),
                            ("2 (`ucla-jl-s2`)", "ucla-jl-s2-llm-e4"), ("3 (`ucla-jl-s3`)", "ucla-jl-s3-llm-e4")]


def encoder_seeds_table(runs: Path) -> list[str]:
    """Issue 15: the closed-set comparison over encoder seeds (`ucla_encoder_seeds`): each NW-UCLA recipe joint's
    recogniser (three-way, weights chosen on val) beside that encoder's own heads, and the means."""
    lines = ["### NW-UCLA closed set over encoder seeds: each recipe joint's recogniser beside its own encoder's heads "
             "(issue 15; `stage3_results.sh ucla_encoder_seeds`; weights chosen on val)", "",
             "| encoder seed | recogniser | test samples | weights w (text) / v (CE) | LLM alone % | text head % | "
             "CE head % | the recogniser's answer (fused) % |", "|---|---|---|---|---|---|---|---|"]
    found = []
    for seed, name in ENCODER_SEED_RECOGNISERS:
        r = read_json(runs / name / "report.json")
        if r is None or "test_fused" not in r or "test_ce" not in r:
            continue
        found.append(r)
        fusion = r["fusion"]
        lines.append(f"| {seed} | `{name}` | {r['test']['samples']} | {fusion['weight']:.2f} / "
                     f"{fusion.get('ce_weight', 0.0):.2f} | "
                     + " | ".join(pct(r[k]["top1"]) for k in ("test", "test_text", "test_ce", "test_fused")) + " |")
    if len(found) > 1:
        lines.append(f"| **mean of {len(found)}** | | | | "
                     + " | ".join(f"**{pct(float(np.mean([r[k]['top1'] for r in found])))}**"
                                  for k in ("test", "test_text", "test_ce", "test_fused")) + " |")
    return [*lines, ""] if found else []


# issue 15 (`stage3_results.sh vprep5llm`): which recogniser `nw-ucla` releases, decided across a view: the recogniser
# recipe on view-proxy joints of each encoder recipe, three-way at each run's val weights, pooled over view 2
RELEASE_PROXY_FAMILIES = [("the repeat-5 joint's (`ucla-vp-rep5`, seeds 1-2; candidate: `ucla-fj5-llm-e4`)",
                           ["ucla-vp-rep5-llm", "ucla-vp-rep5-s2-llm"]),
                          ("the same with Gemma 3 270M as the LLM (`vpgemma`; candidate: `ucla-fj5g-llm-e4`)",
                           ["ucla-vp-rep5-llm-gemma", "ucla-vp-rep5-s2-llm-gemma"])]


def release_proxy_table(runs: Path) -> list[str]:
    """Issue 15: the recogniser recipe on view-proxy encoders, scored on view 2 (the released recipe's was 78.0)."""
    lines = ["### Which recogniser `nw-ucla` releases, across a view (issue 15; `stage3_results.sh vprep5llm`; "
             "three-way at each run's val weights, view 2 pooled)", "",
             "| recognisers on proxy joints | view-2 samples | weights w (text) / v (CE) | LLM alone % | text head % | "
             "CE head % | three-way fused % |", "|---|---|---|---|---|---|---|"]
    for label, names in RELEASE_PROXY_FAMILIES:
        reports = [read_json(runs / n / "report.json") for n in names]
        if any(r is None or "test_fused" not in r or "test_ce" not in r for r in reports):
            continue
        counts = [r["test"]["samples"] for r in reports]
        weights = " ; ".join(f"{r['fusion']['weight']:.2f} / {r['fusion'].get('ce_weight', 0.0):.2f}" for r in reports)
        lines.append(f"| {label} | {sum(counts)} | {weights} | "
                     + " | ".join(pct(pooled([r[k]["top1"] for r in reports], counts))
                                  for k in ("test", "test_text", "test_ce", "test_fused")) + " |")
    return [*lines, ""] if len(lines) > 4 else []


# ceproxyweight: three-way recognisers (RUN-ce) calibrated again on the view proxies (RUN-ce-pw)
CLASSIFIER_PROXY_FAMILIES = [("NW-UCLA on the (10) joint, seeds 1 / 2 / 3", [f"ucla-fj10-llm-e4{s}-ce"
                                                                              for s in SEED_SUFFIXES]),
                             ("the released `nw-ucla` (`released_ucla_classifier`)", ["nw-ucla-released-ce"]),
                             ("NW-UCLA on the repeat-5 joint, seed 1, on the repeat-5 proxies (`fj5proxyweight`)",
                              ["ucla-fj5-llm-e4"]),
                             ("the same with Gemma 3 270M, on its repeat-5 proxies (`gemmaproxyweight`)",
                              ["ucla-fj5g-llm-e4"])]


def classifier_proxy_table(runs: Path) -> list[str]:
    """Issue 15: the three-way weights chosen on proxy runs (`sugar calibrate --on`, `ceproxyweight`): what the rule
    reads (the pooled proxy samples at the val-chosen and the proxy-chosen pair), then test, read after."""
    lines = ["### The three-way weights chosen on the cross-view proxy instead (issue 15; `ceproxyweight`): the pooled "
             "proxy samples, then test (read after the decision)", "",
             "| recognisers | proxy samples | proxy: val-chosen pair % | proxy: proxy-chosen pair % | test at the "
             "val-chosen pair % | test at the proxy-chosen pair % |", "|---|---|---|---|---|---|"]
    for label, names in CLASSIFIER_PROXY_FAMILIES:
        val = [read_json(runs / n / "report.json") for n in names]
        proxy = [read_json(runs / f"{n}-pw" / "report.json") for n in names]
        if any(r is None or "test_fused" not in r for r in (*val, *proxy)):
            continue
        calib = _calibration(runs / f"{names[0]}-pw")
        table = calib.get("table") or []
        pairs = [(r["fusion"]["weight"], r["fusion"]["ce_weight"]) for r in val]
        chosen = (calib["weight"], calib.get("ce_weight", 0.0))
        at_val = " / ".join(f"{pct(_val_at(table, w, v))} (w {w:.2f}, v {v:.2f})" for w, v in pairs)
        lines.append(f"| {label} | {calib['samples']} | {at_val} | {pct(_val_at(table, *chosen))} (w {chosen[0]:.2f}, "
                     f"v {chosen[1]:.2f}) | {seeds_cell([r['test_fused']['top1'] for r in val])} | "
                     f"{seeds_cell([r['test_fused']['top1'] for r in proxy])} |")
    return [*lines, ""] if len(lines) > 4 else []


# msrproxyrelease: (label, recogniser run name pattern over the held-out subject S)
MSR_RELEASE_RECIPES = [("A: the released `msr-action3d`'s recipe (msr-k-label settings + msrpool, two-way)",
                        "msr-pxk-s{s}-llm"),
                       ("B: msrlastpool's with the classifier (msr-action3d-joint's settings, last epoch + msrpool "
                        "at its last epoch, three-way)", "msr-px-last-s{s}-llm")]


def msr_proxy_release_table(runs: Path) -> list[str]:
    """Issue 15: which MSR recogniser to release, compared on the proxy folds' held-out subjects (`msrproxyrelease`):
    per fold and pooled, the recogniser's answer (fused) beside its LLM alone and its encoder's heads."""
    rows = []
    for label, pattern in MSR_RELEASE_RECIPES:
        reports = [read_json(runs / pattern.format(s=s) / "report.json") for s in PROXY_SUBJECTS]
        if any(r is None or "test_fused" not in r for r in reports):
            continue
        counts = [r["test"]["samples"] for r in reports]
        cells = []
        for key in ("test_fused", "test", "test_text", "test_ce"):
            values = [r[key]["top1"] if key in r else None for r in reports]
            cells.append(" / ".join(pct(v) for v in values) + (f" (pooled {pct(pooled(values, counts))})"
                                                               if None not in values else ""))
        rows.append(f"| {label} | {sum(counts)} | {' | '.join(cells)} |")
    if not rows:
        return []
    return ["### Which MSR recogniser to release, on the cross-subject proxy (issue 15; `msrproxyrelease`: held-out "
            "subjects 1 / 3 / 5 / 7 / 9)", "",
            "| recipe | samples | the recogniser's answer (fused) % | LLM alone % | text head % | CE head % |",
            "|---|---|---|---|---|---|", *rows, ""]


def fast_rank_table(runs: Path, name: str) -> list[str]:
    """Issue 16: accuracy of `sugar predict`'s ranking speed-ups (`stage3_results.sh fastrank`), val and test."""
    lines = [f"### Ranking speed-ups on `{name}`: accuracy (`stage3_results.sh fastrank`)", "",
             "| ranking | val LLM alone % | val fused % | test LLM alone % | test fused % |", "|---|---|---|---|---|"]
    found = []
    for tag, label in FAST_RANK:
        cells = []
        for split in ("val", "test"):
            rep = read_json(runs / name / "evaluation" / f"{split}{tag}" / "results.json")
            evidence = (rep or {}).get("evidence", {}).get("all", {})
            cells += [pct(evidence[k]["top1"]) if k in evidence else "-" for k in ("llm", "fused")]
        if any(c != "-" for c in cells):
            found.append(f"| {label} | {' | '.join(cells)} |")
    return [*lines, *found, ""] if found else []


def descriptions_table(runs: Path, names: list[str]) -> list[str]:
    """experiments/description_agreement.py: do generated descriptions agree with the chosen label?"""
    lines = ["### Generated descriptions: whole sentences, and agreement with the chosen label", "",
             "| run | samples | fusion w | label top-1 % | whole sentences % | description closest to the chosen "
             "class's knowledge % (chance) | mean cosine margin |", "|---|---|---|---|---|---|---|"]
    found = []
    for name in names:
        res = read_json(runs / name / "evaluation" / "descriptions-test.json")
        if res is None or not res.get("samples"):
            continue
        weights = f"{res.get('fusion') or 0:.2f}" + (f" / CE {res['fusion_ce']:.2f}" if res.get("fusion_ce") else "")
        found.append(f"| `{name}` | {res['samples']} | {weights} | {pct(res['top1'])} | "
                     f"{pct(res['whole_sentences'])} | {pct(res['agreement'])} ({pct(res['chance'])}) | "
                     f"{res['margin']:+.3f} |")
    return [*lines, *found, ""] if found else []


def bridge_table(runs: Path, tag: str = "") -> list[str]:
    """The ablation runs of one budget: stage3_results.sh names them ucla-abl{tag}-KIND and ucla-tok{tag}-N."""
    budget = "equal small budget per run" if not tag else f"equal budget per run, runs `*{tag}-*`"
    lines = [f"### Bridge ablation and action-token length (NW-UCLA, {budget})", "", *HEADER]
    found = []
    for name, label in ((f"ucla-abl{tag}-tqp", "TQP (recurrent Q-Former over chunks), 16 tokens"),
                        (f"ucla-abl{tag}-qformer", "one Q-Former over the whole sequence, 16 tokens"),
                        (f"ucla-abl{tag}-linear", "linear layer per frame (one token per encoder frame)"),
                        (f"ucla-abl{tag}-pool", "mean pooling to one token"),
                        (f"ucla-tok{tag}-1", "TQP, 1 token"), (f"ucla-tok{tag}-64", "TQP, 64 tokens"),
                        (f"ucla-tok{tag}-128", "TQP, 128 tokens (the paper's length)")):
        report = read_json(runs / name / "report.json")
        if report is not None:
            found.append(row(f"{label}, run `{name}`", report.get("test"), tune_setting(runs / name)))
    found = [f for f in found if f]
    return [*lines, *found, ""] if found else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/results"))
    parser.add_argument("--released", type=Path, default=Path("runs/released"),
                        help="where `sugar evaluate` put the released models' evaluations (the scripts' working dir)")
    args = parser.parse_args()
    runs = args.runs
    out = []
    out += supervised_table("NW-UCLA cross-view (train views 1+2, test view 3)", runs, "ucla", "ucla")
    out += supervised_table("MSR Action3D cross-subject (train subjects 1,3,5,7,9)", runs, "msr", "msr")
    out += recipe_table(runs)
    out += field_table(runs)
    out += proxy_seeds_table(runs)
    out += field_protocol_table(runs)
    out += msr_field_table(runs)
    out += textscore_table(runs, args.released)
    out += knowledge_table(runs, "msr", "MSR Action3D: knowledge for the text head (MIL-NCE + CE, 40 epochs each)")
    out += knowledge_table(runs, "ucla", "NW-UCLA: knowledge for the text head (MIL-NCE + CE, 30 epochs each)")
    out += own_defaults_table(runs)
    out += own_data_table(runs, "msr", "MSR Action3D as a user's own data (converted with --protocol xsub)",
                          ["msr-milnce", "msr-ce", "msr-r-joint", "msr-r-aug", "msr-r-neg", "msr-r-neg-text",
                           "msr-r-rep", "msr-k-gen", "msr-k-label"])
    out += own_data_table(runs, "ucla", "NW-UCLA as a user's own data (converted with --protocol xview)",
                          ["ucla-milnce", "ucla-ce", "ucla-r-joint", "ucla-r-neg", "ucla-k-gen", "ucla-k-label"])
    out += seeds_table(runs)
    out += own_knowledge_table(runs)
    out += msr_splits_table(runs)
    out += msr_field_splits_table(runs)
    for setting in sorted({p.name[len("msr-fsp0"):-len("-joint")] for p in runs.glob("msr-fsp0-*-joint")}):
        out += msr_field_splits_table(runs, setting)  # candidates run with FSP_TAG
    out += msr_splits_clips_table(runs)
    out += msr_proxy_table(runs)
    out += msr_proxy_streams_table(runs)
    out += ucla_proxy_streams_table(runs)
    out += ucla_proxy_both_table(runs)
    out += msr_proxy_seeds_table(runs)
    out += proxy_recogniser_tables(runs)
    out += zeroshot_table(runs)
    out += ablation_table(runs)
    out += stage3_closed_table(runs, "ucla", "NW-UCLA cross-view")
    out += stage3_closed_table(runs, "msr", "MSR Action3D cross-subject")
    out += stage3_zeroshot_table(runs, "ucla", "NW-UCLA zero-shot, 2 held-out classes, 2-way choice")
    out += stage3_zeroshot_table(runs, "msr", "MSR Action3D zero-shot, 4 held-out classes, 4-way choice")
    out += stage3_zeroshot_table(runs, "ucla", "NW-UCLA zero-shot, bridge in the LLM's language (kind text) and a "
                                               "random list per training row, 2-way choice", "-text")
    out += stage3_zeroshot_table(runs, "msr", "MSR Action3D zero-shot, bridge kind text and a random list per "
                                              "training row, 4-way choice", "-text")
    out += stage3_zeroshot_table(runs, "ucla", "NW-UCLA zero-shot with Gemma 3 270M as the LLM, 2-way choice", "-gemma")
    out += stage3_zeroshot_table(runs, "msr", "MSR Action3D zero-shot with Gemma 3 270M as the LLM, 4-way choice",
                                 "-gemma")
    gloss = "each list entry followed by its knowledge gloss (list_gloss_words 14)"
    out += stage3_zeroshot_table(runs, "ucla", f"NW-UCLA zero-shot, {gloss}, 2-way choice", "-gloss")
    out += stage3_zeroshot_table(runs, "msr", f"MSR Action3D zero-shot, {gloss}, 4-way choice", "-gloss")
    for split in ("val", "test"):
        for llm, name in (("", ""), ("-gemma", ", Gemma 3 270M"), ("-gloss", ", list glossed")):
            out += open_list_table(runs, f"ucla-llm-zs{llm}",
                                   f"NW-UCLA zero-shot recognisers{name}, 2 held-out classes", split)
            out += open_list_table(runs, f"msr-llm-zs{llm}",
                                   f"MSR Action3D zero-shot recognisers{name}, 4 held-out classes", split)
    for split in ("val", "test"):
        for llm, name in (("", ""), ("-gemma", ", Gemma 3 270M")):
            out += list_prior_table(runs, f"ucla-llm-zs{llm}", f"NW-UCLA zero-shot recognisers{name}, 2 held-out "
                                    "classes", split)
            out += list_prior_table(runs, f"msr-llm-zs{llm}", f"MSR Action3D zero-shot recognisers{name}, 4 held-out "
                                    "classes", split)
    out += list_prior_train_table(runs, "ucla-llm-zs", "NW-UCLA zero-shot recognisers, 2 held-out classes")
    out += list_prior_train_table(runs, "msr-llm-zs", "MSR Action3D zero-shot recognisers, 4 held-out classes")
    out += stacking_table(runs, "ucla-llm-zs", "NW-UCLA zero-shot recognisers, 2 held-out classes")
    out += stacking_table(runs, "msr-llm-zs", "MSR Action3D zero-shot recognisers, 4 held-out classes")
    out += cross_dataset_table(runs)
    out += reverse_cross_table(runs)
    out += cross_prior_table(runs)
    out += cross_prior_table(runs, BATCH_COLUMNS, "the batch prior (rules R6c)", BATCH_COLUMN_NAMES)
    for split, view in (("list-train", "all"), ("val", "zero_shot"), ("test", "zero_shot")):
        for llm, name in (("", ""), ("-gemma", ", Gemma 3 270M")):
            out += batch_prior_table(runs, f"ucla-llm-zs{llm}", f"NW-UCLA zero-shot recognisers{name}, 2 held-out "
                                     "classes", split, view)
            out += batch_prior_table(runs, f"msr-llm-zs{llm}", f"MSR Action3D zero-shot recognisers{name}, 4 "
                                     "held-out classes", split, view)
    stage3 = ["ucla-llm", "ucla-neg-llm", "ucla-f-joint-llm", "ucla-f-joint-llm-fast", "ucla-f-joint-llm-aug",
              "ucla-f-joint-llm-pool", "ucla-c1-joint-llm", "acc-fp32", "acc-bf16", "acc-bf16-nodrop",
              "msr-llm", "msr-label-llm", "msr-label-llm-e8", "msr-label-llm-e8-pool", "msr-llm-ho-fixed",
              "msr-llm-ho-vary"]
    stage3 += [f"{name}{suffix}" for name, _ in CLOSED_FAMILIES for suffix in SEED_SUFFIXES]
    stage3 += [f"{p}-llm-zs{v}-seed{s}" for p in ("ucla", "msr") for v in ("", "-vary", "-text", "-gemma", "-gloss")
               for s in range(1, 10)]
    out += evidence_table(runs, stage3, "Stage 3 with the encoder's text head fused (issue 15): LLM alone, text "
                                        "head alone, fused")
    out += descriptions_table(runs, [*stage3, "nw-ucla-released-ce"])
    out += ce_fusion_table(runs)
    out += proxy_weight_table(runs)
    out += classifier_table(runs)
    out += classifier_proxy_table(runs)
    out += encoder_seeds_table(runs)
    out += release_proxy_table(runs)
    out += msr_proxy_release_table(runs)
    out += seed_means_table(runs, CLOSED_FAMILIES, "Closed-set recognisers over seeds 1-3 (issue 15): val and test")
    out += fast_rank_table(runs, "ucla-f-joint-llm")
    out += fast_rank_table(runs, "ucla-f-joint-llm-fast")
    out += fast_rank_table(runs, "ucla-f-joint-llm-pool")
    out += fast_rank_table(runs, "ucla-fj-llm-e4")  # the released nw-ucla since 2026-12-05 (6)
    out += fast_rank_table(runs, "nw-ucla-released-ce")  # ... with its classifier since 2026-12-06 (13)
    out += fast_rank_table(runs, "ucla-fj5-llm-e4")  # fj5closed's seed 1, on the repeat-5 joint (2026-12-07 (17))
    out += bridge_table(runs)
    out += bridge_table(runs, "-full")
    print("\n".join(out) if out else f"no finished runs under {runs}")


if __name__ == "__main__":
    main()
