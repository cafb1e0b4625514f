"""`sugar demo`: the three SUGAR stages end to end (the job behind `make demo`)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `sugar demo`."""

    @app.command("demo")
    def demo(
        dataset: str = typer.Option("synthetic", help="synthetic (built in), nw-ucla or msr-action3d."),
        root: Path = typer.Option(None, "--root", help="Dataset folder (default: the dataset's usual place)."),
        protocol: str = typer.Option(None, "--protocol", help="Protocol (default: the dataset's)."),
        out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the runs, report and pictures go."),
        pretrain_set: list[str] = typer.Option([], "--pretrain-set", help="Stage-2 config override (repeatable)."),
        tune_set: list[str] = typer.Option([], "--tune-set", help="Stage-3 config override (repeatable)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    ) -> None:
        """Knowledge -> encoder pre-training -> TQP + LoRA on SmolLM2 -> evaluation -> predictions.

        Rerunning the same command resumes from what is already done under --out.
        """
        from rich.console import Console
        from rich.table import Table

        from sugar.commands.library_bars import show_library_progress
        from sugar.demo import run_demo

        show_library_progress(progress)
        console = Console()
        if out is not None and dataset != "synthetic" and out == Path("runs/demo"):
            out = Path("runs") / f"demo-{dataset}"
        res = run_demo(out, dataset, str(root) if root else None, protocol, pretrain_set, tune_set,
                       progress=progress, log=console.print)

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}"

        table = Table(title=f"SUGAR-AR demo on {dataset}: test split")
        for col in ("classifier", "top-1 %", "top-5 %", "mean class acc %", "samples"):
            table.add_column(col)
        names = {"text": "stage 2: encoder + text classifier", "ce": "stage 2: linear (CE) head"}
        for head, r in res.stage2.items():
            table.add_row(names.get(head, head), pct(r.get("top1")), pct(r.get("top5")),
                          pct(r.get("mean_class_accuracy")), str(r.get("samples", "-")))
        s3 = res.stage3
        if s3:
            table.add_row("stage 3: LLM recogniser (rank)", pct(s3.get("top1")), pct(s3.get("top5")),
                          pct(s3.get("mean_class_accuracy")), str(s3.get("samples", "-")))
        console.print(table)
        preds = Table(title="predictions")
        for col in ("sample", "true", "predicted", "description"):
            preds.add_column(col, overflow="fold")
        for p in res.predictions:
            preds.add_row(p["name"], p["true"], str(p["label"]), p["description"] or "")
        console.print(preds)
        console.print("pictures:")
        for name, path in res.pictures.items():
            console.print(f"  {name}: {path}")
        times = Table(title="time per stage (s)")
        for col in ("stage", "seconds"):
            times.add_column(col)
        for name, seconds in res.seconds.items():
            times.add_row(name, f"{seconds:.1f}")
        times.add_row("total", f"{sum(res.seconds.values()):.1f}")
        console.print(times)
        console.print(f"report: {res.out / 'report.json'}   time: {sum(res.seconds.values()):.0f} s")
