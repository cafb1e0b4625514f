"""`sugar pretrain | evaluate | extract`: the stage-2 encoder commands (thin wrappers over the library)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sugar.commands.options import ENCODER_PRECISION, FUSION

console = Console()


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x * 100:.2f}"


def pretrain_cmd(
    dataset: str = typer.Option(None, "--dataset", "--data",
                                help="Dataset name (nw-ucla, msr-action3d, ntu60, synthetic, ...) or a dataset "
                                     "folder in the generic format (your own data, docs/own-data.md)."),
    protocol: str = typer.Option(None, "--protocol", help="Protocol, e.g. xview, xsub; default: the dataset's."),
    config: Path = typer.Option(None, "--config", help="YAML config (configs/pretrain/*.yaml)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key: --set lr=0.05 (repeatable)."),
    run_dir: Path = typer.Option(None, "--run-dir",
                                 help="Run directory; default runs/pretrain/<config name or dataset>-<protocol>."),
    root: Path = typer.Option(None, "--root", help="Dataset folder (default: the dataset's usual location)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per epoch."),
) -> None:
    """Train the skeleton encoder against the knowledge texts (stage 2); rerun the same command to resume.

    Runs in one process, or under `torchrun --nproc_per_node N` (DDP, global batch split over processes).
    """
    from sugar.commands.library_bars import show_library_progress
    from sugar.config import PretrainConfig, load_config
    from sugar.training.pretrain import pretrain

    show_library_progress(progress)
    extra = list(overrides)
    if dataset:
        extra.append(f"data.dataset={dataset}")
    if protocol:
        extra.append(f"data.protocol={protocol}")
    if root:
        extra.append(f"data.root={root}")
    cfg = load_config(PretrainConfig, config, extra)
    report = pretrain(cfg, run_dir, progress=progress, name=config.stem if config else None)
    if not report:  # a non-zero DDP rank
        return
    table = Table(title=f"stage 2: {cfg.data.dataset} {cfg.data.protocol or ''}".strip())
    for col in ("part", "samples", "top-1 %", "top-5 %"):
        table.add_column(col)
    table.add_row("val (best)", "-", _pct(report.get("best_val_top1")), "-")
    for part in ("test", "zero_shot"):
        if part in report:
            r = report[part]
            table.add_row(part, str(r["samples"]), _pct(r["top1"]), _pct(r["top5"]))
    console.print(table)
    typer.echo(json.dumps(report))


def _evaluate_recognizer(run: Path, split: str, dataset: str | None, protocol: str | None, root: Path | None,
                         out: Path | None, mode: str, limit: int | None, rank_by: str | None,
                         actions: list[str] | None, knowledge: str | None, fusion: float | None = None,
                         precision: str = "fp32", separating: bool = False,
                         encoder_precision: str = "fp32") -> None:
    from sugar.evaluation.recognizer import evaluate_recognizer_run

    res = evaluate_recognizer_run(run, split, dataset, protocol, str(root) if root else None, mode, out, limit=limit,
                                  rank_by=rank_by, knowledge_file=knowledge, actions=actions, fusion=fusion,
                                  precision=precision, separating=separating,
                                  encoder_precision=encoder_precision)
    how = f"{mode}, by {res['rank_by']}" if mode == "rank" else mode
    if res["precision"] != "fp32":
        how += f", {res['precision']}"
    if separating:
        how += ", separating"
    if res["encoder_precision"] != "fp32":
        how += f", encoder {res['encoder_precision']}"
    if mode == "rank" and res.get("fusion_weight") and fusion != 0:
        how += f", fused with the text head at w={res['fusion_weight']:.2f}"
    table = Table(title=f"LLM recogniser ({how}): {res['dataset']} {split}")
    for col in ("view", "classes", "samples", "top-1 %", "top-5 %", "mean class acc %"):
        table.add_column(col)
    for name, r in res["views"].items():
        table.add_row(name, str(len(r["classes"])), str(r["samples"]), _pct(r["top1"]), _pct(r["top5"]),
                      _pct(r["mean_class_accuracy"]))
        for kind, e in res.get("evidence", {}).get(name, {}).items():
            table.add_row(f"  {name}: {kind}" + (f" (w={res['fusion_weight']:.2f})" if kind == "fused" else ""),
                          str(len(e["classes"])), str(e["samples"]), _pct(e["top1"]), _pct(e["top5"]),
                          _pct(e["mean_class_accuracy"]))
    console.print(table)
    keys = ("samples", "top1", "top5", "mean_class_accuracy")
    summary = {n: {k: r[k] for k in keys} for n, r in res["views"].items()}
    typer.echo(json.dumps({"out_dir": res["out_dir"], "views": summary, "pictures": res["pictures"]}))


def evaluate_cmd(
    run: Path = typer.Argument(..., help="A `sugar pretrain` run (encoder heads) or a `sugar tune` run (the LLM)."),
    split: str = typer.Option("test", "--split", help="train | val | test | trainval."),
    multi_clip: int = typer.Option(1, "--multi-clip", min=1, help="Average N views (test view + N-1 random crops)."),
    dataset: str = typer.Option(None, "--dataset", "--data",
                                help="Evaluate on another dataset or dataset folder (text head, zero-shot)."),
    protocol: str = typer.Option(None, "--protocol"),
    root: Path = typer.Option(None, "--root"),
    out: Path = typer.Option(None, "--out", help="Output folder (default RUN/evaluation/<split>)."),
    tsne: bool = typer.Option(True, "--tsne/--no-tsne", help="t-SNE of features before/after training."),
    mode: str = typer.Option("rank", "--mode", help="Stage-3 runs: rank | generate."),
    limit: int = typer.Option(None, "--limit", help="Stage-3 runs: score a seeded random subset of this size."),
    rank_by: str = typer.Option(None, "--rank-by", help="Stage-3 rank mode: label | answer (label + knowledge "
                                "description); default: the run's setting."),
    actions: str = typer.Option(None, "--actions", help="Score against this action list (a dataset name, a text "
                                "file of names or a knowledge .json): the split's samples of listed classes."),
    knowledge: str = typer.Option(None, "--knowledge", help="Knowledge .json (or dataset name) for the texts and "
                                  "descriptions of the classes scored; default: the run's, or --dataset's."),
    fusion: float = FUSION,
    text_score: str = typer.Option(None, "--text-score", help="Stage-2 runs: the text head's rule, prototype | mil "
                                   "(default: the run's text_score); the output folder ends in -text-<rule>."),
    precision: str = typer.Option("fp32", "--precision", help="Stage-3 runs: LLM weights, fp32 | bf16 | int8 | auto, "
                                  "to measure the accuracy of `sugar predict --precision`."),
    encoder_precision: str = ENCODER_PRECISION,
    separating: bool = typer.Option(False, "--separating", help="Stage-3 rank mode: score each entry only up to "
                                    "its first token no other entry shares (faster; `sugar predict --separating`)."),
) -> None:
    """Score a split: a stage-2 run with its text head (cosine to class texts) and CE head, with confusion
    matrices and t-SNE; a stage-3 run with the LLM recogniser (another --dataset = its action list, zero-shot)."""
    from sugar.evaluation.encoder import evaluate_run
    from sugar.knowledge.actions import read_action_list

    names = None
    if actions:
        listed = read_action_list(actions)
        names = listed.names
        if knowledge is None and listed.knowledge is not None and Path(actions).suffix.lower() == ".json":
            knowledge = actions  # a knowledge file given as the list carries its own texts
    from sugar.models.released import resolve_run

    run = resolve_run(run)
    if (run / "recognizer.json").is_file():
        _evaluate_recognizer(run, split, dataset, protocol, root, out, mode, limit, rank_by, names, knowledge, fusion,
                             precision, separating, encoder_precision)
        return

    res = evaluate_run(run, split, multi_clip, dataset, protocol, str(root) if root else None, out, tsne,
                       knowledge=knowledge, actions=names, text_score=text_score)
    table = Table(title=f"{res['dataset']} {split} ({res['samples']} samples, {multi_clip} clip(s))")
    for col in ("head", "classes", "samples", "top-1 %", "top-5 %", "mean class acc %"):
        table.add_column(col)
    for head, views in res["heads"].items():
        for name, r in views.items():
            table.add_row(f"{head} / {name}", str(len(r["classes"])), str(r["samples"]), _pct(r["top1"]),
                          _pct(r["top5"]), _pct(r["mean_class_accuracy"]))
    console.print(table)
    summary = {h: {n: {k: r[k] for k in ("samples", "top1", "top5", "mean_class_accuracy")} for n, r in v.items()}
               for h, v in res["heads"].items()}
    typer.echo(json.dumps({"out_dir": res["out_dir"], "heads": summary, "pictures": res["pictures"]}))


def extract_cmd(
    run: Path = typer.Argument(..., help="A `sugar pretrain` run directory."),
    out: Path = typer.Option(..., "--out", help="Output folder (shards + index.json)."),
    dataset: str = typer.Option(None, "--dataset", "--data", help="Default: the run's dataset (a name or a folder)."),
    protocol: str = typer.Option(None, "--protocol"),
    split: str = typer.Option("train", "--split", help="train | val | test | trainval."),
    root: Path = typer.Option(None, "--root"),
    batch_size: int = typer.Option(32, "--batch-size"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | float16 | bfloat16."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace features of another encoder in --out."),
) -> None:
    """Write per-sample encoder token sequences [T', d] for stage 3 (safetensors shards + index.json)."""
    from sugar.commands.library_bars import show_library_progress
    from sugar.errors import ConfigError
    from sugar.features import extract_features

    show_library_progress(progress)
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"--dtype {dtype!r}: choose float32, float16 or bfloat16")
    info = extract_features(run, out, dataset, protocol, split, str(root) if root else None, batch_size,
                            dtype=dtype, progress=progress, overwrite=overwrite)
    typer.echo(json.dumps({k: v for k, v in info.items() if k != "classes"}))


def fuse_cmd(
    runs: list[str] = typer.Argument(..., help="Two or more runs scored on the same data: `sugar pretrain` runs "
                                               "(e.g. the joint, bone and motion streams) or `sugar tune` "
                                               "recognisers; RUN:HEAD picks that run's head."),
    head: str = typer.Option("text", "--head", help="The head of runs named without one: text | ce for stage-2 "
                                                    "runs, llm | text | fused for recognisers."),
    split: str = typer.Option("test", "--split", help="The split to report."),
    weights: str = typer.Option(None, "--weights", help="Comma-separated, one per run, or `equal` (the plain sum "
                                                        "of CTR-GCN's ensembles); default: chosen on val."),
    out: Path = typer.Option(None, "--out", help="Output folder (default FIRST_RUN/evaluation/fused-<split>)."),
    text_score: str = typer.Option(None, "--text-score", help="The text head's rule for every run, prototype | mil "
                                   "(default: each run's text_score)."),
    multi_clip: int = typer.Option(1, "--multi-clip", min=1, help="Fuse each run's scores averaged over N clips "
                                   "(`sugar evaluate --multi-clip N`; evaluated first where missing)."),
) -> None:
    """Fuse several runs' class scores (softmax, weighted sum); weights are chosen on the validation split,
    never on test. Runs not yet evaluated on a split are evaluated first."""
    from sugar.errors import ConfigError
    from sugar.evaluation.fusion import ANY_HEAD, fuse_runs, split_head

    if head not in ANY_HEAD:
        raise ConfigError(f"--head {head!r}: choose from {', '.join(ANY_HEAD)}")
    given = _fusion_weights(weights, len(runs))
    paths, heads = zip(*(split_head(r, head) for r in runs), strict=True)
    res = fuse_runs(paths, heads, split, weights=given, out_dir=out, text_score=text_score, multi_clip=multi_clip)
    table = Table(title=f"{len(runs)} runs fused, {res['head']}, {split} (weights from {res['weights_chosen_on']})")
    for col in ("run", "weight", "top-1 %", "top-5 %"):
        table.add_column(col)
    for single, w in zip(res["single"], res["weights"], strict=True):
        table.add_row(single["run"], f"{w:g}", _pct(single["top1"]), _pct(single["top5"]))
    fused = res["fused"]
    table.add_row("fused", "", _pct(fused["top1"]), _pct(fused["top5"]))
    console.print(table)
    typer.echo(json.dumps({"weights": res["weights"], "top1": fused["top1"], "top5": fused["top5"],
                           "mean_class_accuracy": fused["mean_class_accuracy"], "out_dir": res["out_dir"]}))


def _fusion_weights(weights: str | None, runs: int) -> list[float] | None:
    """--weights as numbers: None (choose on val), `equal` (one each) or one comma-separated number per run."""
    from sugar.errors import ConfigError

    if not weights:
        return None
    if weights == "equal":
        return [1.0] * runs
    try:
        return [float(w) for w in weights.split(",")]
    except ValueError:
        raise ConfigError(f"--weights {weights!r}: comma-separated numbers, one per run, or equal") from None


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.command("pretrain")(pretrain_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("fuse")(fuse_cmd)
    app.command("extract")(extract_cmd)
