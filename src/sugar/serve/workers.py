"""Client input is parsed in worker processes, not in the server.

Parsing a 20 MB body holds the GIL for seconds in places (json.loads, numpy over millions of tokens); in a
thread of the server that would stall /healthz and every other client for as long. In a worker process it
costs them nothing, and a file that still exhausts memory (each worker's address space is capped) kills a
worker, not the server: the pool is rebuilt and the client gets a 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fastapi.concurrency import run_in_threadpool

from sugar.skeleton import untrusted
from sugar.skeleton.untrusted import InputError

log = logging.getLogger("sugar.serve")


def _start_worker(max_bytes: int | None, server: int) -> None:
    """Worker initializer: cap the address space, so a runaway parse fails with MemoryError in the worker, and
    end with the server even when it is killed (a worker holds its own end of the task queue, so it would
    otherwise wait on it for ever). The readers are imported by then: this module imports them at the top."""
    if max_bytes:
        with contextlib.suppress(ValueError, OSError):  # not permitted here: the decoded-size bounds still hold
            resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))

    def watch() -> None:
        while os.getppid() == server:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="sugar-parent-watch").start()


class DecodePool:
    """`await pool.run(fn, *args)` runs fn in one of `workers` spawned processes (0: a thread of this process,
    for tests and tiny deployments). Started on first use; `close()` ends it."""

    def __init__(self, workers: int, memory_bytes: int | None = None):
        self.workers = workers
        self.memory_bytes = memory_bytes
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(self.memory_bytes, os.getpid()))
        return self._pool

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.workers <= 0:
            return await run_in_threadpool(fn, *args)
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))
        except BrokenProcessPool:
            log.warning("a decoding worker died (out of memory or killed); starting new ones")
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise InputError(413, "the input could not be read: its reader ran out of memory") from None

    async def warm(self) -> None:
        """Start the workers and wait until they can parse (imports done), so no client pays for it."""
        if self.workers > 0:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self._executor(), untrusted.ready)
                                   for _ in range(self.workers)))

    def close(self) -> None:
        """End the workers (waits for a parse in progress; queued ones are cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
