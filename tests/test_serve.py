"""The HTTP service over real loopback HTTP: validation, batching, action lists, uploads."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from servicehelpers import running_server
from sugar.serve import ServiceLimits, create_app
from sugar.skeleton.layouts import get_layout

IN_PROCESS = ServiceLimits(decode_workers=0)  # input parsed in threads: no worker processes to start per test


class PoseHeightRecognizer:
    """A deterministic test double: picks the action by the mean height of the wrists (kinect20)."""

    layout = get_layout("kinect20")

    def __init__(self) -> None:
        self.actions = ["arms down", "arms middle", "arms up"]
        self.batch_sizes: list[int] = []
        self.asked_prior: list[bool | None] = []  # each call's list_prior
        self.list_prior = None  # no reference samples (sugar.models.list_prior)
        self.lock = threading.Lock()

    def recognize(self, samples, actions=None, knowledge=None, list_prior=None):
        actions = actions or self.actions
        with self.lock:
            self.batch_sizes.append(len(samples))
            self.asked_prior.append(list_prior)
        out = []
        for s in samples:
            wrists = s.joints[0, :, [6, 10], 1].mean()
            idx = int(np.clip(np.floor(wrists * len(actions)), 0, len(actions) - 1))
            scores = np.full(len(actions), 0.1 / max(1, len(actions) - 1))
            scores[idx] = 0.9
            order = np.argsort(-scores)[:5]
            desc = (knowledge or {}).get(actions[idx], f"The person performs {actions[idx]}.")
            out.append({"label": actions[idx], "score": float(scores[idx]),
                        "top5": [(actions[i], float(scores[i])) for i in order], "description": desc})
        return out


def skeleton(height: float, frames: int = 12) -> list:
    joints = np.zeros((frames, 20, 3), dtype=np.float32)
    joints[..., 2] = 3.0
    joints[:, :, 1] = np.linspace(-0.5, 0.5, 20)
    joints[:, [6, 10], 1] = height
    return joints.tolist()


@pytest.fixture()
def service():
    rec = PoseHeightRecognizer()
    with running_server(create_app(rec, max_wait_s=0.05, limits=IN_PROCESS)) as url:
        yield url, rec


def test_health_actions_and_openapi(service):
    url, _ = service
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{url}/v1/actions").json()["actions"] == ["arms down", "arms middle", "arms up"]
    schema = httpx.get(f"{url}/openapi.json").json()
    assert "/v1/recognize" in schema["paths"] and "/v1/actions" in schema["paths"]


def test_recognize_json_and_zero_shot_list(service):
    url, _ = service
    r = httpx.post(f"{url}/v1/recognize", json={"layout": "kinect20", "joints": skeleton(0.9)})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["label"] == "arms up" and len(res["top5"]) == 3 and res["description"]
    new = {"actions": ["low", "high"], "descriptions": {"low": "Hands low.", "high": "Hands high."}}
    assert httpx.post(f"{url}/v1/actions", json=new).status_code == 200
    res = httpx.post(f"{url}/v1/recognize", json={"layout": "kinect20", "joints": skeleton(0.9)}).json()
    assert res["results"][0]["label"] == "high" and res["results"][0]["description"] == "Hands high."


def test_a_posted_list_asks_for_the_list_prior_only_where_there_are_reference_samples(service):
    url, rec = service
    new = {"actions": ["low", "high"], "list_prior": True}
    refused = httpx.post(f"{url}/v1/actions", json=new)
    assert refused.status_code == 422 and "sugar list-prior" in refused.text
    assert httpx.get(f"{url}/v1/actions").json()["actions"] == rec.actions  # the list did not change
    rec.list_prior = object()  # reference samples stored
    assert httpx.post(f"{url}/v1/actions", json=new).json()["list_prior"] is True
    httpx.post(f"{url}/v1/recognize", json={"layout": "kinect20", "joints": skeleton(0.9)})
    assert httpx.post(f"{url}/v1/actions", json={"actions": ["a", "b"]}).json()["list_prior"] is None
    httpx.post(f"{url}/v1/recognize", json={"layout": "kinect20", "joints": skeleton(0.9)})
    assert rec.asked_prior == [True, None]  # each list's choice reaches the recogniser; unsaid: its default


def test_the_servers_list_prior_setting_is_the_default_for_posted_lists_only():
    rec = PoseHeightRecognizer()
    rec.list_prior = object()
    with running_server(create_app(rec, max_wait_s=0.05, limits=IN_PROCESS, list_prior=True)) as url:
        assert httpx.get(f"{url}/v1/actions").json()["list_prior"] is None  # the tuning list stays as learnt
        assert httpx.post(f"{url}/v1/actions", json={"actions": ["a", "b"]}).json()["list_prior"] is True
        assert httpx.post(f"{url}/v1/actions", json={"actions": ["a", "b"], "list_prior": False}).json()[
            "list_prior"] is False


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"layout": "nope", "joints": [[[0, 0, 0]]]}, 422, "unknown layout"),
        ({"layout": "ntu25", "joints": np.ones((4, 25, 3)).tolist()}, 422, "does not match the model's layout"),
        ({"layout": "kinect20", "joints": np.ones((4, 19, 3)).tolist()}, 422, "expected 20 joints"),
        ({"layout": "kinect20", "joints": [[1, 2], [3]]}, 422, "rectangular"),
        ({"layout": "kinect20", "joints": np.ones((4, 20)).tolist()}, 422, "shape"),
    ],
)
def test_bad_json_inputs_get_clear_4xx(service, body, status, fragment):
    url, _ = service
    r = httpx.post(f"{url}/v1/recognize", json=body)
    assert r.status_code == status
    assert fragment in r.json()["detail"]


def test_nan_size_limit_and_content_type(service):
    url, _ = service
    joints = np.ones((4, 20, 3))
    joints[1, 2, 0] = np.nan
    payload = json.dumps({"layout": "kinect20", "joints": joints.tolist()}).replace("NaN", "NaN")
    r = httpx.post(f"{url}/v1/recognize", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "NaN" in r.json()["detail"]
    r = httpx.post(f"{url}/v1/recognize", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(f"{url}/v1/actions", json={"actions": ["a", "a"]})
    assert r.status_code == 422


def test_upload_limit():
    rec = PoseHeightRecognizer()
    with running_server(create_app(rec, max_upload_bytes=1000, limits=IN_PROCESS)) as url:
        r = httpx.post(f"{url}/v1/recognize", files={"file": ("big.json", b"{" + b" " * 5000 + b"}")})
        assert r.status_code == 413


def test_concurrent_requests_are_batched(service):
    url, rec = service

    def call(h):
        return httpx.post(f"{url}/v1/recognize", json={"layout": "kinect20", "joints": skeleton(h)}, timeout=30)

    heights = [0.1, 0.5, 0.9] * 6
    with ThreadPoolExecutor(len(heights)) as pool:
        responses = list(pool.map(call, heights))
    labels = [r.json()["results"][0]["label"] for r in responses]
    assert labels == [{0.1: "arms down", 0.5: "arms middle", 0.9: "arms up"}[h] for h in heights]
    assert max(rec.batch_sizes) > 1, rec.batch_sizes
