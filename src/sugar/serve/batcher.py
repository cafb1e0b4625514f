"""Concurrent requests share forward passes: one worker batches what arrived within a few milliseconds.

Requests reach the batcher only after their samples were checked against the model, but a batch can still
fail (a model error on one odd sample); it is then run again one request at a time, so each client gets its
own answer or its own error and nobody fails for another's input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sugar.skeleton.layouts import Layout
from sugar.skeleton.sample import Sample

log = logging.getLogger("sugar.serve")


class Recognizes(Protocol):
    """What the service needs from a recogniser (sugar.models.recognizer.Recognizer satisfies it). A
    recogniser with a `processor` (sugar.skeleton.processor.Processor) also tells its channels per joint."""

    layout: Layout
    actions: list[str]

    def recognize(self, samples: list[Sample], actions: list[str] | None = None, knowledge: Any = None,
                  list_prior: bool | None = None) -> list[dict[str, Any]]: ...


@dataclass
class _Job:
    samples: list[Sample]
    future: asyncio.Future = field(repr=False)


class RequestBatcher:
    """Collects concurrent requests into batches and runs the model in a worker thread."""

    def __init__(self, recognizer: Recognizes, max_batch: int = 32, max_wait_s: float = 0.01,
                 on_batch: Callable[[float], None] | None = None):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch  # told the seconds each batch took (the queue's Retry-After estimate)
        self.actions: list[str] = list(recognizer.actions)
        self.descriptions: dict[str, str] | None = None
        self.list_prior: bool | None = None  # divide the LLM's list prior out (None: the recogniser's default)
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, samples: list[Sample]) -> list[dict[str, Any]]:
        assert self._queue is not None, "batcher not started"
        job = _Job(samples, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        jobs = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while sum(len(j.samples) for j in jobs) < self.max_batch:
            timeout = deadline - asyncio.get_running_loop().time()
            if timeout <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(self._queue.get(), timeout))
            except TimeoutError:
                break
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = [j for j in await self._collect() if not j.future.done()]
            if not jobs:
                continue
            actions, descriptions, prior = self.actions, self.descriptions, self.list_prior  # one list per batch
            samples = [s for j in jobs for s in j.samples]
            try:
                results = await self._timed(samples, actions, descriptions, prior)
            except Exception as exc:
                if len(jobs) == 1:
                    _deliver(jobs[0], error=exc)
                    continue
                log.warning("a batch of %d requests failed (%s: %s); running them one by one", len(jobs),
                            type(exc).__name__, exc)
                for j in jobs:
                    try:
                        _deliver(j, await self._timed(j.samples, actions, descriptions, prior))
                    except Exception as one:
                        _deliver(j, error=one)
                continue
            start = 0
            for j in jobs:
                _deliver(j, results[start : start + len(j.samples)])
                start += len(j.samples)

    async def _timed(self, samples: list[Sample], actions: list[str], descriptions: dict[str, str] | None,
                     list_prior: bool | None) -> list[dict[str, Any]]:
        began = time.perf_counter()
        results = await asyncio.to_thread(self.recognizer.recognize, samples, actions=actions,
                                          knowledge=descriptions, list_prior=list_prior)
        if self.on_batch is not None:
            self.on_batch(time.perf_counter() - began)
        if len(results) != len(samples):
            raise RuntimeError(f"the recogniser answered {len(results)} results for {len(samples)} samples")
        return results


def _deliver(job: _Job, results: list[dict[str, Any]] | None = None, error: BaseException | None = None) -> None:
    if job.future.done():  # the client went away
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(results)
