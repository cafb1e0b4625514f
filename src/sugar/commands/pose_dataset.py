"""`sugar data pose`: a folder of videos becomes a generic dataset that `sugar pretrain --data` trains on.

Besides the generic format's four files it writes dataset.json (the units: metres for world coordinates,
pixels for image ones) and pose.json (per clip: source, frame rate, size, per-frame confidence of each
person, and which frames were filled), so nothing the estimator knew is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sugar.errors import DataError
from sugar.fileio import atomic_write_text
from sugar.pose import LAYOUT, Limits, PoseOptions, estimator, is_video_input
from sugar.pose.frames import VIDEO_SUFFIXES
from sugar.skeleton.readers import write_generic
from sugar.skeleton.sample import Sample


def find_clips(inputs: list[Path], label: str | None) -> list[tuple[Path, str, str | None]]:
    """(path, sample name, label) per clip. A folder holding only images is one clip; other folders are searched
    for videos and frame folders, and a clip in a subfolder is named SUBFOLDER/stem and labelled SUBFOLDER."""
    clips = []
    for root in inputs:
        if not root.exists():
            raise DataError(root, "no such file or folder")
        if root.is_file() or _frames_folder(root):
            clips.append((root, root.stem if root.is_file() else root.name, label))
            continue
        for path in sorted(root.rglob("*")):
            if (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES) or (path.is_dir() and _frames_folder(path)):
                rel = path.relative_to(root)
                name = str(rel.with_suffix("")) if path.is_file() else str(rel)
                folder = rel.parts[0] if len(rel.parts) > 1 else None
                clips.append((path, name, label or folder))
    if not clips:
        raise DataError(inputs[0], f"no videos ({', '.join(VIDEO_SUFFIXES)}) or frame folders found")
    return clips


def _frames_folder(path: Path) -> bool:
    return path.is_dir() and is_video_input(path) and all(p.is_file() for p in path.iterdir())


def write_pose_dataset(inputs: list[Path], out: Path, coords: str = "world", persons: int = 1,
                       fps: float | None = None, label: str | None = None, split: str = "",
                       max_seconds: float = 600.0) -> Path:
    opts = PoseOptions(coords=coords, max_persons=persons, fps=fps, limits=Limits(max_seconds=max_seconds))
    clips = find_clips(inputs, label)
    est = estimator(opts.threads)
    samples: list[Sample] = []
    reports: dict[str, dict] = {}
    bad: list[tuple[Path, str]] = []
    with typer.progressbar(clips, label="pose", show_pos=True, item_show_func=lambda c: c[1] if c else "") as bar:
        for path, name, clip_label in bar:
            try:
                result = est.estimate(path, opts, progress=True, name=name)
            except DataError as exc:
                bad.append((path, exc.problem))
                continue
            sample = result.sample(coords)
            sample.name = name
            sample.meta = {"split": split, "label_name": clip_label}
            samples.append(sample)
            reports[name] = {**result.report(), "confidence": [[round(float(c), 4) for c in row]
                                                               for row in result.confidence]}
    for path, why in bad:
        typer.echo(f"skipped {path}: {why}", err=True)
    if not samples:
        raise DataError(out, "no clip could be read")
    classes = sorted({s.meta["label_name"] for s in samples if s.meta["label_name"]})
    for s in samples:
        s.label = classes.index(s.meta["label_name"]) if s.meta["label_name"] else None
    write_generic(samples, LAYOUT, classes, None, out)
    atomic_write_text(out / "dataset.json", json.dumps({"units": "m" if coords == "world" else "px"}))
    atomic_write_text(out / "pose.json", json.dumps({"layout": LAYOUT, "coords": coords, "samples": reports}))
    filled = {n: r["filled_frames"] for n, r in reports.items() if any(r["filled_frames"])}
    typer.echo(f"wrote {len(samples)} clips ({LAYOUT}, {coords} coordinates, {len(classes)} classes) to {out}")
    for name, frames in filled.items():
        typer.echo(f"{name}: no person found in frame(s) {'; '.join(f for f in frames if f)}: interpolated")
    return out
