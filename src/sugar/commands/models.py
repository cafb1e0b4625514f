"""`sugar models list|release`: the recognisers shipped with the package, usable as `--run NAME`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()

CHECK_SAMPLES = 40  # a seeded test subset small enough for CI, large enough that a broken model shows


def list_cmd() -> None:
    """Show the released models: name, dataset, protocol, stream, test top-1 and the command that made them."""
    from sugar.models.released import released_models

    models = released_models()
    if not models:
        console.print("no released models in this installation")
        return
    table = Table(title="released models (sugar predict FILE --run NAME)")
    for col in ("name", "dataset", "protocol", "stream", "test top-1 %", "made by"):
        table.add_column(col, overflow="fold")
    for m in models.values():
        top1 = m.metrics.get("top1")
        table.add_row(m.name, m.dataset, m.protocol, m.stream, f"{100 * top1:.1f}" if top1 is not None else "-",
                      m.command)
    console.print(table)


def release_cmd(
    run: Path = typer.Argument(..., help="A finished `sugar tune` run, evaluated on its test split by "
                                         "`sugar evaluate RUN` (its metrics are what the index records)."),
    name: str = typer.Argument(..., help="The name users pass as --run (e.g. nw-ucla)."),
    command: str = typer.Option(..., "--command", help="The command that made the run, recorded in the index."),
    check_samples: int = typer.Option(CHECK_SAMPLES, "--check-samples", min=1,
                                      help="Size of the seeded test subset whose top-1 the tests recompute."),
) -> None:
    """Copy a recogniser into the package (fp16) and record it in released/index.json."""
    from sugar.errors import SugarError
    from sugar.evaluation.recognizer import evaluate_recognizer_run
    from sugar.models.recognizer_io import load_recognizer
    from sugar.models.released import record_release, release_recognizer

    results = run / "evaluation" / "test" / "results.json"
    if not results.is_file():
        raise SugarError(f"{run}: no test evaluation ({results}); run `sugar evaluate {run}` first")
    report = json.loads(results.read_text())
    view = report["views"].get("all") or next(iter(report["views"].values()))
    metrics = {k: view[k] for k in ("top1", "top5", "mean_class_accuracy", "samples") if k in view}
    rec = load_recognizer(run)
    if rec.data is None or rec.processor is None:
        raise SugarError(f"{run}: the recogniser has no encoder folder with its data record")
    data, stream = rec.data, rec.processor.settings.stream
    out = release_recognizer(run, name, dataset=data.dataset, protocol=data.protocol or "", stream=stream,
                             command=command, metrics=metrics, check={})
    with tempfile.TemporaryDirectory() as tmp:  # the check scores the fp16 copy users get
        checked = evaluate_recognizer_run(out, limit=check_samples, out_dir=Path(tmp), progress=False)
    check = {"split": "test", "samples": check_samples, "seed": 0, "mode": "rank",
             "top1": checked["views"]["all"]["top1"]}
    record_release(name, check=check)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    console.print(f"released {name} -> {out} ({size / 2**20:.1f} MB); check top-1 on {check_samples} test samples "
                  f"(fp16): {100 * check['top1']:.1f} %")


def register(app: typer.Typer) -> None:
    """Add `sugar models list|release`."""
    models_app = typer.Typer(help="Released models: recognise without training (`--run NAME`).",
                             no_args_is_help=True)
    models_app.command("list")(list_cmd)
    models_app.command("release")(release_cmd)
    app.add_typer(models_app, name="models")
