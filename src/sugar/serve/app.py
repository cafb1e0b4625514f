"""The FastAPI app around one loaded recogniser: endpoints, and the limits that keep clients apart.

Request path of POST /v1/recognize: API key (when set) -> admission (429 when the queue is full) -> body
(FastAPI's max_body_size counts bytes as they arrive; BodyDeadline bounds the time) -> decode in a worker
process under a shared memory budget (sugar.skeleton.untrusted: every sample checked against the model) ->
the batcher (sugar.serve.batcher) -> answer. Nothing a client sends is parsed in the server process, so
/healthz and other clients keep their answers while a large upload is read.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import logging
import math
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, StringConstraints
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from sugar.errors import SugarError
from sugar.overlay import render_overlay
from sugar.pose import LAYOUT as POSE_LAYOUT
from sugar.serve.batcher import Recognizes, RequestBatcher
from sugar.serve.limits import Admission, BodyDeadline, MemoryBudget, QuietDisconnects, ServiceLimits
from sugar.serve.video import decode_video, is_video_upload, video_options
from sugar.serve.workers import DecodePool
from sugar.skeleton.layouts import Layout
from sugar.skeleton.sample import Sample
from sugar.skeleton.untrusted import InputError, ModelInput, decode
from sugar.viz import render_sequence

log = logging.getLogger("sugar.serve")

MAX_ACTIONS = 500
# Answers given before the request body was read: the connection is closed after them, so the rest of a large
# or slow body is not read (and discarded) for nothing.
CLOSE_AFTER = frozenset({401, 408, 413, 429})
ActionName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SkeletonJSON(BaseModel):
    """A skeleton given inline: joints as [T, V, C] or [M, T, V, C] in the named (or given) layout."""

    layout: str | dict = Field(description="A built-in layout name (ntu25, kinect20, msr20, coco17, openpose18, "
                                           "...) or a layout object with the fields of layout.json")
    joints: list = Field(description="Nested numbers: [T, V, C] for one person or [M, T, V, C]")
    name: str = Field("request", max_length=200)


class ActionList(BaseModel):
    """A new active action list (zero-shot): names, optionally with one description per name."""

    actions: list[ActionName] = Field(min_length=2, max_length=MAX_ACTIONS)
    descriptions: dict[ActionName, Annotated[str, StringConstraints(max_length=2000)]] | None = None
    list_prior: bool | None = Field(None, description="Divide the LLM's prior over this list out (for actions it "
                                    "was not tuned on; the recogniser must store reference samples, `sugar "
                                    "list-prior`). Omitted: the server's setting (`sugar serve --list-prior`).")


def model_input(recognizer: Recognizes, limits: ServiceLimits) -> ModelInput:
    """What a sample must be for this recogniser: its layout and, when it has a processor, its channels."""
    processor = getattr(recognizer, "processor", None)
    channels = getattr(processor, "in_channels", None)
    return ModelInput(recognizer.layout, int(channels) if channels else None, limits.max_frames,
                      limits.max_samples, limits.max_decoded_bytes)


def api_key_check(api_key: str | None):
    """A FastAPI dependency: with a key set, /v1 requests must send it (X-API-Key or Authorization: Bearer)."""
    bearer = HTTPBearer(auto_error=False, description="The service's API key (sugar serve --api-key)")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The service's API key")

    async def check(cred: HTTPAuthorizationCredentials | None = Security(bearer),
                    key: str | None = Security(header)) -> None:
        if api_key is None:
            return
        given = key or (cred.credentials if cred is not None else "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send X-API-Key: KEY or Authorization: Bearer KEY)",
                                headers={"WWW-Authenticate": "Bearer"})

    return check


def animation_data_url(sample: Sample, layout: Layout, result: dict[str, Any], max_frames: int = 48) -> str:
    """A GIF of the sequence with the answer written on it, inline as a data URL for the web page; for a
    video, the skeleton drawn over its frames."""
    step = max(1, math.ceil(sample.num_frames / max_frames))
    video = sample.meta.get("video")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "anim.gif"
        if video is not None:
            render_overlay(video.frames, video.image, POSE_LAYOUT, video.width, path, result.get("label"),
                           result.get("description"), fps=video.kept_fps)
        else:
            render_sequence(sample.joints[:, ::step], layout, path, label=result.get("label"),
                            description=result.get("description"))
        return "data:image/gif;base64," + base64.b64encode(path.read_bytes()).decode()


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own error answer ({"detail": ...}), with Connection: close when the body went unread."""
    if exc.status_code in CLOSE_AFTER:
        exc.headers = {**(exc.headers or {}), "Connection": "close"}
    return await http_exception_handler(request, exc)


async def _read_body(request: Request) -> bytes:
    try:
        return await request.body()
    except ClientDisconnect:
        raise HTTPException(400, "the client disconnected before its request arrived") from None


async def _read_upload(request: Request) -> tuple[str | None, bytes, str | None]:
    try:
        async with request.form(max_files=1, max_fields=2, max_part_size=1024) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "multipart request needs a file field named 'file'")
            fmt = form.get("format")
            return upload.filename, await upload.read(), fmt if isinstance(fmt, str) and fmt else None
    except ClientDisconnect:
        raise HTTPException(400, "the client disconnected before its request arrived") from None


def create_app(recognizer: Recognizes, max_batch: int = 32, max_wait_s: float = 0.01,
               max_upload_bytes: int | None = None, limits: ServiceLimits | None = None,
               api_key: str | None = None, list_prior: bool | None = None) -> FastAPI:
    """The FastAPI app around one loaded recogniser. `max_upload_bytes` overrides limits.max_body_bytes;
    `api_key` (None: open) guards every /v1 endpoint; `list_prior` is the default for posted action lists (None:
    the recogniser's own, sugar.models.list_prior.APPLY_TO_NEW_LISTS); the tuning list it starts with is never
    corrected."""
    limits = limits or ServiceLimits()
    if max_upload_bytes is not None:
        limits = ServiceLimits(**{**limits.__dict__, "max_body_bytes": max_upload_bytes})
    admission = Admission(limits.max_pending, max_batch)
    batcher = RequestBatcher(recognizer, max_batch=max_batch, max_wait_s=max_wait_s, on_batch=admission.observe_batch)
    model = model_input(recognizer, limits)
    pose, no_video = video_options(recognizer, limits)
    budget: MemoryBudget | None = None
    decoders = DecodePool(limits.decode_workers, limits.worker_memory_bytes)
    renders = anyio.CapacityLimiter(1)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        nonlocal budget
        budget = MemoryBudget(limits.decode_budget_bytes)  # its Condition belongs to the server's loop
        await decoders.warm()
        await batcher.start()
        yield
        await batcher.stop()
        decoders.close()

    app = FastAPI(title="SUGAR-AR recognition service", version="1", lifespan=lifespan,
                  max_body_size=limits.max_body_bytes,
                  description="Recognise and describe actions from skeleton sequences.")
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyDeadline, seconds=limits.body_timeout_s)
    app.add_middleware(QuietDisconnects)
    app.state.batcher = batcher
    app.state.limits = limits
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(api_key_check(api_key))])

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "layout": recognizer.layout.name, "actions": len(batcher.actions),
                "in_progress": admission.active}

    @v1.get("/actions")
    async def get_actions() -> dict[str, Any]:
        return {"actions": batcher.actions, "descriptions": batcher.descriptions, "list_prior": batcher.list_prior}

    @v1.post("/actions")
    async def set_actions(body: ActionList) -> dict[str, Any]:
        if len(set(body.actions)) != len(body.actions):
            raise HTTPException(422, "action names must be unique")
        if body.descriptions and set(body.descriptions) - set(body.actions):
            raise HTTPException(422, "descriptions name actions that are not in the list")
        prior = list_prior if body.list_prior is None else body.list_prior
        if prior and getattr(recognizer, "list_prior", None) is None:
            raise HTTPException(422, "this recogniser stores no reference samples for its list prior; run "
                                     "`sugar list-prior` on it first")
        batcher.actions = list(body.actions)
        batcher.descriptions = body.descriptions
        batcher.list_prior = prior
        return {"actions": batcher.actions, "list_prior": batcher.list_prior}

    @v1.post(
        "/recognize",
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
        """Upload a skeleton file or a video (multipart field `file`, optional `format`; `video` for a video
        with an unusual name) or post JSON joints."""
        with admission.enter():
            ctype = request.headers.get("content-type", "")
            if ctype.startswith("multipart/form-data"):
                kind, (filename, content, fmt) = "upload", await _read_upload(request)
            elif ctype.startswith("application/json"):
                kind, filename, content, fmt = "json", None, await _read_body(request), None
            else:
                raise HTTPException(415, "send multipart/form-data with a 'file' field, or application/json")
            assert budget is not None, "the app was not started"
            try:
                async with budget.reserve(len(content) * limits.decode_factor):
                    if kind == "upload" and is_video_upload(filename, fmt):
                        if pose is None:
                            raise HTTPException(422, no_video)
                        keep = limits.video_frames_drawn if render else 0
                        samples = await decoders.run(decode_video, filename, content, model, pose, keep)
                    else:
                        samples = await decoders.run(decode, kind, content, model, filename, fmt)
            except InputError as exc:
                raise HTTPException(exc.status, exc.message) from None
            del content
            try:
                results = await batcher.submit(samples)
            except SugarError as exc:
                raise HTTPException(422, str(exc)) from None
            out = []
            for k, (sample, result) in enumerate(zip(samples, results, strict=True)):
                item = {"name": sample.name, **_jsonable(result)}
                if "pose" in sample.meta:  # a video: what the estimator saw (frames, confidence, filled frames)
                    item["pose"] = sample.meta["pose"]
                if render and k < limits.max_rendered:
                    item["animation"] = await anyio.to_thread.run_sync(
                        animation_data_url, sample, recognizer.layout, result, limiter=renders)
                out.append(item)
            return {"results": out}

    app.include_router(v1)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return (resources.files("sugar.web") / "index.html").read_text()

    return app


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf as null (a JSON encoder refuses them)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
