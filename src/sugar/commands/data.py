"""`sugar data inspect`, `convert` and `pose`: look at a skeleton folder, write it (or videos) in the generic format."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sugar.errors import DataError

FORMAT_HELP = "Skeleton format (default: detected). One of: ntu, nw-ucla, msr, pku-mmd, toyota, openpose, " \
              "openpose-frames, pyskl, ctrgcn-npz, generic, npy."


def inspect(
    path: Path = typer.Argument(..., help="A skeleton file or a folder (searched recursively)."),
    format: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Count samples, classes, frames and persons; list files that could not be read and why. Exits 1 when
    no file could be read (every one is listed with its reason)."""
    from sugar.skeleton.folders import scan

    summary = scan(path, format, progress=not as_json).summary()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(path, summary)
    if not summary["samples"]:
        raise typer.Exit(1)


def _print_summary(path: Path, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    overview = Table(title=f"{path}", show_header=False)
    overview.add_row("format", str(summary["format"]))
    overview.add_row("layout", str(summary["layout"]))
    overview.add_row("samples", str(summary["samples"]))
    overview.add_row("classes", str(len(summary["classes"])))
    if summary["unlabelled"]:
        overview.add_row("unlabelled", str(summary["unlabelled"]))
    if summary["splits"]:
        overview.add_row("splits", ", ".join(f"{k}: {v}" for k, v in summary["splits"].items()))
    if summary["subjects"]:
        overview.add_row("subjects", str(summary["subjects"]))
    if summary["coordinates"]:
        overview.add_row("coordinates", f"[yellow]{summary['coordinates']}[/yellow]")
    for key in ("frames", "persons"):
        s = summary[key]
        overview.add_row(f"{key} min / median / max", f"{s['min']} / {s['median']:g} / {s['max']}")
    overview.add_row("bad files", str(len(summary["bad"])))
    console.print(overview)
    if summary["classes"]:
        classes = Table(title="classes")
        for col in ("label", "name", "samples"):
            classes.add_column(col)
        for c in summary["classes"]:
            classes.add_row(str(c["label"]), c["name"], str(c["samples"]))
        console.print(classes)
    if summary["bad"]:
        bad = Table(title="skipped (bad) files")
        bad.add_column("file", overflow="fold")
        bad.add_column("reason", overflow="fold")
        for b in summary["bad"]:
            bad.add_row(b["file"], b["reason"])
        console.print(bad)


def convert(
    src: Path = typer.Argument(..., help="A skeleton file or folder to read."),
    out: Path = typer.Argument(..., help="Output folder (created; must not hold a dataset already)."),
    format: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    layout: str | None = typer.Option(None, "--layout", "-l", help="Joint layout name or JSON file (default: the "
                                                                   "format's own layout)."),
    present_classes: bool = typer.Option(False, "--present-classes", help="Keep only the classes that have samples "
                                         "(default: the format's full action list)."),
    protocol: str | None = typer.Option(None, "--protocol", help="Write this built-in protocol's train/test split "
                                        "(e.g. xview for NW-UCLA, xsub for NTU) in the manifest's split column."),
) -> None:
    """Write the readable samples of SRC as a generic dataset folder (layout.json, classes.txt, manifest.csv,
    samples/*.npy). Bad files are reported and skipped."""
    from sugar.skeleton.folders import scan
    from sugar.skeleton.layouts import get_layout
    from sugar.skeleton.readers import write_generic

    result = scan(src, format, progress=True)
    if not result.samples:
        raise DataError(src, "no readable sample to convert: " + _reasons(result.bad))
    if protocol:
        result = result.with_protocol_splits(src, protocol)
    if present_classes:
        result = result.present_classes()
    name = layout or result.layout
    if name is None:
        raise DataError(src, "cannot tell the joint layout of these samples; pass --layout")
    chosen = get_layout(name)
    write_generic(result.samples, chosen, result.classes, None, out)
    typer.echo(f"wrote {len(result.samples)} samples ({chosen.name}, {len(result.classes)} classes) to {out}")
    for f, reason in result.bad:
        typer.echo(f"skipped {f}: {reason}", err=True)


def _reasons(bad: list[tuple[str, str]], shown: int = 3) -> str:
    """Why files were unreadable, in one line: the reason alone for one file, else the first few by name."""
    if len(bad) == 1:
        return bad[0][1]
    listed = "; ".join(f"{Path(f).name}: {r}" for f, r in bad[:shown])
    return f"{len(bad)} bad files ({listed}{'; ...' if len(bad) > shown else ''})"


def pose(
    inputs: list[Path] = typer.Argument(..., help="Videos, folders of images (one clip each) or folders of "
                                                  "videos (searched recursively; a video in SUBFOLDER/ gets label "
                                                  "SUBFOLDER)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created; must not hold a dataset already)."),
    coords: str = typer.Option("world", "--coords", help="world (x, y, z metres) | image (x, y pixels, visibility)."),
    persons: int = typer.Option(1, "--persons", help="People to track per video."),
    fps: float = typer.Option(None, "--fps", help="Thin videos to this frame rate (default: every frame)."),
    label: str = typer.Option(None, "--label", help="One label for every clip (default: from class subfolders)."),
    split: str = typer.Option("", "--split", help="The manifest's split column for every clip (train, test, ...)."),
    max_seconds: float = typer.Option(600.0, "--max-seconds", help="Refuse clips longer than this."),
) -> None:
    """Estimate poses in videos offline (BlazePose) and write them as a generic dataset (blazepose33). Frames
    without a person are interpolated and reported; unreadable files are reported and skipped."""
    from sugar.commands.pose_dataset import write_pose_dataset

    write_pose_dataset(inputs, out, coords=coords, persons=persons, fps=fps, label=label, split=split,
                       max_seconds=max_seconds)


def register(app: typer.Typer) -> None:
    """Add `sugar data inspect|convert|pose` to the top-level app."""
    data_app = typer.Typer(help="Inspect skeleton files and convert them to the generic format.", no_args_is_help=True)
    data_app.command("inspect")(inspect)
    data_app.command("convert")(convert)
    data_app.command("pose")(pose)
    app.add_typer(data_app, name="data")
