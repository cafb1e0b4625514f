"""The service under abuse, over real loopback HTTP: malformed, oversized, chunked, deep, bomb, slow and
poisoned requests (each probe of issue 12). Throughout: no 5xx, no traceback in the server's log, /healthz
answers within a second, the server's memory stays bounded, and valid requests sent alongside keep their
answers. The server runs in its own process (as `sugar serve` does), so its memory and its log are its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from servicehelpers import free_port, running_server
from sugar.errors import DataError
from sugar.serve import ServiceLimits, bind_warning, create_app, is_loopback
from sugar.skeleton.layouts import get_layout
from test_serve import IN_PROCESS, PoseHeightRecognizer, skeleton

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from service_load import npz_bomb

LIMITS = ServiceLimits(header_timeout_s=1.0, body_timeout_s=1.5, max_pending=16, max_decoded_bytes=64 * 2**20)
POISON = 0.123  # a wrist height the double's "model" fails on, though the sample passes every check


class Recognizer3D(PoseHeightRecognizer):
    """The deterministic double with a processor (3 channels per joint) and a model error on POISON."""

    processor = SimpleNamespace(in_channels=3)

    def recognize(self, samples, actions=None, knowledge=None, list_prior=None):
        for s in samples:
            if np.isclose(s.joints[0, :, [6, 10], 1].mean(), POISON):
                with self.lock:
                    self.batch_sizes.append(len(samples))
                raise DataError(s.name, "the model cannot take this sample")
        return super().recognize(samples, actions, knowledge)


SERVER = """
import sys
sys.path.insert(0, {tests!r})
import uvicorn
from sugar.serve import create_app, server_config
from test_serve_abuse import LIMITS, Recognizer3D
app = create_app(Recognizer3D(), max_wait_s=0.05, limits=LIMITS)
uvicorn.Server(server_config(app, "127.0.0.1", {port}, log_level="info", access_log=False)).run()
"""


@contextmanager
def server_process() -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """The service with the Recognizer3D double in a child process; yields (url, process, log file)."""
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"sugar-abuse-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVER.format(tests=str(Path(__file__).parent), port=port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, proc, log
    finally:
        workers = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        proc.terminate()
        proc.wait(timeout=60)
        _, alive = psutil.wait_procs(workers, timeout=15)
        for p in alive:
            p.kill()
        log.unlink(missing_ok=True)
        assert not alive, f"decoding workers outlived the server: {alive}"


class Watch:
    """Polls /healthz and samples the server's RSS in the background."""

    def __init__(self, url: str, pid: int):
        self.url = url
        self.server = psutil.Process(pid)
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self.rss_peak = self.rss_start = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        """The server's resident memory with its decoding workers'."""
        total = 0
        for p in [self.server, *self.server.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just ended
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                t = time.perf_counter()
                try:
                    self.statuses.append(client.get(f"{self.url}/healthz").status_code)
                except httpx.HTTPError:
                    self.statuses.append(-1)
                self.latencies.append(time.perf_counter() - t)
                self.rss_peak = max(self.rss_peak, self.rss())
                self._stop.wait(0.1)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def healthz_bound() -> float:
    """The service promises /healthz within 1 s. When other work oversubscribes this machine (more than two
    runnable processes per core over the last minute) the scheduler alone can delay any process by more, so
    the bound is then 3 s."""
    return 1.0 if os.getloadavg()[0] / (os.cpu_count() or 1) <= 2 else 3.0


def tracebacks(log: Path) -> list[str]:
    text = log.read_text()
    return [line for line in text.splitlines() if "Traceback" in line or "Exception in ASGI" in line]


@pytest.fixture(scope="module")
def served() -> Iterator[SimpleNamespace]:
    with server_process() as (url, proc, log), Watch(url, proc.pid) as watch:
        yield SimpleNamespace(url=url, log=log, watch=watch)
        server_log = log.read_text()
    assert watch.statuses and set(watch.statuses) == {200}, set(watch.statuses)
    slow = sorted(watch.latencies)[-3:]
    assert slow[-1] < healthz_bound(), f"/healthz took {slow} s at worst ({len(watch.latencies)} polls)"
    grew = (watch.rss_peak - watch.rss_start) / 2**20
    assert watch.rss_peak < 1536 * 2**20 and grew < 1024, f"server RSS peak {watch.rss_peak / 2**20:.0f} MiB"
    assert "Traceback" not in server_log and "Exception in ASGI" not in server_log, server_log[-3000:]


def post_json(url: str, body: object, **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/recognize", json=body, timeout=30, **kw)


def valid(url: str, height: float = 0.9) -> str:
    r = post_json(url, {"layout": "kinect20", "joints": skeleton(height)})
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["label"]


def raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_response(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and (b"content-length: 0" in data.lower() or data.endswith(b"}")):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return data


# ------------------------------------------------------------------ 1. a layout is never a server path

def test_layout_path_is_never_opened(served):
    answers = {}
    for path in ("/etc/shadow", "/etc/passwd", "/does/not/exist.json", "../../etc/hostname"):
        r = post_json(served.url, {"layout": path, "joints": skeleton(0.5)})
        assert r.status_code == 422
        answers[path] = r.json()["detail"].replace(repr(path)[:62], "<layout>")
    assert len(set(answers.values())) == 1, answers  # an existing file and a missing one answer alike
    assert "built-in layouts" in answers["/etc/shadow"] and "root:" not in answers["/etc/passwd"]


def test_inline_layout_object_is_accepted(served):
    layout = get_layout("kinect20").to_dict()
    r = post_json(served.url, {"layout": layout, "joints": skeleton(0.9)})
    assert r.status_code == 200 and r.json()["results"][0]["label"] == "arms up"
    layout["bones"] = [["no such joint", "spine"]]
    r = post_json(served.url, {"layout": layout, "joints": skeleton(0.9)})
    assert r.status_code == 422 and "unknown joint" in r.json()["detail"]


# ------------------------------------------------------------------ 2. bombs, read off the event loop

def test_npz_bomb_is_refused_without_inflating(served):
    bomb = npz_bomb(256)  # benchmarks/service_load.py's probe, at 256 MiB declared
    assert len(bomb) < 2 * 2**20
    before = served.watch.rss()
    t = time.perf_counter()
    r = httpx.post(f"{served.url}/v1/recognize", files={"file": ("bomb.npz", bomb)}, timeout=30)
    assert r.status_code == 422 and "would decode to" in r.json()["detail"]
    assert time.perf_counter() - t < 5
    assert served.watch.rss() - before < 200 * 2**20


def test_large_upload_is_parsed_while_others_are_answered(served):
    """An 11 MB NTU text (seconds to parse) does not hold up /healthz or a small valid request."""
    frames = 9000
    line = " ".join(["0.1"] * 12)
    body = [str(frames)] + ["1\n72057594037931101 0 1 1 1 1 0 0.01 0.02 2\n25\n" + "\n".join([line] * 25)
                            for _ in range(frames)]
    big = ("\n".join(body) + "\n").encode()
    assert len(big) > 10 * 2**20
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(httpx.post, f"{served.url}/v1/recognize",
                           files={"file": ("S001C001P001R001A001.skeleton", big)}, timeout=60)
        time.sleep(0.2)
        t = time.perf_counter()
        assert valid(served.url) == "arms up"
        small_took = time.perf_counter() - t
        r = slow.result()
    assert r.status_code == 422  # an ntu25 file for a kinect20 model, said after reading it
    assert small_took < 2.0, small_took


# ------------------------------------------------------------------ 3. body size counted as it arrives

def test_chunked_body_over_the_limit_is_cut_off(served):
    sock = raw(served.url)
    sock.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b'{"layout": "kinect20", "name": "' + b"x" * (2**20 - 40)
    sent = 0
    try:
        while sent < 50 * 2**20:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = read_response(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent <= LIMITS.max_body_bytes + 8 * 2**20 and b"xxxxxxxxxx" not in reply


def test_declared_length_over_the_limit_is_refused_at_once(served):
    r = httpx.post(f"{served.url}/v1/recognize", content=b"{" + b" " * (21 * 2**20) + b"}",
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413


# ------------------------------------------------------------------ 4. one client cannot fail another

def test_bad_and_poisoned_requests_do_not_fail_their_batch(served):
    two_channels = np.asarray(skeleton(0.9))[..., :2].tolist()
    bodies = [skeleton(0.1), skeleton(0.5), skeleton(POISON), two_channels, skeleton(0.9), skeleton(0.9)]
    with ThreadPoolExecutor(len(bodies)) as pool:
        rs = list(pool.map(lambda j: post_json(served.url, {"layout": "kinect20", "joints": j}), bodies))
    assert [r.status_code for r in rs] == [200, 200, 422, 422, 200, 200]
    assert "takes 3 values per joint" in rs[3].json()["detail"]
    assert "cannot take this sample" in rs[2].json()["detail"]
    labels = [r.json()["results"][0]["label"] for r in rs if r.status_code == 200]
    assert labels == ["arms down", "arms middle", "arms up", "arms up"]
    assert "failed (DataError" in served.log.read_text()  # they were batched, then retried one by one


# ------------------------------------------------------------------ 5. input errors are 4xx, quietly

@pytest.mark.parametrize(("content", "ctype", "status"), [
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 422),
    (b'{"layout": "kinect20", "joints": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json", 422),
    (b"{not json", "application/json", 422),
    (b'{"layout": "kinect20", "joints": [[[1e999, 0, 0]]]}', "application/json", 422),
    (b'{"layout": "kinect20", "joints": [[[' + b"9" * 5000 + b', 0, 0]]]}', "application/json", 422),
    (b'{"layout": "kinect20", "joints": [[["1", 0, 0]]], "name": 5}', "application/json", 422),
    (b"\xff\xfe\x00garbage", "application/json", 422),
    (b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nx\r\n", "multipart/form-data; boundary=b", 422),
    (b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\n" + b"x" * 4000, "multipart/form-data; boundary=b",
     400),
    (b"x", "text/plain", 415),
])
def test_malformed_bodies_get_4xx(served, content, ctype, status):
    r = httpx.post(f"{served.url}/v1/recognize", content=content, headers={"content-type": ctype}, timeout=30)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["detail"], str) and len(r.json()["detail"]) < 500


def test_deep_json_on_the_action_list_is_4xx(served):
    r = httpx.post(f"{served.url}/v1/actions", content=b'{"actions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                   headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500
    r = httpx.post(f"{served.url}/v1/actions", json={"actions": [f"a{i}" for i in range(10_000)]})
    assert r.status_code == 422


@pytest.mark.parametrize("filename", ["..", ".", "../../etc/passwd", "/", "a/../..", "x" * 5000, "\x00", "\r\n"])
def test_odd_upload_names(served, filename):
    doc = {"file_name": "x", "skeletons": skeleton(0.9), "label": 1}
    r = httpx.post(f"{served.url}/v1/recognize", files={"file": (filename, json.dumps(doc).encode())},
                   data={"format": "nw-ucla"}, timeout=30)
    if filename in ("\x00", "\r\n", "x" * 5000):  # bad or oversized header values: the parser may refuse them
        assert r.status_code in (200, 400), r.text
        return
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["label"] == "arms up"


def test_disconnect_mid_body_leaves_no_traceback(served):
    for _ in range(3):
        sock = raw(served.url)
        sock.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n{\"layout\": ")
        time.sleep(0.1)
        sock.close()
        sock = raw(served.url)
        sock.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; "
                     b"filename=\"a.json\"\r\n\r\n{")
        time.sleep(0.1)
        sock.close()
    time.sleep(0.3)
    assert not tracebacks(served.log), served.log.read_text()[-2000:]
    assert valid(served.url) == "arms up"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    json_values,
    st.fixed_dictionaries({"layout": json_values, "joints": json_values}),
    st.fixed_dictionaries({"layout": st.sampled_from(["kinect20", "ntu25", "msr20"]), "joints": json_values,
                           "name": json_values}),
))
def test_fuzzed_json_never_gets_5xx(served, body):
    r = httpx.post(f"{served.url}/v1/recognize", content=json.dumps(body).encode(),
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code < 500, r.text


# ------------------------------------------------------------------ 6. an upload is read alone

def test_pku_upload_is_read_alone(monkeypatch):
    from sugar.skeleton.readers import pku_mmd

    looked = []
    monkeypatch.setattr(pku_mmd, "find_label_file", looked.append)
    rows = "\n".join(" ".join(["0.1"] * 75 + ["0"] * 75) for _ in range(20))
    with running_server(create_app(Recognizer3D(), limits=IN_PROCESS)) as url:  # parsed here: monkeypatched
        r = httpx.post(f"{url}/v1/recognize", files={"file": ("0002-L.txt", rows.encode())}, timeout=30)
    assert r.status_code == 422 and "does not match the model's layout" in r.json()["detail"]
    assert looked == []


# ------------------------------------------------------------------ 7. slow clients and a full queue

def test_slow_headers_are_timed_out(served):
    socks = [raw(served.url) for _ in range(100)]
    for s in socks:
        s.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\n")
    t = time.perf_counter()
    assert valid(served.url) == "arms up"  # others are served meanwhile
    closed = 0
    for s in socks:
        s.settimeout(LIMITS.header_timeout_s + 3)
        try:
            s.sendall(b"X-Slow: 1\r\n")
            closed += s.recv(1024) == b""
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            closed += 1
        s.close()
    assert closed == 100 and time.perf_counter() - t < LIMITS.header_timeout_s + 4


def test_keep_alive_connection_cannot_stall_its_next_request(served):
    sock = raw(served.url)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(sock).startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never finishes the head
    sock.settimeout(LIMITS.header_timeout_s + 6)
    t = time.perf_counter()
    assert sock.recv(1024) == b""
    assert time.perf_counter() - t < LIMITS.header_timeout_s + 6
    sock.close()


def test_trickled_body_gets_408(served):
    sock = raw(served.url)
    sock.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n")
    t = time.perf_counter()
    reply = b""
    sock.settimeout(0.3)
    while time.perf_counter() - t < 10 and not reply:
        try:
            sock.sendall(b" ")
            reply = sock.recv(4096)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert time.perf_counter() - t < LIMITS.body_timeout_s + 2


class SlowRecognizer(Recognizer3D):
    def recognize(self, samples, actions=None, knowledge=None, list_prior=None):
        time.sleep(0.5)
        return super().recognize(samples, actions, knowledge)


def test_full_queue_gets_429_with_retry_after():
    limits = ServiceLimits(max_pending=2, decode_workers=0)
    with running_server(create_app(SlowRecognizer(), max_batch=1, max_wait_s=0.0, limits=limits)) as url:
        with ThreadPoolExecutor(6) as pool:
            rs = list(pool.map(lambda h: post_json(url, {"layout": "kinect20", "joints": skeleton(h)}), [0.9] * 6))
        codes = sorted(r.status_code for r in rs)
        assert codes.count(200) >= 2 and set(codes) <= {200, 429} and 429 in codes
        busy = next(r for r in rs if r.status_code == 429)
        assert int(busy.headers["retry-after"]) >= 1 and "busy" in busy.json()["detail"]
        assert httpx.get(f"{url}/healthz").json()["in_progress"] == 0
        assert valid(url) == "arms up"


# ------------------------------------------------------------------ 8. API key

def test_api_key_guards_v1_but_not_health():
    with running_server(create_app(Recognizer3D(), api_key="s3cret", limits=IN_PROCESS)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/v1/actions").status_code == 401
        assert httpx.get(f"{url}/v1/actions", headers={"X-API-Key": "wrong"}).status_code == 401
        assert httpx.get(f"{url}/v1/actions", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.get(f"{url}/v1/actions", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        r = post_json(url, {"layout": "kinect20", "joints": skeleton(0.9)})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert post_json(url, {"layout": "kinect20", "joints": skeleton(0.9)},
                         headers={"X-API-Key": "s3cret"}).status_code == 200


def test_bind_warning_and_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.3.4.5"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org"))
    assert bind_warning("127.0.0.1", None) is None and bind_warning("0.0.0.0", "k") is None
    assert "without an API key" in bind_warning("0.0.0.0", None)


def test_serve_command_passes_key_limits_and_warns(monkeypatch, tmp_path):
    """`sugar serve` wiring, with the model loader and the server loop replaced."""
    import uvicorn

    import sugar.models.recognizer_io as rio
    from sugar.cli import app

    seen = {}
    monkeypatch.setattr(rio, "load_recognizer", lambda run: Recognizer3D())
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.update(config=self.config))
    monkeypatch.setenv("SUGAR_SERVE_API_KEY", "from-env")
    res = CliRunner().invoke(app, ["serve", "--run", str(tmp_path), "--host", "0.0.0.0", "--max-pending", "3"])
    assert res.exit_code == 0, res.output
    assert "without an API key" not in res.output and "API key required" in res.output
    config = seen["config"]
    assert config.host == "0.0.0.0" and config.app.state.limits.max_pending == 3
    monkeypatch.delenv("SUGAR_SERVE_API_KEY")
    res = CliRunner().invoke(app, ["serve", "--run", str(tmp_path), "--host", "0.0.0.0"])
    assert "without an API key" in res.output


def test_workers_end_with_a_killed_server():
    """kill -9 gives the server no chance to stop its decoding workers; they notice and end on their own."""
    with server_process() as (url, proc, _):
        assert valid(url) == "arms up"
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers
        proc.kill()
        proc.wait(timeout=20)
        _, alive = psutil.wait_procs(workers, timeout=15)
        for p in alive:
            p.kill()
        assert not alive
