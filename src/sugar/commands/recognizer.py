"""`sugar tune` (stage 3 training) and `sugar predict` (recognise skeleton files with a tuned run)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from sugar.commands.options import ENCODER_PRECISION, FUSION

console = Console()
err_console = Console(stderr=True)


def tune_cmd(
    encoder: Path = typer.Option(None, "--encoder", help="A `sugar pretrain` run directory (the frozen encoder)."),
    features: Path = typer.Option(None, "--features", help="Folder with train/ val/ test/ written by "
                                                            "`sugar extract` (else encode online)."),
    config: Path = typer.Option(None, "--config", help="YAML file with TuneConfig settings."),
    overrides: list[str] = typer.Option([], "--set", help="Override a setting, e.g. --set bridge.num_queries=128."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Where to write the run (resumes if it exists)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per epoch."),
) -> None:
    """Train the Temporal Query Projection and LoRA adapters on a frozen LLM (stage 3)."""
    from sugar.commands.library_bars import show_library_progress
    from sugar.training.allocator import hold_freed_memory
    from sugar.training.instruct import load_tune_config, tune

    show_library_progress(progress)
    hold_freed_memory()  # each step's vocabulary logits reuse the last step's pages (sugar.training.allocator)
    cfg = load_tune_config(config, list(overrides), str(encoder) if encoder else None,
                           str(features) if features else None)
    report = tune(cfg, run_dir, progress=progress)
    if report:
        console.print_json(json.dumps({k: v for k, v in report.items() if k != "actions"}))


def _actions(spec: str | None) -> tuple[list[str] | None, Any]:
    """--actions: a dataset name, a text file (one name per line) or a knowledge JSON file."""
    from sugar.knowledge.actions import read_action_list

    if spec is None:
        return None, None
    action_list = read_action_list(spec)
    return action_list.names, action_list.knowledge


def predict_cmd(
    files: list[Path] = typer.Argument(..., help="Skeleton files in any supported format, videos, image folders "
                                                 "or images (poses estimated offline; needs the pose extra)."),
    run: Path = typer.Option(..., "--run", help="A `sugar tune` run directory, or a released model's name "
                                                "(`sugar models` lists them)."),
    actions: str = typer.Option(None, "--actions", help="Candidate actions: dataset name, text file or knowledge "
                                                        "JSON (default: the run's training list)."),
    mode: str = typer.Option("rank", "--mode", help="rank | generate."),
    rank_by: str = typer.Option(None, "--rank-by", help="Rank mode: label | answer (also score each action's "
                                "knowledge description; needs --actions with knowledge for new actions)."),
    fmt: str = typer.Option(None, "--format", help="Input format (default: detected from the file; `video` sends "
                                                   "any file or folder through the pose estimator)."),
    batch_size: int = typer.Option(32, "--batch-size"),
    render: Path = typer.Option(None, "--render", help="Also animate each sequence with its answer written on it "
                                                       "(.gif, or .mp4 with ffmpeg); several sequences get "
                                                       "out-NAME.gif."),
    view: str = typer.Option("auto", "--view", help="Animation view: auto | image | front | 3d."),
    int8: bool = typer.Option(False, "--int8", help="Run the LLM's linear layers in int8 (CPU; faster, approximate)."),
    precision: str = typer.Option("fp32", "--precision", help="LLM weights at inference: fp32 | bf16 (half the "
                                  "weights; pays on GPUs) | int8 (fastest on CPU) | auto (bf16 on a GPU); "
                                  "docs/benchmarks.md."),
    encoder_precision: str = ENCODER_PRECISION,
    fusion: float = FUSION,
    separating: bool = typer.Option(False, "--separating", help="Rank mode: score each action only up to its first "
                                    "token no other action shares (faster; accuracy in docs/benchmarks.md)."),
    list_prior: bool = typer.Option(False, "--list-prior", help="Rank mode: divide the LLM's prior over the list out "
                                    "of its scores (contextual calibration, docs/recognizer.md; measured, not the "
                                    "default)."),
    batch_prior: bool = typer.Option(False, "--batch-prior", help="Rank mode: divide out the mean answer of the "
                                     "files given together (for a set that covers the list roughly evenly, e.g. "
                                     "another dataset's clips; docs/recognizer.md)."),
) -> None:
    """Recognise and describe the action in each skeleton file; prints one JSON object per file."""
    from sugar.errors import SugarError
    from sugar.models.answering import check_rank_by
    from sugar.models.inference import set_encoder_precision, set_precision
    from sugar.models.recognizer_io import load_recognizer
    from sugar.pose import PoseOptions, read_input

    check_rank_by(rank_by, "--rank-by")
    names, knowledge = _actions(actions)
    rec = load_recognizer(run)
    notice = new_classes_notice(rec.actions, names, fusion, rec.evidence is not None)
    if notice:
        err_console.print(notice)
    set_precision(rec, "int8" if int8 else precision)
    set_encoder_precision(rec, encoder_precision)
    rec.rank_separating = separating
    pose = None
    if any(fmt == "video" or is_video(f) for f in files):
        processor = rec.processor
        if processor is None:
            raise SugarError(f"{run}: this recogniser has no encoder folder, so it cannot read videos")
        pose = PoseOptions.for_layout(processor.layout, processor.dims, processor.settings.max_persons,
                                      keep_frames=RENDER_FRAMES if render is not None else 0)
    samples = []
    for f in files:
        samples += read_input(f, format=fmt, pose=pose, progress=True)
    results = rec.recognize(samples, actions=names, knowledge=knowledge, mode=mode, batch_size=batch_size,
                            rank_by=rank_by, fusion=fusion, list_prior=True if list_prior else None,
                            batch_prior=batch_prior)
    for s, r in zip(samples, results, strict=True):
        picture = {}
        if render is not None:
            picture = {"render": str(_render(s, r, render if len(samples) == 1 else _numbered(render, s.name),
                                             rec, view))}
        found = {"pose": s.meta["pose"]} if "pose" in s.meta else {}
        console.print_json(json.dumps({"file": s.meta.get("path", s.name), "name": s.name, **r, **found, **picture}))


def new_classes_notice(tuned: Sequence[str], listed: Sequence[str] | None, fusion: float | None,
                       has_text_head: bool) -> str | None:
    """A note for a list holding classes the recogniser was not tuned on, unless the user chose a weight: on such
    classes the LLM is at chance here and the encoder's text head recognises (docs/RESULTS.md, zero-shot)."""
    seen = set(tuned)
    new = [a for a in listed or [] if a not in seen]
    if not new or fusion is not None or not has_text_head:
        return None
    shown = ", ".join(new[:5]) + (", ..." if len(new) > 5 else "")
    return (f"note: {len(new)} listed action(s) the recogniser was not tuned on ({shown}); on unseen classes its "
            "LLM ranks near chance and the encoder's text head does better (docs/recognizer.md, zero-shot): "
            "add --fusion 1 to rank by the text head alone")


def _numbered(path: Path, name: str) -> Path:
    """out.gif -> out-NAME.gif, one animation per sequence when several are predicted."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return path.with_name(f"{path.stem}-{safe}{path.suffix}")


def is_video(path: Path) -> bool:
    from sugar.pose import is_video_input

    return is_video_input(path)


RENDER_FRAMES = 120  # frames an animation shows at most


def _render(sample, result: dict[str, Any], path: Path, rec, view: str) -> Path:
    """The answer drawn over the video frames for video input, else over the skeleton alone."""
    label = result.get("label") or result.get("answer") or "?"
    video = sample.meta.get("video")
    if video is not None:
        from sugar.overlay import render_overlay

        return render_overlay(video.frames, video.image, sample.meta["layout"], video.width, path, label,
                              result.get("description"), fps=video.kept_fps)
    from sugar.viz import render_sequence

    layout = sample.meta.get("layout") or rec.layout
    return render_sequence(sample.joints, layout, path, label=label, description=result.get("description"),
                           view=view, max_frames=RENDER_FRAMES)


def calibrate_cmd(
    run: Path = typer.Argument(..., help="A finished `sugar tune` run directory."),
    on: list[Path] = typer.Option([], "--on", help="Proxy runs (repeat the option): the same recipe tuned on "
                                  "encoders that held out a view or subject of the training data, each evaluated "
                                  "on it (`sugar evaluate PROXY --split test`); the weight is chosen on their "
                                  "pooled scores instead of this run's validation carve."),
    on_split: str = typer.Option("test", "--on-split", help="With --on: the proxies' split whose scores choose."),
) -> None:
    """Give a tuned recogniser its encoder's text head (and CE classifier, unless the run says fuse_classifier:
    false) as further opinions: choose the fusion weights on the validation split (or on proxy runs), save them
    with the recogniser, and score the test split again (LLM, text head, classifier, fused)."""
    from sugar.training.instruct import refinish

    calibration = None
    if on:
        from sugar.evaluation.proxy_weight import choose_on_proxies
        from sugar.fileio import read_json_object
        from sugar.models.recognizer_io import META_FILE

        meta = read_json_object(run / META_FILE, "recogniser description")
        calibration = choose_on_proxies(on, meta["actions"], on_split,
                                        bool((meta.get("config") or {}).get("fuse_classifier", True)))
    report = refinish(run, calibration)
    keys = [k for k in report if k.startswith("test") or k in ("fusion", "fusion_before")]
    console.print_json(json.dumps({k: ({m: report[k][m] for m in ("samples", "top1", "top5") if m in report[k]}
                                       if k.startswith("test") else report[k]) for k in keys}))


def list_prior_cmd(
    recognizer: Path = typer.Argument(..., help="A recogniser folder (a `sugar tune` run or a released model's "
                                                "folder), or a released model's name."),
    root: Path = typer.Option(None, "--root", help="Where the dataset its encoder was trained on lives (default: "
                                                   "that dataset's usual place)."),
    out: Path = typer.Option(None, "--out", help="Write a copy of the recogniser there instead of changing it in "
                                                 "place (e.g. for a released model of a read-only install)."),
) -> None:
    """Store the reference samples of the LLM's list prior in a recogniser, drawn from the training split of the
    data its encoder records, so `sugar predict --list-prior` can divide the prior out on new action lists
    (`sugar tune` stores them itself; this is for released folders and older runs)."""
    from sugar.models.recognizer_io import load_recognizer, record_list_prior
    from sugar.models.released import resolve_run
    from sugar.training.instruct import list_prior_from_source

    if out is not None and out.exists():
        raise typer.BadParameter(f"{out} exists; give a new folder", param_hint="--out")
    folder = resolve_run(recognizer)
    rec = load_recognizer(folder)
    if out is not None:
        shutil.copytree(folder, out)
        folder = out
    prior = list_prior_from_source(rec, str(root) if root else None)
    meta_path = record_list_prior(folder, prior)
    console.print(f"stored {len(prior)} reference samples (its encoder's training split) in {meta_path.parent}")


def calibrate_unseen_cmd(
    runs: list[Path] = typer.Argument(..., help="Zero-shot `sugar tune` runs with different held-out classes, each "
                                                "evaluated with `sugar evaluate RUN --split val` and `--split test`."),
    choose_on: str = typer.Option("val", "--choose-on", help="The split whose held-out samples choose the weights."),
    split: str = typer.Option("test", "--split", help="The split scored at the chosen weights."),
    whole_list: bool = typer.Option(False, "--whole-list", help="Instead: on the whole list (seen and held-out "
                                    "classes, generalized zero-shot), choose a bonus for never-seen classes' scores "
                                    "(calibrated stacking), and score --choose-on and --split at it."),
    save: bool = typer.Option(False, "--save", help="With --whole-list: store each run's bonus for its fused "
                              "ranking in its recognizer.json, so that predict/serve/evaluate apply it to list "
                              "entries the recogniser was not tuned on."),
) -> None:
    """Choose each run's fusion weight for classes its LLM never saw on the other runs' held-out classes
    (leave-classes-out), and score its own held-out classes at that weight (LLM alone, text head, fused)."""
    from sugar.evaluation.zero_shot import calibrated_stacking, leave_classes_out

    if save and not whole_list:
        raise typer.BadParameter("--save stores a --whole-list bonus; add --whole-list", param_hint="--save")
    if whole_list:
        from sugar.models.recognizer_io import record_new_class_bias

        for r in calibrated_stacking(runs, choose_on=choose_on, splits=tuple(dict.fromkeys((choose_on, split)))):
            if "skipped" in r:
                err_console.print(f"[yellow]skipped[/yellow] {r['skipped']}")
                continue
            if save:
                fused = r["kinds"]["fused"]
                record_new_class_bias(r["run"], fused["bias"], {"method": "calibrated stacking", "chosen_on":
                                      r["chosen_on"], "donors": r["donors"], "table": fused["table"]})
            console.print_json(json.dumps({
                "run": r["run"], "held_out": r["held_out"], "saved": r["saved"],
                **{kind: {"bias": v["bias"], split: {at: v[split][at]["harmonic"] for at in ("at_0", "at_bias")}}
                   for kind, v in r["kinds"].items()}}))
        return
    for r in leave_classes_out(runs, choose_on, split):
        if "skipped" in r:
            err_console.print(f"[yellow]skipped[/yellow] {r['skipped']}")
            continue
        console.print_json(json.dumps({
            "run": r["run"], "held_out": r["held_out"], "donor_classes": r["donor_classes"], "weight": r["weight"],
            **{kind: r["evidence"][kind]["top1"] for kind in ("llm", "text", "fused")}, "saved": r["saved"]}))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.command("tune")(tune_cmd)
    app.command("calibrate")(calibrate_cmd)
    app.command("calibrate-unseen")(calibrate_unseen_cmd)
    app.command("list-prior")(list_prior_cmd)
    app.command("predict")(predict_cmd)
