"""The pose front end on a real photograph of a person (scikit-image's astronaut) and videos made from it:
the joints land on the person, motion is followed, people are kept apart by position, gaps are filled and
reported, and bad input is one clear DataError."""

from __future__ import annotations

import csv
import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from posehelpers import frames, needs_pose, photo, write_video
from sugar.cli import app
from sugar.errors import DataError
from sugar.pose import Limits, PoseOptions, estimator, read_input, runtime
from sugar.pose.estimate import camera_translation
from sugar.pose.geometry import Roi, crop, roi_from_points
from sugar.pose.tracking import fill, ranges
from sugar.skeleton.layouts import get_layout

BP = get_layout("blazepose33")
J = {name: BP.index(name) for name in ("nose", "left_shoulder", "right_shoulder", "left_hip", "right_hip")}


# ---------------------------------------------------------------- geometry, without the networks
@pytest.mark.parametrize("angle", [0.0, 0.7, -2.0, math.pi])
def test_crop_and_back_projection_agree(angle: float) -> None:
    """A bright dot in the frame shows up in the crop where to_frame says that crop point lies."""
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[118:123, 248:253] = 255  # dot centred at (250, 120)
    roi = Roi(220.0, 140.0, 160.0, angle)
    patch = crop(Image.fromarray(frame), roi, 64).astype(float).sum(-1)
    v, u = np.unravel_index(np.argmax(patch), patch.shape)
    back = roi.to_frame(np.array([(u + 0.5) / 64, (v + 0.5) / 64]))
    assert np.hypot(*(back - [250, 120])) < 4


def test_roi_from_points_turns_the_body_upright() -> None:
    upright = roi_from_points(np.array([100.0, 200.0]), np.array([100.0, 100.0]))
    assert upright.angle == pytest.approx(0.0) and upright.size == pytest.approx(2 * 100 * 1.25)
    lying = roi_from_points(np.array([100.0, 200.0]), np.array([200.0, 200.0]))  # head to the right
    up_in_crop = lying.to_frame(np.array([0.5, 0.0])) - lying.to_frame(np.array([0.5, 0.5]))
    assert up_in_crop[0] > 0 and abs(up_in_crop[1]) < 1e-6


def test_camera_translation_recovers_a_known_position() -> None:
    rng = np.random.default_rng(0)
    world = rng.normal(scale=0.3, size=(33, 3)).astype(np.float32)
    t_true = np.array([0.4, -0.2, 3.0], np.float32)
    w, h = 640, 480
    f = 0.5 * w / math.tan(math.radians(30))
    cam = world + t_true
    pixels = np.stack([f * cam[:, 0] / cam[:, 2] + w / 2, f * cam[:, 1] / cam[:, 2] + h / 2], 1)
    np.testing.assert_allclose(camera_translation(pixels, world, np.ones(33, np.float32), w, h), t_true, atol=1e-3)


def test_fill_interpolates_gaps_and_holds_or_zeroes_the_edges() -> None:
    values = np.arange(6, dtype=np.float32)[:, None] * 2
    known = np.array([False, True, False, False, True, False])
    values[~known] = 99
    held = fill(values, known, hold_edges=True)[:, 0]
    np.testing.assert_allclose(held, [2, 2, 4, 6, 8, 8])
    np.testing.assert_allclose(fill(values, known, hold_edges=False)[:, 0], [0, 2, 4, 6, 8, 0])
    assert ranges([0, 2, 3, 4, 9]) == "0, 2-4, 9"


def test_a_missing_extra_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(runtime.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(runtime.PoseUnavailable, match=r"pose extra.*make install"):
        runtime.model_path(runtime.DETECTOR_FILE)


# ---------------------------------------------------------------- the networks on a real photograph
@needs_pose
def test_joints_land_on_the_person_in_a_photograph(tmp_path: Path) -> None:
    image = photo()
    path = tmp_path / "astronaut.png"
    image.save(path)
    result = estimator().estimate(path, PoseOptions())
    px = result.image[0, 0]
    assert result.confidence[0, 0] > 0.5
    for name in ("nose", "left_shoulder", "right_shoulder"):
        x, y, vis = px[J[name]]
        assert 0 <= x < image.width and 0 <= y < image.height and vis > 0.5, name
    shoulders_y = px[[J["left_shoulder"], J["right_shoulder"]], 1]
    hips_y = px[[J["left_hip"], J["right_hip"]], 1]
    assert shoulders_y.max() < hips_y.min()  # shoulders above the hips
    assert px[J["nose"], 1] < shoulders_y.min()  # head above the shoulders
    # she faces the camera: her left shoulder is on the image's right, the nose between the shoulders
    assert px[J["right_shoulder"], 0] < px[J["nose"], 0] < px[J["left_shoulder"], 0]
    assert px[J["left_shoulder"], 0] - px[J["right_shoulder"], 0] > 0.25 * image.width
    # metric coordinates on the Kinect datasets' axes: y up, x toward the image's left, a human shoulder width
    world = result.world[0, 0]
    assert world[J["left_shoulder"], 1] > world[J["left_hip"], 1] + 0.2
    assert world[J["left_shoulder"], 0] < world[J["right_shoulder"], 0]
    assert 0.2 < np.linalg.norm(world[J["left_shoulder"]] - world[J["right_shoulder"]]) < 0.6
    assert world[J["nose"], 2] > 0.3  # in front of the camera


@needs_pose
def test_a_moving_person_is_followed_and_gaps_are_filled(tmp_path: Path) -> None:
    video = write_video(tmp_path / "walk.mp4", frames(16, shift=5, blank=(6, 7)))
    result = estimator().estimate(video, PoseOptions(keep_frames=4))
    assert result.image.shape == (1, 16, 33, 3) and result.fps == pytest.approx(15)
    assert result.filled == [[6, 7]] and result.report()["filled_frames"] == ["6-7"]
    assert (result.confidence[0, [6, 7]] == 0).all() and (np.delete(result.confidence[0], [6, 7]) > 0.5).all()
    x = result.image[0, :, J["left_shoulder"], 0]
    speed = np.polyfit(np.arange(16), x, 1)[0]
    assert 3.5 < speed < 6.5  # the photo moves 5 pixels a frame
    assert x[5] < x[6] < x[7] < x[8]  # the filled frames lie between their neighbours
    assert len(result.frames) == 4 and result.frames[0][1].width <= 480
    sample = result.sample("image")
    assert sample.meta["layout"] == "blazepose33" and sample.joints.shape == (1, 16, 33, 3)


@needs_pose
def test_two_people_are_kept_apart_by_position(tmp_path: Path) -> None:
    person, mirrored = photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    images = []
    for t in range(8):
        canvas = Image.new("RGB", (1100, 512), (90, 90, 90))
        canvas.paste(person, (10 + 3 * t, 0))
        canvas.paste(mirrored, (580 - 3 * t, 0))
        images.append(canvas)
    result = estimator().estimate(write_video(tmp_path / "two.mp4", images), PoseOptions(max_persons=2))
    assert result.image.shape[0] == 2
    nose_x = result.image[:, :, J["nose"], 0]
    left, right = np.argsort(nose_x[:, 0])
    assert (nose_x[left] < 550).all() and (nose_x[right] > 550).all()  # nobody swaps sides
    assert np.polyfit(np.arange(8), nose_x[left], 1)[0] > 0 > np.polyfit(np.arange(8), nose_x[right], 1)[0]


@needs_pose
def test_thinning_to_a_lower_rate(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", frames(12, shift=2), fps=30)
    result = estimator().estimate(video, PoseOptions(fps=10))
    assert result.num_frames == 4 and result.fps == pytest.approx(10)


# ---------------------------------------------------------------- bad input
@needs_pose
def test_empty_and_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.mp4: empty file"):
        read_input(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"corrupt\.mp4: not a readable video \(Invalid data found [^)]*\)$"):
        read_input(corrupt)
    image = tmp_path / "broken.png"
    image.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        read_input(image)


@needs_pose
def test_a_video_without_a_person(tmp_path: Path) -> None:
    video = write_video(tmp_path / "wall.mp4", [Image.new("RGB", (320, 240), (90, 90, 90))] * 6)
    with pytest.raises(DataError, match=r"wall\.mp4: no person found in any of its 6 frames"):
        read_input(video)


def _long_video(path: Path, hours: int) -> Path:
    """A tiny file whose stream lasts `hours` hours: one black frame an hour."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(1, 3600))
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(hours):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@needs_pose
def test_a_two_hour_video_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"video is 2:00:00 long; the limit is 10:00"):
        read_input(_long_video(tmp_path / "long.mp4", 2))


@needs_pose
def test_frame_limit_for_a_folder_of_frames(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, im in enumerate(frames(5)):
        im.save(folder / f"{i:04d}.png")
    with pytest.raises(DataError, match=r"5 frames is more than the limit of 4 frames"):
        read_input(folder, pose=PoseOptions(limits=Limits(max_frames=4)))
    assert read_input(folder)[0].joints.shape[1] == 5  # a folder of frames is a video too


# ---------------------------------------------------------------- sugar data pose
@needs_pose
def test_data_pose_writes_a_dataset_that_reads_back(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames(12, shift=4, blank=(9,)))
    videos = tmp_path / "videos"
    (videos / "wave").mkdir(parents=True)
    (videos / "walk").mkdir()
    write_video(videos / "wave" / "a.mp4", frames(6, shift=2))
    write_video(videos / "walk" / "b.mp4", frames(6, shift=6))
    (videos / "walk" / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "dataset"
    res = CliRunner().invoke(app, ["data", "pose", str(videos), str(clip), "--out", str(out), "--split", "train"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert {(r["name"], r["label"], r["split"]) for r in rows} == {("wave/a", "wave", "train"),
                                                                   ("walk/b", "walk", "train"),
                                                                   ("clip", "", "train")}
    assert "broken.mp4" in res.output and "not a readable video" in res.output
    report = json.loads((out / "pose.json").read_text())
    assert report["samples"]["clip"]["filled_frames"] == ["9"]
    assert len(report["samples"]["clip"]["confidence"][0]) == 12 and report["samples"]["clip"]["confidence"][0][9] == 0
    assert json.loads((out / "dataset.json").read_text()) == {"units": "m"}
    from sugar.skeleton.readers import read_file

    samples = read_file(out)
    assert {s.meta["layout"] for s in samples} == {"blazepose33"} and samples[0].joints.shape[2:] == (33, 3)


@needs_pose
def test_one_estimator_serves_several_threads(tmp_path: Path) -> None:
    """The service decodes uploads in worker threads; a shared estimator gives each the answer it gives alone."""
    from concurrent.futures import ThreadPoolExecutor

    video = write_video(tmp_path / "clip.mp4", frames(6, shift=3))
    alone = estimator().estimate(video, PoseOptions()).image
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: estimator().estimate(video, PoseOptions()).image, range(3)))
    for r in results:
        np.testing.assert_array_equal(r, alone)


@needs_pose
def test_kept_frames_stay_bounded_without_a_frame_count(tmp_path: Path, monkeypatch) -> None:
    """A header without a frame count must not make --render keep every frame in memory."""
    import sugar.pose.estimate as estimate

    def no_count(*args, **kwargs):
        source = frames_source(*args, **kwargs)
        source.frames = None
        return source

    frames_source = estimate.open_frames
    monkeypatch.setattr(estimate, "open_frames", no_count)
    video = write_video(tmp_path / "clip.mp4", frames(11, shift=2))
    result = estimator().estimate(video, PoseOptions(keep_frames=4))
    steps = {b[0] - a[0] for a, b in zip(result.frames, result.frames[1:], strict=False)}
    assert 2 <= len(result.frames) <= 4 and len(steps) == 1 and result.frames[0][0] == 0
    assert result.kept_fps == pytest.approx(15 / steps.pop()) and result.num_frames == 11


def test_options_follow_the_model_and_refuse_layouts_blazepose_cannot_give() -> None:
    from sugar.errors import LayoutError
    from sugar.skeleton.layouts import Layout

    assert PoseOptions.for_layout("kinect20", 3, 2).coords == "world"
    assert PoseOptions.for_layout("kinect20", 3, 2).max_persons == 2
    assert PoseOptions.for_layout("openpose18", 2).coords == "image"
    odd = Layout.from_dict({**get_layout("coco17").to_dict(), "name": "with-tail",
                            "joints": [*get_layout("coco17").joints[:-1], "tail"],
                            "bones": [[c, p] for c, p in get_layout("coco17").to_dict()["bones"]
                                      if "right_ankle" not in (c, p)] + [["tail", "right_knee"]],
                            "parts": {}})
    with pytest.raises(LayoutError, match=r"video input cannot feed this model.*tail"):
        PoseOptions.for_layout(odd)
