"""What keeps one HTTP client from taking the service's memory, time or other clients' turns.

- `ServiceLimits`: every bound in one place (body size, frames, samples, queue, timeouts, decode memory).
- Header time: `header_timeout_protocol` closes a connection that has not sent a complete request head
  within the bound (uvicorn has no such timeout; slow-loris clients would hold connections for ever).
- Body time: `BodyDeadline` answers 408 when a request body has not fully arrived in time, however slowly
  it trickles. Body size is FastAPI's own `max_body_size`, which counts bytes as they arrive (chunked too).
- Queue: `Admission` answers 429 with Retry-After when too many recognition requests are in progress.
- Decode memory: `MemoryBudget` lets small requests be parsed at once while large ones wait for room, so a
  big upload never makes a small one wait and many big ones never exhaust memory. (Parsing itself runs in
  worker processes: sugar.serve.workers.)
- `quiet_disconnects`: a client that goes away mid-body costs one log line, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("sugar.serve")


@dataclass(frozen=True)
class ServiceLimits:
    """The service's bounds. Worst-case memory for bodies is about max_pending x max_body_bytes (640 MiB at
    the defaults) plus decode_budget_bytes for parsing, on top of the model."""

    max_body_bytes: int = 20 * 2**20
    max_frames: int = 10_000
    max_samples: int = 32  # samples in one request (a PYSKL or .npz upload can hold many)
    max_pending: int = 32  # recognition requests in progress at once; more get 429
    header_timeout_s: float = 10.0  # from connection (or the previous response) to a complete request head
    body_timeout_s: float = 30.0  # from the request head to the last byte of its body
    keep_alive_s: int = 5
    max_connections: int = 512  # open connections (uvicorn answers 503 beyond)
    decode_workers: int = 2  # processes that parse client input (0: threads of the server, for tests)
    worker_memory_bytes: int = 4 * 2**30  # address-space cap of each of them
    decode_budget_bytes: int = 512 * 2**20  # parsing memory shared by all requests being decoded
    decode_factor: int = 16  # parsing memory per body byte (text -> Python objects -> arrays)
    max_decoded_bytes: int = 256 * 2**20  # what one uploaded .npz/.npy/.pkl may declare decoded
    max_rendered: int = 4  # animations per request (render=true)
    max_video_seconds: float = 60.0  # an uploaded video longer than this is refused from its header (413)
    max_video_frames: int = 1800
    video_fps: float | None = 15.0  # videos are thinned to this rate before pose estimation (None: every frame)
    video_frames_drawn: int = 48  # frames of an uploaded video kept for its render=true animation


# ------------------------------------------------------------------ header time (uvicorn protocol)

def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, plus: a request head must be complete within `seconds` of the connection being
    opened, or of its first byte on a kept-alive connection; otherwise the connection is closed. (An idle
    kept-alive connection is uvicorn's keep-alive timeout's business; a request in progress is never cut.)"""

    class HeaderTimeoutH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _armed_for: Any = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # the first byte of the next request on a kept-alive connection
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._disarm()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._armed_for = self.cycle
            self._header_timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            waiting = self.cycle is self._armed_for and (self.cycle is None or self.cycle.response_complete)
            if waiting and not self.transport.is_closing():
                log.info("closing a connection that sent no complete request head in %g s", seconds)
                self.transport.close()

    return HeaderTimeoutH11Protocol


# ------------------------------------------------------------------ body time (ASGI middleware)

class BodyDeadline:
    """ASGI middleware: the whole request body must arrive within `seconds` of the request head, or the
    request ends with 408. A trickle of one byte a second cannot extend it."""

    def __init__(self, app: ASGIApp, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.seconds
        done = False

        async def timed_receive() -> Message:
            nonlocal done
            if done:  # after the body only a disconnect can come; waiting for it is not the client's fault
                return await receive()
            left = deadline - anyio.current_time()
            try:
                with anyio.fail_after(max(left, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.seconds:g} s") from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


# ------------------------------------------------------------------ queue and decode memory

class Admission:
    """At most `limit` recognition requests in progress; beyond that 429 with a Retry-After estimated from
    the recent time per batch."""

    def __init__(self, limit: int, max_batch: int):
        self.limit = limit
        self.max_batch = max(1, max_batch)
        self.active = 0
        self.seconds_per_batch = 1.0  # running estimate, updated by the batcher

    def observe_batch(self, seconds: float) -> None:
        self.seconds_per_batch = 0.8 * self.seconds_per_batch + 0.2 * seconds

    def retry_after(self) -> int:
        batches = math.ceil(self.active / self.max_batch)
        return max(1, math.ceil(batches * self.seconds_per_batch))

    @contextlib.contextmanager
    def enter(self):
        if self.active >= self.limit:
            raise HTTPException(429, f"the service is busy ({self.active} requests in progress); retry later",
                                headers={"Retry-After": str(self.retry_after())})
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


class MemoryBudget:
    """Bytes of parsing memory shared by requests: each reserves an estimate before it is decoded and waits
    while the budget is spent. One request larger than the whole budget still runs, alone."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def reserve(self, nbytes: int) -> AsyncIterator[None]:
        need = min(max(0, nbytes), self.total)
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + need <= self.total)
            self.used += need
        try:
            yield
        finally:
            async with self._changed:
                self.used -= need
                self._changed.notify_all()


# ------------------------------------------------------------------ disconnects

class QuietDisconnects:
    """ASGI middleware: a client that disconnects while its body is being read ends the request with a log
    line (starlette raises ClientDisconnect, which would otherwise be logged as a server error)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            log.info("client %s disconnected before its request was read", (scope.get("client") or ("?",))[0])


# ------------------------------------------------------------------ who may listen where

def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the only hosts that are safe to serve without a key)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, api_key: str | None) -> str | None:
    """The warning `sugar serve` prints when it listens beyond loopback with no API key (None otherwise)."""
    if api_key or is_loopback(host):
        return None
    return (f"warning: serving on {host} without an API key: anyone who can reach this address can use the "
            "service and replace its action list; pass --api-key or set SUGAR_SERVE_API_KEY")
