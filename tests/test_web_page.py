"""The service's web page, driven in headless Chromium (Debian's chromium through Playwright)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from posehelpers import frames, needs_pose, write_video
from servicehelpers import running_server
from sugar.serve import create_app
from test_serve import IN_PROCESS, PoseHeightRecognizer

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def write_ucla_json(path, wrist_height: float) -> None:
    joints = np.zeros((16, 20, 3), dtype=np.float32)
    joints[..., 2] = 3.0
    joints[:, :, 1] = np.linspace(-0.8, 0.6, 20)
    joints[:, :, 0] = np.linspace(-0.2, 0.2, 20)
    joints[:, [6, 10], 1] = wrist_height
    path.write_text(json.dumps({"file_name": path.stem, "skeletons": joints.tolist(), "label": 1}))


def test_upload_shows_label_description_top5_and_animation(tmp_path):
    good = tmp_path / "a01_s01_e00_v01.json"
    write_ucla_json(good, 0.9)
    bad = tmp_path / "a01_s01_e01_v01.json"
    bad.write_text('{"file_name": "x", "skeletons": [[[1, 2]]')
    with running_server(create_app(PoseHeightRecognizer(), limits=IN_PROCESS)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("document.getElementById('actions').textContent.includes('arms up')")
        page.set_input_files("#file", str(good))
        page.click("#submit")
        page.wait_for_selector("#result", state="visible", timeout=60_000)
        assert page.inner_text("#label") == "arms up"
        assert "arms up" in page.inner_text("#description")
        assert page.locator("#top5 tr").count() == 3
        src = page.get_attribute("#animation", "src")
        assert src.startswith("data:image/gif;base64,")
        assert page.evaluate("document.getElementById('animation').naturalWidth") > 100
        page.screenshot(path=str(tmp_path / "page.png"))

        page.set_input_files("#file", str(bad))
        page.click("#submit")
        page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
        assert "a01_s01_e01_v01.json" in page.inner_text("#error")
        assert page.locator("#result").is_hidden()
        browser.close()


@needs_pose
def test_video_upload_shows_the_answer_drawn_over_the_video(tmp_path):
    video = write_video(tmp_path / "astronaut.mp4", frames(8, shift=4, blank=(3,)))
    with running_server(create_app(PoseHeightRecognizer(), limits=IN_PROCESS)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(url)
        assert "video" in page.inner_text("h1")
        page.set_input_files("#file", str(video))
        page.click("#submit")
        page.wait_for_selector("#result", state="visible", timeout=120_000)
        assert page.inner_text("#label") in {"arms down", "arms middle", "arms up"}
        assert page.locator("#top5 tr").count() == 3
        pose = page.inner_text("#pose")
        assert "8 frames at 15 fps" in pose and "no person found in frame(s) 3" in pose
        assert page.get_attribute("#animation", "src").startswith("data:image/gif;base64,")
        assert page.evaluate("document.getElementById('animation').naturalWidth") == 480  # the video's frames
        page.screenshot(path=str(tmp_path / "video-page.png"), full_page=True)

        empty = tmp_path / "empty.mp4"
        empty.write_bytes(b"")
        page.set_input_files("#file", str(empty))
        page.click("#submit")
        page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
        assert "empty.mp4: empty file" in page.inner_text("#error")
        browser.close()
