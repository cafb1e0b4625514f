"""`sugar knowledge ...`: show and list knowledge files, generate motion and visual knowledge (stage 1)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sugar.errors import KnowledgeError

knowledge_app = typer.Typer(help="Stage 1: action knowledge files (motion, visual, description per class).",
                            no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _report_failures(failures: dict, what: str) -> None:
    if not failures:
        return
    table = Table(title=f"{len(failures)} {what} failed (not written)", show_lines=False)
    table.add_column("item")
    table.add_column("reason", overflow="fold")
    for item, reason in failures.items():
        table.add_row(str(item), reason)
    err_console.print(table)


def _client(provider: str, model: str | None, base_url: str | None, api_key: str | None, timeout: float,
            max_retries: int, cache_dir: Path | None):
    from sugar.knowledge.chat import AnswerCache, ChatClient, RetryPolicy, make_provider

    return ChatClient(make_provider(provider, model, base_url=base_url, api_key=api_key, timeout=timeout),
                      AnswerCache(cache_dir), RetryPolicy(max_retries=max_retries))


@knowledge_app.command("show")
def show(source: str = typer.Argument(..., help="Dataset name (ntu60, nw-ucla, ...) or a knowledge JSON file."),
         as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
         full: bool = typer.Option(False, "--full", help="Table: show every visual description.")) -> None:
    """Validate and print a knowledge file."""
    from sugar.knowledge.schema import BODY_PARTS, load_knowledge

    know = load_knowledge(source)
    if as_json:
        typer.echo(json.dumps({"dataset": know.dataset, "schema_version": know.schema_version, "source": know.source,
                               "content_hash": know.content_hash(), "classes": know.to_json()["classes"]},
                              ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{know.dataset}: {len(know)} classes ({source})", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("label")
    table.add_column("motion", overflow="fold")
    table.add_column("visual", overflow="fold")
    table.add_column("description", overflow="fold")
    for i, cls in enumerate(know.classes):
        motion = "\n".join(f"{p}: {getattr(cls.motion, p)}" for p in BODY_PARTS)
        visual = "\n".join(f"- {v}" for v in (cls.visual if full else cls.visual[:2]))
        if not full and len(cls.visual) > 2:
            visual += f"\n(+{len(cls.visual) - 2} more)"
        table.add_row(str(i), cls.label, motion, visual, cls.description)
    console.print(table)


@knowledge_app.command("check")
def check(
    source: str = typer.Argument(..., help="Dataset name (nw-ucla, ...) or a knowledge JSON file."),
    threshold: float = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                    help="Cosine similarity from which two classes' texts count as near-duplicates "
                                         "(default 0.99, see docs/knowledge.md)."),
    text_model: str = typer.Option("all-MiniLM-L6-v2", "--text-model", help="Text encoder the texts are embedded "
                                                                             "with (stage 2's model.text_model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the pairs as JSON."),
) -> None:
    """Find classes whose motion, visual or description texts are near-duplicates; exit 1 when there are any."""
    from sugar.knowledge.schema import load_knowledge
    from sugar.models.text import knowledge_duplicates
    from sugar.models.text_checks import DUPLICATE_THRESHOLD, duplicate_groups

    limit = DUPLICATE_THRESHOLD if threshold is None else threshold
    know = load_knowledge(source)
    pairs = knowledge_duplicates(know, text_model, threshold=limit)
    if as_json:
        typer.echo(json.dumps({"source": source, "classes": len(know), "threshold": limit, "text_model": text_model,
                               "pairs": [p.__dict__ for p in pairs]}, ensure_ascii=False, indent=1))
    elif not pairs:
        console.print(f"{source}: no near-duplicate texts across its {len(know)} classes "
                      f"(cosine < {limit:g} with {text_model})")
    else:
        table = Table(title=f"{source}: {len(pairs)} near-duplicate pair(s) (cosine >= {limit:g} with {text_model})",
                      show_lines=True)
        for col in ("kind", "class", "other class", "cosine", "text", "other text"):
            table.add_column(col, overflow="fold")
        for p in pairs:
            table.add_row(p.kind, p.first, p.second, f"{p.similarity:.3f}", p.first_text, p.second_text)
        console.print(table)
        groups = "; ".join(" = ".join(g) for g in duplicate_groups(pairs))
        err_console.print(f"classes the text head cannot tell apart: {groups}")
    if pairs:
        raise typer.Exit(1)


@knowledge_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Datasets with shipped knowledge and their class counts."""
    from sugar.knowledge.schema import load_knowledge, shipped_datasets, shipped_path

    rows = []
    for name in shipped_datasets():
        try:
            know = load_knowledge(name)
            rows.append({"dataset": name, "classes": len(know), "ok": True,
                         "file": "ntu120.json[:60]" if name == "ntu60" else shipped_path(name).name})
        except KnowledgeError as exc:
            rows.append({"dataset": name, "classes": None, "ok": False, "error": str(exc)})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table(title="shipped knowledge")
    table.add_column("dataset")
    table.add_column("classes", justify="right")
    table.add_column("file / problem", overflow="fold")
    for row in rows:
        table.add_row(row["dataset"], str(row["classes"] or "-"), row.get("file") or f"[red]{row['error']}")
    console.print(table)


@knowledge_app.command("motion")
def motion(
    actions: str = typer.Option(..., "--actions", help="Dataset name or a text file with one action per line."),
    out: Path = typer.Option(..., "--out", help="Knowledge JSON to write; an existing file is updated (its visual "
                                               "lists and descriptions are kept)."),
    provider: str = typer.Option("hf", "--provider", help="openai (any OpenAI-compatible server) or hf (local)."),
    model: str = typer.Option(None, "--model", help="Model name (openai) or HF name/path/.gguf (hf; default "
                                                    "smollm2-135m)."),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 "
                                                          "(default OPENAI_BASE_URL or api.openai.com)."),
    api_key: str = typer.Option(None, "--api-key", help="API key (default SUGAR_API_KEY or OPENAI_API_KEY)."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset name stored in the file (default: from --actions)."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Requests in flight at once."),
    max_retries: int = typer.Option(5, "--max-retries", min=0, help="Retries per request on 429/5xx/timeouts."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per request."),
    attempts: int = typer.Option(3, "--attempts", min=1, help="Answers asked per action before it is reported "
                                                              "as failed (later ones sample with another seed)."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature of the first attempt."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Answer cache (default: sugar cache dir/answers)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write motion knowledge (six body parts) and descriptions for every action with an LLM."""
    from sugar.knowledge.actions import read_action_list
    from sugar.knowledge.chat import Sampling
    from sugar.knowledge.motion import MOTION_MAX_TOKENS, generate_motion_knowledge
    from sugar.knowledge.schema import load_knowledge

    logging.basicConfig(level=logging.WARNING)
    action_list = read_action_list(actions, with_knowledge=False)
    names, ds = action_list.names, action_list.source
    existing = load_knowledge(out) if out.exists() else None
    client = _client(provider, model, base_url, api_key, timeout, max_retries, cache_dir)
    try:
        sampling = Sampling(temperature=temperature, seed=0, max_tokens=MOTION_MAX_TOKENS)
        run = generate_motion_knowledge(names, client, dataset=dataset or ds, existing=existing, attempts=attempts,
                                        concurrency=concurrency, progress=not quiet, sampling=sampling)
    finally:
        client.close()
    if run.knowledge is not None:
        run.knowledge.save(out)
    stats = client.stats
    console.print(f"{len(run.generated)}/{len(names)} action(s) written to {out} "
                  f"({stats.asked} asked, {stats.cached} from cache, {stats.retries} retries)")
    if run.templated:
        err_console.print(f"[yellow]{len(run.templated)} action(s) got the label template instead of the LLM's "
                          f"answers (they copied an example, repeated another class or did not name the action; "
                          f"a larger --model does better): {', '.join(run.templated)}")
    _report_failures(run.failures, "action(s)")
    if run.failures:
        raise typer.Exit(1)


@knowledge_app.command("visual")
def visual(
    videos: Path = typer.Option(..., "--videos", help="Folder of videos, one sub-folder per class (or --labels)."),
    out: Path = typer.Option(..., "--out", help="Existing knowledge JSON to add visual descriptions to."),
    k: int = typer.Option(5, "--k", min=1, help="Diverse frames per video."),
    clip_model: str = typer.Option(None, "--clip-model", help="CLIP model name/path (local files only); "
                                                              "'fallback' for the histogram embedding."),
    vlm_model: str = typer.Option(..., "--vlm-model", help="Vision-language model served by the endpoint."),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible base URL."),
    api_key: str = typer.Option(None, "--api-key", help="API key (default SUGAR_API_KEY or OPENAI_API_KEY)."),
    labels: Path = typer.Option(None, "--labels", help="CSV of video path (relative to --videos),label."),
    replace: bool = typer.Option(False, "--replace", help="Replace (not extend) the visual lists of described "
                                                          "classes."),
    max_frames: int = typer.Option(64, "--max-frames", help="Frames read per video before selection."),
    concurrency: int = typer.Option(4, "--concurrency", min=1),
    max_retries: int = typer.Option(5, "--max-retries", min=0),
    timeout: float = typer.Option(120.0, "--timeout"),
    attempts: int = typer.Option(3, "--attempts", min=1),
    cache_dir: Path = typer.Option(None, "--cache-dir"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Describe diverse video frames of each class with a vision-language model (visual knowledge)."""
    from sugar.knowledge.frames import get_frame_embedder
    from sugar.knowledge.visual import generate_visual_knowledge, require_knowledge_file

    logging.basicConfig(level=logging.WARNING)
    know = require_knowledge_file(out)
    embedder = get_frame_embedder(clip_model)
    if embedder.is_fallback:
        err_console.print(f"[yellow]frame embedding: {embedder.name} (no CLIP model available offline)")
    client = _client("openai", vlm_model, base_url, api_key, timeout, max_retries, cache_dir)
    try:
        run = generate_visual_knowledge(videos, know, client, embedder, k=k, labels_csv=labels, replace=replace,
                                        max_frames=max_frames, attempts=attempts, concurrency=concurrency,
                                        progress=not quiet)
    finally:
        client.close()
    if run.knowledge is not None:
        run.knowledge.save(out)
    counts = ", ".join(f"{lab}: {len(v)}" for lab, v in run.per_class.items())
    console.print(f"visual descriptions for {len(run.per_class)} class(es) written to {out} "
                  f"(frames embedded with {run.embedder}) {counts}")
    _report_failures(run.failures, "video(s)")
    if run.failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.add_typer(knowledge_app, name="knowledge")
