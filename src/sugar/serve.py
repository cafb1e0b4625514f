"""HTTP recognition service (FastAPI): POST a skeleton, get the action, its top-5 and a description.

The model runs outside the event loop: requests are queued and a single worker batches whatever arrived
within a few milliseconds into one `recognize` call in a thread, so concurrent clients share forward passes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from sugar.errors import SugarError
from sugar.skeleton.layouts import Layout, get_layout
from sugar.skeleton.readers import read_file
from sugar.skeleton.sample import Sample
from sugar.viz import render_sequence

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_FRAMES = 10_000


class Recognizes(Protocol):
    """What the service needs from a recogniser (sugar.models.recognizer.Recognizer satisfies it)."""

    layout: Layout
    actions: list[str]

    def recognize(self, samples: list[Sample], actions: list[str] | None = None, knowledge: Any = None,
                  ) -> list[dict[str, Any]]: ...


class SkeletonJSON(BaseModel):
    """A skeleton given inline: joints as [T, V, C] or [M, T, V, C] in the named layout."""

    layout: str = Field(description="Layout name (ntu25, kinect20, msr20, coco17, openpose18, ...)")
    joints: list = Field(description="Nested numbers: [T, V, C] for one person or [M, T, V, C]")
    name: str = "request"


class ActionList(BaseModel):
    """A new active action list (zero-shot): names, optionally with one description per name."""

    actions: list[str] = Field(min_length=2)
    descriptions: dict[str, str] | None = None


@dataclass
class _Job:
    samples: list[Sample]
    future: asyncio.Future = field(repr=False)


class RequestBatcher:
    """Collects concurrent requests into batches and runs the model in a worker thread."""

    def __init__(self, recognizer: Recognizes, max_batch: int = 32, max_wait_s: float = 0.01):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.actions: list[str] = list(recognizer.actions)
        self.descriptions: dict[str, str] | None = None
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

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
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
            samples = [s for j in jobs for s in j.samples]
            try:
                results = await asyncio.to_thread(self._recognize, samples)
            except Exception as exc:  # delivered to each waiting request
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            start = 0
            for j in jobs:
                if not j.future.done():
                    j.future.set_result(results[start : start + len(j.samples)])
                start += len(j.samples)

    def _recognize(self, samples: list[Sample]) -> list[dict[str, Any]]:
        return self.recognizer.recognize(samples, actions=self.actions, knowledge=self.descriptions)


def samples_from_json(body: SkeletonJSON, expected: Layout) -> list[Sample]:
    """Validate an inline skeleton: layout, rank, joint count, finiteness, length."""
    try:
        layout = get_layout(body.layout)
    except SugarError as exc:
        raise HTTPException(422, str(exc)) from None
    if layout.name != expected.name:
        raise HTTPException(422, f"layout {layout.name!r} does not match the model's layout {expected.name!r}")
    try:
        joints = np.asarray(body.joints, dtype=np.float32)
    except (ValueError, TypeError):
        raise HTTPException(422, "joints must be a rectangular nested array of numbers") from None
    if joints.ndim == 3:
        joints = joints[None]
    if joints.ndim != 4:
        raise HTTPException(422, f"joints must have shape [T, V, C] or [M, T, V, C], got {list(joints.shape)}")
    if joints.shape[1] > MAX_FRAMES:
        raise HTTPException(413, f"sequence too long: {joints.shape[1]} frames (limit {MAX_FRAMES})")
    sample = Sample(body.name, joints)
    try:
        sample.validate(num_joints=layout.num_joints, source="request body")
    except SugarError as exc:
        raise HTTPException(422, str(exc)) from None
    return [sample]


def samples_from_upload(filename: str, content: bytes, fmt: str | None, expected: Layout) -> list[Sample]:
    """Read an uploaded file with the project's readers (format from the name or `fmt`)."""
    safe_name = Path(filename or "upload").name or "upload"
    with tempfile.TemporaryDirectory(prefix="sugar-upload-") as tmp:
        path = Path(tmp) / safe_name
        path.write_bytes(content)
        try:
            samples = read_file(path, format=fmt)
        except SugarError as exc:
            raise HTTPException(422, str(exc).replace(str(path), safe_name)) from None
    if not samples:
        raise HTTPException(422, f"{safe_name}: no skeleton sequence found")
    for s in samples:
        if s.num_joints != expected.num_joints:
            expects = f"{expected.num_joints} ({expected.name})"
            raise HTTPException(422, f"{safe_name}: {s.num_joints} joints, but the model expects {expects}")
    return samples


def animation_data_url(sample: Sample, layout: Layout, result: dict[str, Any], max_frames: int = 48) -> str:
    """A GIF of the sequence with the answer written on it, inline as a data URL for the web page."""
    step = max(1, math.ceil(sample.num_frames / max_frames))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "anim.gif"
        render_sequence(sample.joints[:, ::step], layout, path, label=result.get("label"),
                        description=result.get("description"))
        return "data:image/gif;base64," + base64.b64encode(path.read_bytes()).decode()


def create_app(recognizer: Recognizes, max_batch: int = 32, max_wait_s: float = 0.01,
               max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The FastAPI app around one loaded recogniser."""
    batcher = RequestBatcher(recognizer, max_batch=max_batch, max_wait_s=max_wait_s)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="SUGAR-AR recognition service", version="1", lifespan=lifespan,
                  description="Recognise and describe actions from skeleton sequences.")
    app.state.batcher = batcher

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "layout": recognizer.layout.name, "actions": len(batcher.actions)}

    @app.get("/v1/actions")
    async def get_actions() -> dict[str, Any]:
        return {"actions": batcher.actions, "descriptions": batcher.descriptions}

    @app.post("/v1/actions")
    async def set_actions(body: ActionList) -> dict[str, Any]:
        if len(set(body.actions)) != len(body.actions):
            raise HTTPException(422, "action names must be unique")
        if body.descriptions and set(body.descriptions) - set(body.actions):
            raise HTTPException(422, "descriptions name actions that are not in the list")
        batcher.actions = list(body.actions)
        batcher.descriptions = body.descriptions
        return {"actions": batcher.actions}

    @app.post(
        "/v1/recognize",
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": SkeletonJSON.model_json_schema()},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"},
                                           "format": {"type": "string"}},
                            "required": ["file"],
                        }
                    },
                },
                "required": True,
            }
        },
    )
    async def recognize(request: Request, render: bool = False) -> dict[str, Any]:
        """Upload a skeleton file (multipart field `file`, optional `format`) or post JSON joints."""
        length = int(request.headers.get("content-length") or 0)
        if length > max_upload_bytes:
            raise HTTPException(413, f"request too large: {length} bytes (limit {max_upload_bytes})")
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "multipart request needs a file field named 'file'")
            content = await upload.read(max_upload_bytes + 1)
            if len(content) > max_upload_bytes:
                raise HTTPException(413, f"file too large (limit {max_upload_bytes} bytes)")
            fmt = form.get("format")
            samples = samples_from_upload(upload.filename or "upload", content, fmt if isinstance(fmt, str) and fmt
                                          else None, recognizer.layout)
        elif ctype.startswith("application/json"):
            try:
                body = SkeletonJSON.model_validate(await request.json())
            except ValueError as exc:
                raise HTTPException(422, f"invalid JSON body: {exc}") from None
            samples = samples_from_json(body, recognizer.layout)
        else:
            raise HTTPException(415, "send multipart/form-data with a 'file' field, or application/json")
        results = await batcher.submit(samples)
        out = []
        for sample, result in zip(samples, results, strict=True):
            item = {"name": sample.name, **_jsonable(result)}
            if render:
                item["animation"] = await asyncio.to_thread(animation_data_url, sample, recognizer.layout, result)
            out.append(item)
        return {"results": out}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return (resources.files("sugar.web") / "index.html").read_text()

    return app


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
