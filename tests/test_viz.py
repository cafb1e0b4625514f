"""Pictures: every function writes a valid, non-empty file; skeletons of any layout, 2D and 3D."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sugar import viz
from sugar.errors import DataError, SugarError
from sugar.skeleton.layouts import get_layout
from sugar.skeleton.synthetic import SYNTHETIC_CLASSES, make_synthetic


def _image(path: Path) -> Image.Image:
    assert path.is_file() and path.stat().st_size > 0
    im = Image.open(path)
    im.verify()  # raises on a truncated or corrupt file
    return Image.open(path)


def _pose_2d(layout_name: str, persons: int, frames: int) -> np.ndarray:
    """A rough upright 2-D pose in image pixels (y down) for any layout, with scores, jittered over time."""
    layout = get_layout(layout_name)
    rng = np.random.default_rng(0)
    base = np.zeros((layout.num_joints, 3))
    for i, name in enumerate(layout.joints):
        height = 40 if name in ("nose", "neck") or "eye" in name or "ear" in name else 0
        height += {"shoulder": 80, "elbow": 140, "wrist": 190, "hip": 200, "knee": 300, "ankle": 400}.get(
            name.split("_")[-1], 0
        )
        x = 300 + (-40 if name.startswith("left") else 40 if name.startswith("right") else 0)
        base[i] = (x, 100 + height, 0.9)
    out = np.zeros((persons, frames, layout.num_joints, 3), np.float32)
    for m in range(persons):
        out[m] = base + [200 * m, 0, 0] + rng.normal(0, 3, (frames, layout.num_joints, 1)) * [1, 1, 0]
    return out


def test_confusion_small_and_large(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cm = np.diag(rng.integers(5, 20, 10)) + rng.integers(0, 3, (10, 10))
    im = _image(viz.plot_confusion(cm, SYNTHETIC_CLASSES, tmp_path / "c10.png", title="ten"))
    assert im.format == "PNG" and min(im.size) > 300
    big = np.diag(np.full(120, 7)) + (rng.random((120, 120)) < 0.05)
    names = [f"action number {i} with a rather long name" for i in range(120)]
    im = _image(viz.plot_confusion(big, names, tmp_path / "c120.png", normalize=False))
    assert min(im.size) > 1500  # large enough that 120 labels stay legible
    with pytest.raises(SugarError):
        viz.plot_confusion(cm, SYNTHETIC_CLASSES[:5], tmp_path / "bad.png")
    with pytest.raises(SugarError):
        viz.plot_confusion(cm, SYNTHETIC_CLASSES, tmp_path / "c.bmpx")


def test_tsne_side_by_side(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 8)
    after = rng.normal(size=(32, 6)) + labels[:, None] * 4.0
    before = rng.normal(size=(32, 6))
    path = viz.plot_tsne(before, after, labels, SYNTHETIC_CLASSES[:4], tmp_path / "tsne.png", max_points=24)
    im = _image(path)
    assert im.size[0] > im.size[1]  # two panels side by side
    with pytest.raises(SugarError):
        viz.plot_tsne(before, after[:10], labels, SYNTHETIC_CLASSES[:4], tmp_path / "bad.png")


def test_subsample_is_spread_over_classes() -> None:
    labels = np.repeat(np.arange(5), [100, 10, 10, 10, 10])
    keep = viz._subsample(labels, 40, seed=0)
    assert len(keep) <= 40 and set(labels[keep]) == set(range(5))


def test_curves_from_metrics(tmp_path: Path) -> None:
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.parent.mkdir()
    rows = [
        {"epoch": e, "lr": 0.01 if e < 3 else 0.001, "loss": 2.0 / (e + 1), "val_top1": None if e % 2 else e / 10,
         "temperature": 0.07, "note": "text is ignored"}
        for e in range(6)
    ]  # fmt: skip
    metrics.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert _image(viz.plot_curves(metrics, tmp_path / "curves.png")).format == "PNG"
    steps = tmp_path / "steps.jsonl"
    steps.write_text("".join(json.dumps({"step": s, "loss": 1.0 / (s + 1)}) + "\n" for s in range(4)))
    _image(viz.plot_curves(steps, tmp_path / "steps.png"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"epoch": 0, "loss": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        viz.plot_curves(bad, tmp_path / "x.png")
    with pytest.raises(DataError):
        viz.plot_curves(tmp_path / "missing.jsonl", tmp_path / "x.png")


def test_render_3d_sequence_gif(tmp_path: Path) -> None:
    sample = make_synthetic(1, seed=0, min_frames=8, max_frames=8, two_person_fraction=1.0, classes=("wave",))[0]
    path = viz.render_sequence(sample.joints, "ntu25", tmp_path / "wave.gif", label="wave",
                               description="Raises a hand and moves it from side to side. " * 3)  # fmt: skip
    im = _image(path)
    assert im.format == "GIF" and im.n_frames == 8
    path = viz.render_sequence(sample.joints, "ntu25", tmp_path / "sub.gif", max_frames=3)
    assert _image(path).n_frames == 3  # every 3rd of 8 frames: 0, 3, 6
    path = viz.render_sequence(sample.joints[:, :4], "ntu25", tmp_path / "persp.gif", view="3d")
    assert _image(path).n_frames == 4


@pytest.mark.parametrize("layout", ["coco17", "openpose18"])
def test_render_2d_layouts(tmp_path: Path, layout: str) -> None:
    joints = _pose_2d(layout, persons=2, frames=5)
    joints[1, 2:] = 0  # the second person leaves: hidden, not drawn at the origin
    joints[0, :, 0, 2] = 0  # a joint the detector missed (score 0)
    im = _image(viz.render_sequence(joints, layout, tmp_path / f"{layout}.gif", label="pose"))
    assert im.n_frames == 5
    png = viz.render_frame_png(joints, layout, tmp_path / f"{layout}.png", frame=3, label="pose")
    assert _image(png).format == "PNG"
    xy = viz.render_frame_png(joints[..., :2], layout, tmp_path / f"{layout}-xy.png")  # C = 2 works too
    assert _image(xy).format == "PNG"


def test_frame_png_views_and_hidden_joints(tmp_path: Path) -> None:
    joints = make_synthetic(1, seed=2, min_frames=5, max_frames=5, classes=("jump",))[0].joints.copy()
    joints[0, :, 21:] = 0  # hand tips and thumbs not tracked
    for view in ("auto", "front", "3d"):
        im = _image(viz.render_frame_png(joints, "ntu25", tmp_path / f"{view}.png", frame=-1, view=view))
        assert im.format == "PNG"
    kinect = np.zeros((1, 3, 20, 3), np.float32)
    kinect[0, :, :, 1] = np.linspace(-0.8, 0.8, 20)
    kinect[0, :, :, 2] = 3.0
    _image(viz.render_frame_png(kinect, get_layout("kinect20"), tmp_path / "k20.png"))


def test_drawing_matches_the_data(tmp_path: Path) -> None:
    """The drawn bones follow the joints: a frame's segments are exactly the visible bones' endpoints."""
    joints = _pose_2d("coco17", persons=1, frames=2).astype(np.float64)
    joints[0, 1, 5, 2] = 0  # left shoulder unseen in frame 1: its three bones disappear
    scene = viz._Scene(joints, get_layout("coco17"), "image", None, None)
    scene.draw(0)
    assert len(scene.lines[0].get_segments()) == len(get_layout("coco17").bones)
    scene.draw(1)
    assert len(scene.lines[0].get_segments()) == len(get_layout("coco17").bones) - 3
    ax = scene.fig.axes[0]
    assert ax.yaxis_inverted()  # image coordinates: y grows downwards


def test_errors(tmp_path: Path) -> None:
    joints = make_synthetic(1, seed=0, min_frames=4, max_frames=4, classes=("bow",))[0].joints
    with pytest.raises(SugarError, match="unsupported animation"):
        viz.render_sequence(joints, "ntu25", tmp_path / "x.avi")
    with pytest.raises(SugarError, match="unsupported picture"):
        viz.render_frame_png(joints, "ntu25", tmp_path / "x.gifx")
    with pytest.raises(SugarError, match="layout"):
        viz.render_frame_png(joints, "coco17", tmp_path / "x.png")
    with pytest.raises(SugarError, match="view"):
        viz.render_frame_png(joints, "ntu25", tmp_path / "x.png", view="top")
    with pytest.raises(SugarError, match="frame"):
        viz.render_frame_png(joints, "ntu25", tmp_path / "x.png", frame=10)
    if not viz.animation.writers.is_available("ffmpeg"):
        with pytest.raises(SugarError, match="ffmpeg"):
            viz.render_sequence(joints, "ntu25", tmp_path / "x.mp4")


def test_centred_data_keeps_its_centre_joint() -> None:
    """After centring on spine_mid that joint is at the origin, yet it is a real joint and stays drawn."""
    layout = get_layout("ntu25")
    joints = make_synthetic(1, seed=0, min_frames=3, max_frames=3, classes=("bow",))[0].joints.astype(np.float64)
    joints = joints - joints[:, :, layout.centre[0] : layout.centre[0] + 1]
    joints[0, 2] = 0  # the person is absent in the last frame
    scene = viz._Scene(joints, layout, "front", "bow", "x " * 200)
    assert scene.mask[0, 0].all() and not scene.mask[0, 2].any()
    scores = _pose_2d("coco17", persons=1, frames=1)
    scores[0, 0, 3, :2] = 0  # a detected joint may sit at (0, 0) in centred 2-D data: the score decides
    assert viz._Scene(scores, get_layout("coco17"), "image", None, None).mask[0, 0].all()
