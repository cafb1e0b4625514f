"""Pictures for the CLI, the service and the docs: confusion matrices, t-SNE, training curves, skeletons.

Why this shape: every function draws on its own `matplotlib.figure.Figure` (no pyplot, no global backend
switch, safe in a server thread), writes one file and returns its path. Skeleton drawings work for any
layout, 2D (x, y, score in image pixels, y down) or 3D (metres, y up). scikit-learn's t-SNE and the 3-D axes
are imported by the two functions that draw them, on purpose: the service draws neither.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import animation, colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from sugar.errors import DataError, SugarError
from sugar.skeleton.layouts import Layout, get_layout

_IMAGE_LAYOUTS = {"coco17", "openpose18"}  # layouts produced by 2D pose estimators
_PERSON_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
VIEWS = ("auto", "image", "front", "3d")


def _save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
        raise SugarError(f"{path}: unsupported picture type {path.suffix!r}; use .png, .svg, .pdf or .jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _class_colours(num: int) -> np.ndarray:
    if num <= 10:
        return np.array(colormaps["tab10"].colors[:num])
    if num <= 20:
        return np.array(colormaps["tab20"].colors[:num])
    return colormaps["turbo"](np.linspace(0.05, 0.95, num))[:, :3]


# ----------------------------------------------------------------------------------------------------
# Confusion matrix


def plot_confusion(
    matrix: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Rows are true classes, columns predictions; rows normalised to recall when `normalize`.

    Cells are annotated up to 25 classes; beyond that the labels shrink and the colours carry it.
    """
    m = np.asarray(matrix, dtype=np.float64)
    k = len(classes)
    if m.shape != (k, k):
        raise SugarError(f"confusion matrix has shape {m.shape} but there are {k} class names")
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-12)
    side = float(np.clip(3.0 + 0.2 * k, 6.0, 28.0))  # inches
    cell = 0.75 * side * 72 / k  # points per row, roughly
    font = 9.0 if k <= 25 else float(np.clip(0.5 * cell, 5.0, 8.0))
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(m.max(), 1.0), interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.6, label="fraction of the true class" if normalize else "samples")
    names = [_short(c, 30 if k <= 60 else 24) for c in classes]
    ax.set_xticks(range(k), names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=12 if k <= 60 else 18)
    if k <= 25:
        threshold = 0.5 * (m.max() if m.max() > 0 else 1.0)
        for i in range(k):
            for j in range(k):
                if m[i, j] > 0:
                    text = f"{m[i, j]:.2f}" if normalize else f"{m[i, j]:.0f}"
                    colour = "white" if m[i, j] > threshold else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=font - 1, color=colour)
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------
# t-SNE, before/after (the paper's Figure 5)


def _subsample(labels: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Indices of at most `max_points` samples, drawn evenly across classes."""
    n = len(labels)
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    classes = np.unique(labels)
    per_class = max(1, max_points // len(classes))
    for c in classes:
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))[:max_points]


def _tsne(features: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(features)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    method = "exact" if n <= 300 else "barnes_hut"  # exact is much faster on small sets
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=method)
    return tsne.fit_transform(features)


def plot_tsne(
    features_before: np.ndarray,
    features_after: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str = "Skeleton features, t-SNE",
    names: tuple[str, str] = ("before training", "after training"),
    max_points: int = 1000,
    seed: int = 0,
) -> Path:
    """Side-by-side 2-D t-SNE of the same samples' features before and after training, coloured by class."""
    labels = np.asarray(labels).astype(int)
    before = np.asarray(features_before, dtype=np.float64).reshape(len(features_before), -1)
    after = np.asarray(features_after, dtype=np.float64).reshape(len(features_after), -1)
    if not len(before) == len(after) == len(labels):
        raise SugarError(
            f"t-SNE needs one label per sample: {len(before)}, {len(after)} features, {len(labels)} labels"
        )
    if len(labels) < 4:
        raise SugarError(f"t-SNE needs at least 4 samples, got {len(labels)}")
    if labels.min() < 0 or labels.max() >= len(classes):
        raise SugarError(f"labels must index the {len(classes)} class names")
    keep = _subsample(labels, max_points, seed)
    colours = _class_colours(len(classes))
    fig = Figure(figsize=(12, 6.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, feats, name in zip(axes, (before, after), names, strict=True):
        xy = _tsne(feats[keep], seed)
        ax.scatter(xy[:, 0], xy[:, 1], c=colours[labels[keep]], s=10 if len(keep) > 500 else 18, linewidths=0)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    present = np.unique(labels[keep])
    if len(present) <= 20:
        handles = [axes[1].scatter([], [], color=colours[c], s=25, label=_short(classes[c], 28)) for c in present]
        fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(f"{title} ({len(keep)} samples, {len(present)} classes)")
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------
# Training curves from metrics.jsonl


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(path, "metrics file not found")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"line {number} is not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(path, f"line {number} is not a JSON object")
        records.append(record)
    if not records:
        raise DataError(path, "no metrics recorded yet")
    return records


def _metric_group(key: str) -> str:
    k = key.lower()
    if "loss" in k:
        return "loss"
    if k == "lr" or "learning_rate" in k or k.endswith("_lr"):
        return "learning rate"
    if any(word in k for word in ("top1", "top5", "top_1", "top_5", "acc", "map", "recall", "precision")):
        return "accuracy"
    return key


def plot_curves(metrics_jsonl_path: str | Path, path: str | Path, title: str | None = None) -> Path:
    """Every numeric metric of a run against epoch (or step), one panel per kind (loss, accuracy, lr, ...)."""
    source = Path(metrics_jsonl_path)
    records = _read_metrics(source)
    axis = next((k for k in ("epoch", "step") if sum(k in r for r in records) >= len(records) / 2), None)
    xs = [r.get(axis, i) if axis else i for i, r in enumerate(records)]
    series: dict[str, list[tuple[float, float]]] = {}
    for x, r in zip(xs, records, strict=True):
        for key, value in r.items():
            if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if isinstance(x, int | float) and math.isfinite(value):
                series.setdefault(key, []).append((float(x), float(value)))
    if not series:
        raise DataError(source, "no numeric metrics to plot")
    groups: dict[str, list[str]] = {}
    for key in series:
        groups.setdefault(_metric_group(key), []).append(key)
    first = ["loss", "accuracy", "learning rate"]
    order = sorted(groups, key=lambda g: first.index(g) if g in first else len(first))
    cols = min(3, len(order))
    rows = math.ceil(len(order) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, group in zip(axes, order, strict=False):
        for key in sorted(groups[group]):
            pts = sorted(series[key])
            px, py = zip(*pts, strict=True)
            ax.plot(px, py, marker="o" if len(pts) <= 30 else None, ms=3, label=key)
        if group == "learning rate" and all(v > 0 for k in groups[group] for _, v in series[k]):
            ax.set_yscale("log")
        ax.set_title(group)
        ax.set_xlabel(axis or "record")
        ax.grid(alpha=0.3)
        if len(groups[group]) > 1 or group != groups[group][0]:
            ax.legend(fontsize=8)
    for ax in axes[len(order) :]:
        ax.set_visible(False)
    fig.suptitle(title or f"Training curves: {source.parent.name or source.name}")
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------
# Skeleton sequences


def _resolve_view(joints: np.ndarray, layout: Layout, view: str) -> str:
    if view not in VIEWS:
        raise SugarError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
    if view != "auto":
        if view in ("front", "3d") and joints.shape[-1] != 3:
            raise SugarError(f"view {view!r} needs 3-D joints (x, y, z), got {joints.shape[-1]} coordinates")
        return view
    return "image" if joints.shape[-1] == 2 or layout.name in _IMAGE_LAYOUTS else "front"


def _visible(joints: np.ndarray, layout: Layout, view: str) -> np.ndarray:
    """[M, T, V] mask of recorded joints.

    2-D with scores: score > 0. 2-D without: not at (0, 0). 3-D: not at the origin, except a single
    centre joint while the rest of its person is there (centred data puts that joint at the origin).
    """
    if view == "image" and joints.shape[-1] == 3:
        return joints[..., 2] > 0
    mask = np.any(joints != 0, axis=-1)
    if view != "image" and len(layout.centre) == 1:
        c = layout.centre[0]
        mask[..., c] |= mask.sum(-1) > layout.num_joints // 2
    return mask


def _tint(colour: str, amount: float = 0.55) -> tuple[float, float, float]:
    r, g, b = to_rgb(colour)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


class _Scene:
    """A figure with one drawing per person, updated frame by frame."""

    def __init__(self, joints: np.ndarray, layout: Layout, view: str, label: str | None, description: str | None):
        self.joints = joints
        self.layout = layout
        self.view = view
        self.mask = _visible(joints, layout, view)
        self.bones = np.array(layout.bones, dtype=int).reshape(-1, 2)
        left = [layout.joints[c].startswith("left") for c, _ in layout.bones]
        # Per person, per bone: the person's colour, a lighter tint on the left side (shows mirroring).
        self.colours = []
        for m in range(joints.shape[0]):
            base = _PERSON_COLOURS[m % len(_PERSON_COLOURS)]
            self.colours.append([_tint(base) if is_left else to_rgb(base) for is_left in left])
        lines = textwrap.wrap(description, 56, max_lines=4, placeholder=" …") if description else []
        self.fig = Figure(figsize=(4.8, 5.0 + 0.22 * len(lines)), dpi=80)
        top = 0.9 - (0.03 * len(lines) if lines else 0.0)
        self.fig.subplots_adjust(left=0.02, right=0.98, bottom=0.06, top=top if label else top + 0.05)
        if label:
            text = _short(str(label), 48)
            size = float(np.clip(4.6 * 72 / (0.62 * len(text)), 9.0, 14.0))  # fit the width
            self.fig.text(0.5, 0.985, text, ha="center", va="top", fontsize=size, weight="bold")
        if lines:
            self.fig.text(0.5, 0.985 - (0.05 if label else 0.0), "\n".join(lines), ha="center", va="top", fontsize=9)
        self.counter = self.fig.text(0.98, 0.015, "", ha="right", va="bottom", fontsize=8, color="0.4")
        self.total = joints.shape[1]
        pts = joints[self.mask]
        if view == "3d":
            self._init_3d(pts)
        else:
            self._init_2d(pts)

    def _init_2d(self, pts: np.ndarray) -> None:
        ax = self.fig.add_subplot()
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        if len(pts):
            lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
            centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 1e-3)
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] - half, centre[1] + half)
        if self.view == "image":
            ax.invert_yaxis()
        self.lines = []
        self.dots = []
        for m, colours in enumerate(self.colours):
            lc = LineCollection([], colors=colours, linewidths=2.5, capstyle="round")
            ax.add_collection(lc)
            self.lines.append(lc)
            (dot,) = ax.plot([], [], "o", ms=3.5, color=_PERSON_COLOURS[m % len(_PERSON_COLOURS)])
            self.dots.append(dot)

    def _init_3d(self, pts: np.ndarray) -> None:
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        ax = self.fig.add_subplot(projection="3d")
        # Plot (x, z, y): depth runs into the picture, y is up; seen from slightly above and in front.
        if len(pts):
            lo, hi = pts.min(0), pts.max(0)
            centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3)
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[2] - half, centre[2] + half)
            ax.set_zlim(centre[1] - half, centre[1] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=15, azim=-70)
        ax.invert_yaxis()  # depth grows away from the viewer
        ax.set_xlabel("x")
        ax.set_ylabel("z")
        ax.set_zlabel("y")
        ax.tick_params(labelsize=6)
        self.lines = []
        self.dots = []
        for m, colours in enumerate(self.colours):
            lc = Line3DCollection([], colors=colours, linewidths=2.5)
            ax.add_collection3d(lc, autolim=False)
            self.lines.append(lc)
            (dot,) = ax.plot([], [], [], "o", ms=3, color=_PERSON_COLOURS[m % len(_PERSON_COLOURS)])
            self.dots.append(dot)

    def draw(self, t: int) -> None:
        for m, (lc, dot) in enumerate(zip(self.lines, self.dots, strict=True)):
            vis = self.mask[m, t]
            j = self.joints[m, t]
            keep = vis[self.bones[:, 0]] & vis[self.bones[:, 1]]
            colours = [c for c, k in zip(self.colours[m], keep, strict=True) if k]
            if self.view == "3d":
                p = j[:, [0, 2, 1]]
                lc.set_segments([p[[c, q]] for (c, q), k in zip(self.bones, keep, strict=True) if k])
                lc.set_color(colours)
                dot.set_data_3d(p[vis, 0], p[vis, 1], p[vis, 2])
            else:
                p = j[:, :2]
                lc.set_segments([p[[c, q]] for (c, q), k in zip(self.bones, keep, strict=True) if k])
                lc.set_color(colours)
                dot.set_data(p[vis, 0], p[vis, 1])
        self.counter.set_text(f"frame {t + 1}/{self.total}")


def _prepare(joints: np.ndarray, layout: Layout | str) -> tuple[np.ndarray, Layout]:
    layout = get_layout(layout)
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim == 3:
        j = j[None]
    if j.ndim != 4 or j.shape[-1] not in (2, 3) or j.shape[1] < 1:
        raise SugarError(f"joints must be [M, T, V, C] with C = 2 or 3 and T >= 1, got shape {j.shape}")
    if j.shape[2] != layout.num_joints:
        raise SugarError(f"joints have {j.shape[2]} joints but layout {layout.name!r} has {layout.num_joints}")
    return np.nan_to_num(j, nan=0.0, posinf=0.0, neginf=0.0), layout


def render_frame_png(
    joints: np.ndarray,
    layout: Layout | str,
    path: str | Path,
    frame: int = 0,
    label: str | None = None,
    description: str | None = None,
    view: str = "auto",
) -> Path:
    """One frame of a sequence as a still picture (PNG, SVG, PDF or JPEG by extension)."""
    j, layout = _prepare(joints, layout)
    if not -j.shape[1] <= frame < j.shape[1]:
        raise SugarError(f"frame {frame} is outside the sequence of {j.shape[1]} frames")
    scene = _Scene(j, layout, _resolve_view(j, layout, view), label, description)
    scene.draw(frame % j.shape[1])
    return _save(scene.fig, path, dpi=80)


def _writer(path: Path, fps: int) -> animation.AbstractMovieWriter:
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return animation.PillowWriter(fps=fps)
    if suffix in (".mp4", ".m4v", ".mov"):
        if not animation.writers.is_available("ffmpeg"):
            raise SugarError(f"{path}: writing {suffix} needs ffmpeg on PATH; install it or write a .gif")
        return animation.FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])
    raise SugarError(f"{path}: unsupported animation type {suffix!r}; use .gif (or .mp4 with ffmpeg)")


def render_sequence(
    joints: np.ndarray,
    layout: Layout | str,
    path: str | Path,
    label: str | None = None,
    description: str | None = None,
    fps: int = 15,
    view: str = "auto",
    max_frames: int | None = None,
) -> Path:
    """Animate a skeleton sequence [M, T, V, C] of any layout into a GIF (or MP4 when ffmpeg exists).

    view: "image" (2-D, image y down), "front" (3-D projected on x, y with y up, as NTU's videos show it),
    "3d" (perspective axes), or "auto" (image for 2-D data and pose-estimator layouts, else front).
    Persons get different colours, their left side a lighter tint; zero-filled persons and joints are
    hidden. `max_frames` keeps every k-th frame so that at most that many are drawn.
    """
    path = Path(path)
    writer = _writer(path, fps)
    j, layout = _prepare(joints, layout)
    if max_frames is not None and j.shape[1] > max_frames:
        j = j[:, :: math.ceil(j.shape[1] / max_frames)]
    scene = _Scene(j, layout, _resolve_view(j, layout, view), label, description)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer.saving(scene.fig, str(path), dpi=80):
        for t in range(j.shape[1]):
            scene.draw(t)
            writer.grab_frame()
    return path
