"""`sugar models list|show|release`: the recognisers and encoders shipped with the package, usable by name."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

CHECK_SAMPLES = 40  # a seeded test subset small enough for CI, large enough that a broken model shows


def list_cmd() -> None:
    """Show the released models, one line each; `sugar models show NAME` has the command that made one."""
    from sugar.models.released import released_models

    models = released_models()
    if not models:
        console.print("no released models in this installation")
        return
    table = Table(title="released models (recognisers: sugar predict FILE --run NAME; encoders: sugar evaluate NAME)",
                  caption="sugar models show NAME: how it was made and every recorded metric")
    table.add_column("name", no_wrap=True)
    for col in ("kind", "dataset protocol", "stream", "test top-1 % (samples)"):
        table.add_column(col)
    for m in models.values():
        top1, samples = m.metrics.get("top1"), m.metrics.get("samples")
        score = "-" if top1 is None else f"{100 * top1:.1f}" + (f" ({samples})" if samples else "")
        table.add_row(m.name, m.kind, f"{m.dataset} {m.protocol}", m.stream, score)
    console.print(table)


def show_cmd(name: str = typer.Argument(..., help="A released model's name (see `sugar models list`).")) -> None:
    """Show one released model: where it lives, its recorded metrics and release check, and the command that made it
    (the full text, which the list leaves out so that it stays one line a model)."""
    from sugar.errors import SugarError
    from sugar.models.released import released_models

    models = released_models()
    if name not in models:
        raise SugarError(f"no released model named {name!r}; released: {', '.join(sorted(models)) or 'none'}")
    m = models[name]
    table = Table(show_header=False, title=f"released {m.kind} {m.name}")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows = {"folder": str(m.folder), "dataset": m.dataset, "protocol": m.protocol, "stream": m.stream,
            **{f"test {k}": _metric(v) for k, v in m.metrics.items()},
            **{f"release check {k}": _metric(v) for k, v in m.check.items()}, "made by": m.command}
    for field, value in rows.items():
        table.add_row(field, value)
    console.print(table)


def _metric(value: Any) -> str:
    """Accuracies (fractions) as percentages; counts, names and per-head dicts as they are."""
    if isinstance(value, float):
        return f"{100 * value:.1f} %"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_metric(v)}" for k, v in value.items())
    return str(value)


def release_cmd(
    run: Path = typer.Argument(..., help="A finished `sugar tune` or `sugar pretrain` run, evaluated on its test "
                                         "split by `sugar evaluate RUN` (its metrics are what the index records)."),
    name: str = typer.Argument(..., help="The name users pass as --run (e.g. nw-ucla, nw-ucla-joint)."),
    command: str = typer.Option(..., "--command", help="The command that made the run, recorded in the index."),
    check_samples: int = typer.Option(CHECK_SAMPLES, "--check-samples", min=1,
                                      help="Recognisers: size of the seeded test subset whose top-1 the tests "
                                           "recompute (encoders are checked on the whole test split)."),
) -> None:
    """Copy a recogniser or a stage-2 encoder into the package (fp16) and record it in released/index.json."""
    from sugar.errors import SugarError
    from sugar.models.released import ENCODER, record_release, release_run, run_kind

    results = run / "evaluation" / "test" / "results.json"
    if not results.is_file():
        raise SugarError(f"{run}: no test evaluation ({results}); run `sugar evaluate {run}` first")
    report = json.loads(results.read_text())
    kind = run_kind(run)
    describe = _encoder_release if kind == ENCODER else _recognizer_release
    data, stream, metrics = describe(run, report)
    out = release_run(run, name, dataset=data.dataset, protocol=data.protocol or "", stream=stream,
                      command=command, metrics=metrics, check={})
    with tempfile.TemporaryDirectory() as tmp:  # the check scores the fp16 copy users get
        check = _check(out, kind, check_samples, Path(tmp))
    record_release(name, check=check)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    console.print(f"released {kind} {name} -> {out} ({size / 2**20:.1f} MB); check top-1 on {check['samples']} "
                  f"test samples (fp16): {100 * check['top1']:.1f} %")


def _recognizer_release(run: Path, report: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    from sugar.errors import SugarError
    from sugar.models.recognizer_io import load_recognizer

    view = report["views"].get("all") or next(iter(report["views"].values()))
    metrics = {k: view[k] for k in ("top1", "top5", "mean_class_accuracy", "samples") if k in view}
    rec = load_recognizer(run)
    if rec.data is None or rec.processor is None:
        raise SugarError(f"{run}: the recogniser has no encoder folder with its data record")
    return rec.data, rec.processor.settings.stream, metrics


def _encoder_release(run: Path, report: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """An encoder's metrics: its main head's (text when it has one, as the run selected its epoch by it), and
    every head's top-1."""
    from sugar.errors import SugarError
    from sugar.models.encoder import load_encoder

    bundle = load_encoder(run)
    if bundle.data is None:
        raise SugarError(f"{run}: the encoder does not record the data it was trained on")
    heads = report["heads"]
    head = _main_head(heads)
    metrics = {k: heads[head]["all"][k] for k in ("top1", "top5", "mean_class_accuracy", "samples")}
    metrics["head"] = head
    metrics["heads_top1"] = {h: v["all"]["top1"] for h, v in heads.items()}
    return bundle.data, bundle.processor.settings.stream, metrics


def _main_head(heads: dict[str, Any]) -> str:
    """The head a stage-2 run chose its epoch by: text when it has one."""
    return "text" if "text" in heads else "ce"


def _check(folder: Path, kind: str, samples: int, tmp: Path) -> dict[str, Any]:
    """Top-1 of the released copy: recognisers on a seeded test subset, encoders (main head) on the whole split."""
    from sugar.models.released import ENCODER

    if kind == ENCODER:
        from sugar.evaluation.encoder import evaluate_run

        res = evaluate_run(folder, "test", out_dir=tmp, tsne=False)
        head = _main_head(res["heads"])
        return {"split": "test", "samples": res["samples"], "head": head,
                "top1": res["heads"][head]["all"]["top1"]}
    from sugar.evaluation.recognizer import evaluate_recognizer_run

    checked = evaluate_recognizer_run(folder, limit=samples, out_dir=tmp, progress=False)
    return {"split": "test", "samples": samples, "seed": 0, "mode": "rank", "top1": checked["views"]["all"]["top1"]}


def register(app: typer.Typer) -> None:
    """Add `sugar models list|show|release`."""
    models_app = typer.Typer(help="Released models: recognise without training (`--run NAME`).",
                             no_args_is_help=True)
    models_app.command("list")(list_cmd)
    models_app.command("show")(show_cmd)
    models_app.command("release")(release_cmd)
    app.add_typer(models_app, name="models")
