"""A video end to end: the demo's pipeline at a reduced size (a tiny LLaMA in place of SmolLM2) trains a
recogniser on ntu25 skeletons; `sugar predict clip.mp4` and `sugar data pose` read a video of a real person
through the pose front end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from posehelpers import frames, needs_pose, write_video
from stage3helpers import session_tokenizer, tiny_llm_dir
from sugar.cli import app
from sugar.demo import run_demo

runner = CliRunner()
pytestmark = [pytest.mark.slow, needs_pose]  # about a minute: stage 2 and 3 train for real at a reduced size

PRETRAIN = ["epochs=1", "lr_steps=[2]", "data.frames=24"]
TUNE = ["epochs=1", "bridge.num_queries=4", "bridge.hidden_size=32", "lora.r=4", "max_description_tokens=6",
        "max_train_samples=32"]


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    llm = str(tiny_llm_dir(tmp_path_factory.getbasetemp(), session_tokenizer(tmp_path_factory)))
    out = tmp_path_factory.mktemp("demo")
    run_demo(out, pretrain_overrides=PRETRAIN, tune_overrides=[f"llm={llm}", *TUNE], num_predictions=1,
             progress=False, log=lambda _: None)
    return out / "recognizer"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames(20, shift=4, blank=(9,)))


def test_predict_a_video_with_the_answer_drawn_over_it(recognizer, clip, tmp_path) -> None:
    gif = tmp_path / "answer.gif"
    res = runner.invoke(app, ["predict", str(clip), "--run", str(recognizer), "--render", str(gif)])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.stdout[res.stdout.index("{"):])
    actions = json.loads((recognizer / "recognizer.json").read_text())["actions"]
    assert answer["label"] in actions and len(answer["top5"]) == 5 and answer["description"] is not None
    assert answer["pose"]["frames"] == 20 and answer["pose"]["filled_frames"] == ["9"]
    assert answer["render"] == str(gif)
    with Image.open(gif) as img:
        assert img.n_frames == 20 and img.width == 480
        img.seek(3)
        picture = np.asarray(img.convert("RGB")).astype(int)
    # the skeleton is drawn in colour over a grey-and-photo frame, the answer on a white strip above it
    assert (picture[:20] == 255).all(axis=-1).mean() > 0.8
    reds = (picture[..., 0] > 200) & (picture[..., 1] < 90) & (picture[..., 2] < 100)
    assert reds.sum() > 50


def test_a_bad_video_is_one_line(recognizer, tmp_path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    res = runner.invoke(app, ["predict", str(empty), "--run", str(recognizer)])
    assert res.exit_code != 0
    assert "empty file" in str(res.exception) or "empty file" in res.output


def test_data_pose_writes_a_dataset_that_reads_back(clip, tmp_path) -> None:
    videos = tmp_path / "videos"
    (videos / "wave").mkdir(parents=True)
    (videos / "walk").mkdir()
    write_video(videos / "wave" / "a.mp4", frames(6, shift=2))
    write_video(videos / "walk" / "b.mp4", frames(6, shift=6))
    (videos / "walk" / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "dataset"
    res = runner.invoke(app, ["data", "pose", str(videos), str(clip), "--out", str(out), "--split", "train"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert {(r["name"], r["label"], r["split"]) for r in rows} == {("wave/a", "wave", "train"),
                                                                   ("walk/b", "walk", "train"),
                                                                   ("clip", "", "train")}
    assert "broken.mp4" in res.output and "not a readable video" in res.output
    report = json.loads((out / "pose.json").read_text())
    assert report["samples"]["clip"]["filled_frames"] == ["9"]
    assert len(report["samples"]["clip"]["confidence"][0]) == 20 and report["samples"]["clip"]["confidence"][0][9] == 0
    assert json.loads((out / "dataset.json").read_text()) == {"units": "m"}
    from sugar.skeleton.readers import read_file

    samples = read_file(out)
    assert {s.meta["layout"] for s in samples} == {"blazepose33"} and samples[0].joints.shape[2:] == (33, 3)
