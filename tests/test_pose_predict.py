"""A video end to end: a saved recogniser folder (an untrained kinect20 CTR-GCN encoder, a tiny LLaMA in place
of SmolLM2: the path is what is tested, not the answer) loaded by `sugar predict clip.mp4` on a video of a
real person, through the pose front end and the conversion to kinect20."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from posehelpers import frames, needs_pose, write_video
from stage3helpers import build_tiny_with_encoder, session_tokenizer
from sugar.cli import app

runner = CliRunner()
pytestmark = [pytest.mark.slow, needs_pose]  # ~30 s: loads a recogniser and runs the estimator on videos


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    from sugar.models.recognizer_io import save_recognizer

    rec = build_tiny_with_encoder(tmp_path_factory, session_tokenizer(tmp_path_factory))
    folder = tmp_path_factory.mktemp("recognizer")
    save_recognizer(rec.eval(), folder)
    return folder


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


def test_the_service_around_the_real_recognizer_reads_a_video(recognizer, clip) -> None:
    import httpx

    from servicehelpers import running_server
    from sugar.models.recognizer_io import load_recognizer
    from sugar.serve import create_app

    rec = load_recognizer(recognizer)
    with running_server(create_app(rec)) as url, clip.open("rb") as f:
        r = httpx.post(f"{url}/v1/recognize", params={"render": "true"}, files={"file": ("clip.mp4", f)},
                       timeout=300)
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["label"] in rec.actions and len(res["top5"]) == 5 and res["description"] is not None
    assert res["pose"]["frames"] == 20 and res["animation"].startswith("data:image/gif;base64,")
