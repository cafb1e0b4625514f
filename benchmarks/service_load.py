"""The service under load, on loopback: 16 concurrent clients with valid requests, alone and beside abusive ones.

Starts the real `sugar serve` on a stage-3 run (the demo's: runs/demo/recognizer) in a child process and
  1. asks every valid request once, alone (its reference answer);
  2. phase "valid": N clients (default 16) each send R valid requests back to back;
  3. phase "valid+abuse": the same, while abusive clients send malformed, oversized, chunked, deep, bomb, slow
     and poisoned requests and hold slow-loris connections.
Reported per phase: latency p50/p99 of the valid requests, how many kept their reference answer, the status
codes of the abusive ones (no 5xx expected), the worst /healthz latency, and the server's peak RSS.

    PYTHONPATH=src python benchmarks/service_load.py --run runs/demo/recognizer [--clients 16] [--requests 2]
        [--json benchmarks/results/service_load.json]

Batching across requests (issue 16): the valid phase alone, the server batching up to 32 samples or none:

    PYTHONPATH=src python benchmarks/service_load.py --run RUN --no-abuse --clients 16 --requests 4 \
        --serve-arg=--max-batch=1 | --serve-arg=--max-batch=32
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from sugar.skeleton.synthetic import SYNTHETIC_CLASSES, make_synthetic

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: str, port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from sugar.cli import main; main()", "serve", "--run", run, "--port", str(port),
           *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sugar serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("sugar serve did not start within 10 minutes")


class Monitor:
    """Polls /healthz (worst latency, failures) and the server's RSS (with its children) in the background."""

    def __init__(self, url: str, pid: int):
        self.url, self.proc = url, psutil.Process(pid)
        self.worst = 0.0
        self.failures = 0
        self.rss_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        procs = [self.proc, *self.proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                t = time.perf_counter()
                try:
                    ok = client.get(f"{self.url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.worst = max(self.worst, time.perf_counter() - t)
                self.failures += not ok
                self.rss_peak = max(self.rss_peak, self.rss())
                self._stop.wait(0.2)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------ requests

def valid_bodies(n: int, layout: str) -> list[dict[str, Any]]:
    samples = make_synthetic(max(1, -(-n // len(SYNTHETIC_CLASSES))), seed=7)
    return [{"layout": layout, "joints": s.joints.round(4).tolist(), "name": s.name} for s in samples[:n]]


def npz_bomb(declared_mib: int = 1800) -> bytes:
    """~1.8 MB of zip declaring 1.8 GiB of float32 (the issue's probe)."""
    buf = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype=np.float32))
    header["shape"] = (declared_mib * 2**20 // 600, 150)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
            zf.open("x_train.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        chunk = bytes(2**22)
        for _ in range(declared_mib // 4):
            member.write(chunk)
    return buf.getvalue()


def abusive_requests(url: str, layout: str, good: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, callable returning a status code) for each kind of abuse."""
    joints = np.asarray(good["joints"])
    bomb = npz_bomb()

    def post(**kw: Any) -> int:
        return httpx.post(f"{url}/v1/recognize", timeout=120, **kw).status_code

    def chunked() -> int:
        def body():
            yield b'{"layout": "' + layout.encode() + b'", "name": "'
            for _ in range(50):
                yield b"x" * 2**20
        try:
            return post(content=body(), headers={"content-type": "application/json"})
        except httpx.HTTPError:
            return 413  # the server cut the connection after its 413

    def slow_body() -> int:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n")
            s.settimeout(0.5)
            for _ in range(120):
                try:
                    s.sendall(b" ")
                    reply = s.recv(64)
                    return int(reply.split()[1]) if reply else 0
                except TimeoutError:
                    continue
                except OSError:
                    return 0
        return 0

    return [
        ("two channels", lambda: post(json={"layout": layout, "joints": joints[..., :2].tolist()})),
        ("wrong joints", lambda: post(json={"layout": layout, "joints": joints[:, :, :7].tolist()})),
        ("server path as layout", lambda: post(json={"layout": "/etc/shadow", "joints": good["joints"]})),
        ("deep JSON", lambda: post(content=b"[" * 100_000 + b"]" * 100_000,
                                   headers={"content-type": "application/json"})),
        ("NaN coordinates", lambda: post(content=json.dumps({"layout": layout, "joints": np.where(
            joints > 0, np.nan, joints).tolist()}).encode(), headers={"content-type": "application/json"})),
        ("huge coordinates", lambda: post(json={"layout": layout, "joints": (joints * 1e30).tolist()})),
        ("upload named ..", lambda: post(files={"file": ("..", b"{}")})),
        ("npz bomb", lambda: post(files={"file": ("bomb.npz", bomb)})),
        ("chunked 50 MB", chunked),
        ("oversized", lambda: post(content=b" " * (21 * 2**20), headers={"content-type": "application/json"})),
        ("trickled body", slow_body),
    ]


def slowloris(url: str, count: int, stop: threading.Event) -> None:
    host, port = url.removeprefix("http://").split(":")
    while not stop.is_set():
        socks = []
        for _ in range(count):
            try:
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                pass
        stop.wait(12)
        for s in socks:
            s.close()


# ------------------------------------------------------------------ phases

def run_phase(url: str, bodies: list[dict[str, Any]], reference: list[str | None], clients: int, per_client: int,
              abuse: list[tuple[str, Any]] | None, pid: int) -> dict[str, Any]:
    latencies: list[float] = []
    kept = changed = failed = 0
    lock = threading.Lock()

    def client(k: int) -> None:
        nonlocal kept, changed, failed
        with httpx.Client(timeout=600) as c:
            for r in range(per_client):
                i = (k * per_client + r) % len(bodies)
                t = time.perf_counter()
                resp = c.post(f"{url}/v1/recognize", json=bodies[i])
                took = time.perf_counter() - t
                with lock:
                    if resp.status_code != 200:
                        failed += 1
                        continue
                    latencies.append(took)
                    same = resp.json()["results"][0]["label"] == reference[i]
                    kept += same
                    changed += not same

    abuse_codes: dict[str, list[int]] = {}
    stop = threading.Event()

    def abuser() -> None:
        while not stop.is_set():
            for name, call in abuse or []:
                if stop.is_set():
                    return
                try:
                    code = call()
                except httpx.HTTPError as exc:
                    code = f"{type(exc).__name__}"  # type: ignore[assignment]
                abuse_codes.setdefault(name, []).append(code)

    with Monitor(url, pid) as monitor:
        threads = [threading.Thread(target=abuser, daemon=True) for _ in range(2 if abuse else 0)]
        if abuse:
            threads.append(threading.Thread(target=slowloris, args=(url, 100, stop), daemon=True))
        for t in threads:
            t.start()
        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        wall = time.perf_counter() - began
        stop.set()
        for t in threads:
            t.join(timeout=180)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"valid_requests": clients * per_client, "ok": len(latencies), "failed": failed,
            "kept_answer": kept, "changed_answer": changed,
            "p50_s": round(float(np.percentile(lat, 50)), 2), "p99_s": round(float(np.percentile(lat, 99)), 2),
            "wall_s": round(wall, 1), "requests_per_s": round(len(latencies) / wall, 2),
            "healthz_worst_s": round(monitor.worst, 3),
            "healthz_failures": monitor.failures, "rss_peak_mib": round(monitor.rss_peak / 2**20),
            "abuse": {k: sorted({str(c) for c in v}) for k, v in abuse_codes.items()},
            "abuse_5xx": sum(1 for v in abuse_codes.values() for c in v if isinstance(c, int) and c >= 500)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/demo/recognizer", help="stage-3 run to serve")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2, help="valid requests per client and phase")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `sugar serve` argument")
    parser.add_argument("--no-abuse", action="store_true",
                        help="only the valid phase (e.g. to compare throughput across --serve-arg=--max-batch=N)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(args.run, port, args.serve_arg)
    try:
        layout = httpx.get(f"{url}/healthz").json()["layout"]
        bodies = valid_bodies(args.clients * args.requests, layout)
        reference = []
        for b in bodies:  # every valid request alone first: the answer it must keep under load
            r = httpx.post(f"{url}/v1/recognize", json=b, timeout=600)
            reference.append(r.json()["results"][0]["label"] if r.status_code == 200 else None)
        print(f"reference answers: {len(reference)} asked alone", file=sys.stderr)
        phases = {"valid": run_phase(url, bodies, reference, args.clients, args.requests, None, proc.pid)}
        print(f"valid: {phases['valid']}", file=sys.stderr)
        if not args.no_abuse:
            phases["valid+abuse"] = run_phase(url, bodies, reference, args.clients, args.requests,
                                              abusive_requests(url, layout, bodies[0]), proc.pid)
            print(f"valid+abuse: {phases['valid+abuse']}", file=sys.stderr)
    finally:
        proc.terminate()
        try:
            log = proc.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0] + "\n(killed: did not stop within 120 s of SIGTERM)"
    result = {"command": "PYTHONPATH=src python benchmarks/service_load.py " + shlex.join(sys.argv[1:]),
              "run": args.run, "clients": args.clients, "requests_per_client": args.requests,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "load_average": [round(x, 1) for x in os.getloadavg()], "phases": phases,
              "server_tracebacks": log.count("Traceback"), "server_log_tail": log.splitlines()[-5:]}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
