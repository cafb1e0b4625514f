"""Video uploads to POST /v1/recognize over real loopback HTTP: poses estimated in the decoding worker processes,
the answer with the skeleton drawn over the frames, bad videos answered with one clear 4xx, and the service
unharmed."""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from posehelpers import frames, needs_pose, write_video
from servicehelpers import running_server
from sugar.serve import ServiceLimits, create_app
from test_pose import _long_video
from test_serve import PoseHeightRecognizer, skeleton

pytestmark = needs_pose


@pytest.fixture(scope="module")
def service():
    rec = PoseHeightRecognizer()
    with running_server(create_app(rec, max_wait_s=0.05, limits=ServiceLimits(max_video_seconds=30))) as url:
        yield url, rec


def upload(url: str, path: Path, render: bool = False, timeout: float = 60) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(f"{url}/v1/recognize", params={"render": str(render).lower()},
                          files={"file": (path.name, f, "video/mp4")}, timeout=timeout)


def test_a_video_gets_label_top5_description_and_the_skeleton_over_its_frames(service, tmp_path) -> None:
    url, rec = service
    r = upload(url, write_video(tmp_path / "astronaut.mp4", frames(10, shift=3, blank=(4,))), render=True)
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["name"] == "astronaut" and res["label"] in rec.actions
    assert len(res["top5"]) == 3 and res["description"]
    assert res["pose"]["frames"] == 10 and res["pose"]["filled_frames"] == ["4"]
    assert res["animation"].startswith("data:image/gif;base64,")
    with Image.open(io.BytesIO(base64.b64decode(res["animation"].split(",", 1)[1]))) as gif:
        assert gif.n_frames == 10 and gif.width == 480
        gif.seek(2)
        picture = np.asarray(gif.convert("RGB")).astype(int)
    reds = (picture[..., 0] > 200) & (picture[..., 1] < 90) & (picture[..., 2] < 100)
    assert reds.sum() > 50  # the skeleton, drawn over the photograph


@pytest.mark.parametrize(("name", "content", "status", "fragment"), [
    ("empty.mp4", b"", 422, "empty.mp4: empty file"),
    ("corrupt.mp4", bytes(range(256)) * 20, 422, "corrupt.mp4: not a readable video"),
    ("photo.png", b"\x89PNG not really", 422, "photo.png: not a readable image"),
])
def test_unreadable_uploads_are_one_clear_4xx(service, tmp_path, name, content, status, fragment) -> None:
    url, _ = service
    path = tmp_path / name
    path.write_bytes(content)
    r = upload(url, path)
    assert r.status_code == status and fragment in r.json()["detail"], r.text


def test_no_person_and_too_long_and_the_service_carries_on(service, tmp_path) -> None:
    url, _ = service
    wall = write_video(tmp_path / "wall.mp4", [Image.new("RGB", (320, 240), (90, 90, 90))] * 5)
    r = upload(url, wall)
    assert r.status_code == 422 and "no person found in any of its 5 frames" in r.json()["detail"], r.text
    r = upload(url, _long_video(tmp_path / "film.mp4", 2))
    assert r.status_code == 413 and "video is 2:00:00 long; the limit is 0:30" in r.json()["detail"], r.text
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    ok = httpx.post(f"{url}/v1/recognize", json={"layout": "kinect20", "joints": skeleton(0.9)})
    assert ok.status_code == 200 and ok.json()["results"][0]["label"] == "arms up"


def test_pose_estimation_does_not_hold_up_the_server(service, tmp_path) -> None:
    url, _ = service
    video = write_video(tmp_path / "long.mp4", frames(240, shift=1), fps=30)  # thinned to 15 fps: 120 frames
    done: dict[str, object] = {}
    worker = threading.Thread(target=lambda: done.setdefault("r", upload(url, video, timeout=120)))
    worker.start()
    time.sleep(0.2)  # the upload under way (on an idle 2-core machine reading 60 frames took under 0.6 s)
    waits = []
    while worker.is_alive() and len(waits) < 5:
        t0 = time.perf_counter()
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        waits.append(time.perf_counter() - t0)
        time.sleep(0.1)
    worker.join(120)
    assert done["r"].status_code == 200, done["r"].text
    assert done["r"].json()["results"][0]["pose"]["frames"] == 120
    assert len(waits) >= 2 and max(waits) < 1.5, waits  # answered while the video was being read


def test_a_service_without_the_pose_extra_says_so(monkeypatch, tmp_path) -> None:
    import sugar.serve.video as video

    monkeypatch.setattr(video, "available", lambda: False)
    with running_server(create_app(PoseHeightRecognizer(), limits=ServiceLimits(decode_workers=0))) as url:
        r = upload(url, write_video(tmp_path / "clip.mp4", frames(2)))
    assert r.status_code == 422 and "pose extra is not installed" in r.json()["detail"]


def test_serve_command_passes_the_video_limits(monkeypatch, tmp_path) -> None:
    import uvicorn
    from typer.testing import CliRunner

    import sugar.models.recognizer_io as rio
    from sugar.cli import app

    seen = {}
    monkeypatch.setattr(rio, "load_recognizer", lambda run: PoseHeightRecognizer())
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.update(config=self.config))
    res = CliRunner().invoke(app, ["serve", "--run", str(tmp_path), "--max-video-seconds", "5", "--video-fps", "0"])
    assert res.exit_code == 0, res.output
    limits = seen["config"].app.state.limits
    assert limits.max_video_seconds == 5 and limits.max_video_frames == 300 and limits.video_fps is None
