"""A real OpenAI-compatible chat server on loopback (http.server in a thread) for the generator tests.

It answers motion, description and vision questions with text derived from the action name, and can be
told to misbehave: a queue of faults consumed one per request ("429" with Retry-After, "500",
"badjson", "stall" = sleep longer than the client's timeout, "401", "overloaded" = a 200 whose text is
"Service temporarily overloaded", "trickle" = a valid answer sent one byte every `trickle_s`, "trickle-head"
= the same for the status line and headers), actions whose answers never parse, and a per-request delay.
Every request is logged (messages digest, seed, outcome).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PARTS = ("head", "hand", "arm", "hip", "leg", "foot")


def digest(messages: list[Any]) -> str:
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class FakeOpenAI:
    def __init__(self, faults: Iterable[str] = (), never_parse: Iterable[str] = (), delay: float = 0.0,
                 stall_s: float = 3.0, retry_after: str = "1", trickle_s: float = 0.5):
        self.faults = deque(faults)
        self.never_parse = set(never_parse)
        self.delay = delay
        self.stall_s = stall_s
        self.retry_after = retry_after
        self.trickle_s = trickle_s
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # --------------------------------------------------------------- answers
    def answer(self, messages: list[dict[str, Any]]) -> str:
        last = messages[-1]["content"]
        if isinstance(last, list):  # vision question: one line per image
            text = next(p["text"] for p in last if p.get("type") == "text")
            action = re.search(r"action '([^']+)'", text).group(1)
            n = sum(1 for p in last if p.get("type") == "image_url")
            if action in self.never_parse:
                return "Sorry."
            return "\n".join(f"{i + 1}. A person shown doing {action} in frame {i + 1} of {n}." for i in range(n))
        m = re.search(r"movements when '([^']+)'", last)
        if m:
            action = m.group(1)
            if action in self.never_parse:
                return "I am not able to describe that."
            return "\n".join(f"- {p.capitalize()}: {p} moves as in {action}" for p in PARTS)
        m = re.search(r"Describe the action '([^']+)'", last)
        if m:
            return f"A person performs the action {m.group(1)}. The whole body takes part in it."
        return "unexpected question"

    @staticmethod
    def question(messages: list[dict[str, Any]]) -> str:
        last = messages[-1]["content"]
        return last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)

    # --------------------------------------------------------------- server
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout) or was killed
                    pass

            def _trickle(self, body: bytes, head: bool) -> None:
                """A 200 sent slowly: one byte every trickle_s (of the head too when `head`)."""
                status = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                status += b"Content-Length: %d\r\n\r\n" % len(body)
                try:
                    if not head:
                        self.wfile.write(status)
                        self.wfile.flush()
                    for b in (status + body if head else body):
                        self.wfile.write(bytes([b]))
                        self.wfile.flush()
                        time.sleep(fake.trickle_s)
                except OSError:  # the client gave up
                    pass
                self.close_connection = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with fake.lock:
                    fault = fake.faults.popleft() if fake.faults else None
                    entry = {"time": time.monotonic(), "digest": digest(body["messages"]), "seed": body.get("seed"),
                             "temperature": body.get("temperature"), "model": body.get("model"),
                             "path": self.path, "auth": self.headers.get("Authorization"),
                             "outcome": fault or "ok", "question": fake.question(body["messages"])}
                    fake.log.append(entry)
                if not self.path.endswith("/v1/chat/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                if fault == "429":
                    self._send(429, b'{"error": "rate limited"}', {"Retry-After": fake.retry_after})
                elif fault == "500":
                    self._send(500, b'{"error": "boom"}')
                elif fault == "401":
                    self._send(401, b'{"error": "bad key"}')
                elif fault == "badjson":
                    self._send(200, b'{"choices": [{"message": {"content": "trunc')
                elif fault == "overloaded":
                    self._send(200, json.dumps(fake.response("Service temporarily overloaded")).encode())
                elif fault in ("trickle", "trickle-head"):
                    self._trickle(json.dumps(fake.response(fake.answer(body["messages"]))).encode(),
                                  head=fault == "trickle-head")
                elif fault == "stall":
                    time.sleep(fake.stall_s)
                    self._send(200, json.dumps(fake.response("too late")).encode())
                else:
                    if fake.delay:
                        time.sleep(fake.delay)
                    text = fake.answer(body["messages"])
                    entry["answer"] = text
                    self._send(200, json.dumps(fake.response(text)).encode())

        return Handler

    @staticmethod
    def response(text: str) -> dict[str, Any]:
        return {"id": "x", "object": "chat.completion", "model": "fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    def __enter__(self) -> FakeOpenAI:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def outcomes(self) -> list[str]:
        with self.lock:
            return [e["outcome"] for e in self.log]
