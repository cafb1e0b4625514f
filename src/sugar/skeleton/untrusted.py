"""Skeletons from untrusted clients: a JSON body or an uploaded file -> samples a model can take, or an
InputError with the HTTP status a service should answer and one clear message.

Nothing in the input is trusted: a layout is a built-in name or an inline object, never a path on this
machine; an uploaded file is read alone (nothing beside it is looked at) under a decoded-size bound; every
sample is checked against the model (joints, channels, frames, magnitude) before it may join a batch, so
no request can fail a batch it shares with others. The service (sugar.serve) runs this in worker processes;
it knows nothing of HTTP beyond the status numbers.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import LayoutError, SugarError
from sugar.skeleton.layouts import Layout, get_layout, joint_mapping, list_layouts
from sugar.skeleton.readers import FORMATS, read_file
from sugar.skeleton.sample import Sample

MAX_NAME = 200  # characters of a sample name echoed back
MAX_COORD = 1e5  # |coordinate| in metres or pixels; beyond it the model's arithmetic overflows
MAX_LAYOUT_JOINTS = 1000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelInput:
    """What a sample must be for the served model: its layout, its channels per joint (None = 2 or 3) and
    the bounds the service sets on frames and samples per request."""

    layout: Layout
    channels: int | None
    max_frames: int
    max_samples: int
    max_decoded_bytes: int


class InputError(Exception):
    """What is wrong with a client's input, and the HTTP status that says so (413 too large, 422 unusable)."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message)  # args survive pickling out of a worker process
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


def unprocessable(message: str) -> InputError:
    return InputError(422, message)


# ------------------------------------------------------------------ layouts from clients

def client_layout(value: Any) -> Layout:
    """A built-in layout by name or a layout object sent inline; a string is never opened as a path."""
    if isinstance(value, str):
        if value not in list_layouts():
            raise unprocessable(f"unknown layout {value[:60]!r}; built-in layouts: {', '.join(list_layouts())}, "
                                "or send the layout itself as an object (the fields of layout.json)")
        return get_layout(value)
    if isinstance(value, dict):
        joints = value.get("joints")
        if isinstance(joints, list) and len(joints) > MAX_LAYOUT_JOINTS:
            raise unprocessable(f"layout has {len(joints)} joints (limit {MAX_LAYOUT_JOINTS})")
        try:
            return Layout.from_dict(value, source="request layout")
        except LayoutError as exc:
            raise unprocessable(str(exc)) from None
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
            raise unprocessable(f"malformed layout object ({type(exc).__name__})") from None
    raise unprocessable("layout must be a built-in layout name or a layout object")


def to_model_layout(joints: np.ndarray, layout: Layout, model: Layout) -> np.ndarray:
    """joints [..., V, C] in `layout` as the model's joints (by joint name), or 422 saying why not."""
    if layout.joints == model.joints:
        return joints
    try:
        return np.ascontiguousarray(joints[..., joint_mapping(layout, model), :])
    except LayoutError as exc:
        raise unprocessable(f"layout {layout.name!r} does not match the model's layout {model.name!r} "
                            f"({exc})") from None


# ------------------------------------------------------------------ checks every sample passes

def check_sample(sample: Sample, model: ModelInput, source: str) -> Sample:
    """The sample in the model's layout, validated: 4-D, joints, channels, frames, finite and bounded."""
    named = sample.meta.get("layout")
    if isinstance(named, str) and named != model.layout.name and named in list_layouts():
        sample.joints = to_model_layout(sample.joints, get_layout(named), model.layout)
        sample.meta["layout"] = model.layout.name
    j = sample.joints
    if j.ndim == 4 and j.shape[1] > model.max_frames:
        raise InputError(413, f"{source}: sequence too long: {j.shape[1]} frames (limit {model.max_frames})")
    try:
        sample.validate(num_joints=model.layout.num_joints, source=source)
    except SugarError as exc:
        raise unprocessable(str(exc)) from None
    if model.channels is not None and sample.joints.shape[-1] != model.channels:
        raise unprocessable(f"{source}: the model takes {model.channels} values per joint, got "
                            f"{sample.joints.shape[-1]}")
    if np.abs(sample.joints).max() > MAX_COORD:
        raise unprocessable(f"{source}: coordinates beyond {MAX_COORD:g} (expected metres or pixels)")
    sample.name = str(sample.name)[:MAX_NAME]
    return sample


def check_count(samples: list[Sample], model: ModelInput, source: str) -> list[Sample]:
    if not samples:
        raise unprocessable(f"{source}: no skeleton sequence found")
    if len(samples) > model.max_samples:
        raise InputError(413, f"{source}: {len(samples)} samples in one request (limit {model.max_samples})")
    return samples


# ------------------------------------------------------------------ JSON bodies

def samples_from_json(body: bytes, model: ModelInput) -> list[Sample]:
    """`{"layout": name | object, "joints": [T, V, C] | [M, T, V, C], "name": "..."}` as one checked sample."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise unprocessable("invalid JSON body: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, >4300-digit integers, bad UTF-8
        raise unprocessable(f"invalid JSON body: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise unprocessable("the JSON body must be an object with 'layout' and 'joints'")
    missing = [k for k in ("layout", "joints") if k not in doc]
    if missing:
        raise unprocessable(f"the JSON body lacks {', '.join(missing)}")
    name = doc.get("name", "request")
    if not isinstance(name, str):
        raise unprocessable("name must be a string")
    layout = client_layout(doc["layout"])
    try:
        joints = np.asarray(doc["joints"], dtype=np.float32)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise unprocessable("joints must be a rectangular nested array of numbers") from None
    if joints.ndim == 3:
        joints = joints[None]
    if joints.ndim != 4:
        raise unprocessable(f"joints must have shape [T, V, C] or [M, T, V, C], got {list(joints.shape)}")
    if joints.shape[2] != layout.num_joints:
        raise unprocessable(f"request body: expected {layout.num_joints} joints ({layout.name}), got {joints.shape[2]}")
    sample = Sample(name[:MAX_NAME], to_model_layout(joints, layout, model.layout), None,
                    {"layout": model.layout.name})
    return [check_sample(sample, model, "request body")]


# ------------------------------------------------------------------ uploaded files

def safe_filename(filename: str | None) -> str:
    """A plain file name for the temporary copy: no folders, no dot-only names, the suffix kept (it tells the
    format); the client's name is only a hint."""
    base = Path(str(filename or "")).name[:120]
    safe = _UNSAFE.sub("_", base).strip("._")
    return safe or "upload"


def samples_from_upload(filename: str | None, content: bytes, fmt: str | None, model: ModelInput) -> list[Sample]:
    """Read an uploaded file alone with the project's readers (format from `fmt` or the name) and check
    each sample against the model."""
    name = safe_filename(filename)
    if fmt is not None and fmt not in FORMATS:
        raise unprocessable(f"unknown format {fmt[:40]!r}; known: {', '.join(FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="sugar-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        try:
            samples = read_file(path, format=fmt, alone=True, max_bytes=model.max_decoded_bytes)
        except SugarError as exc:
            raise unprocessable(str(exc).replace(str(path), name)) from None
        except RecursionError:
            raise unprocessable(f"{name}: nested too deeply") from None
    check_count(samples, model, name)
    return [check_sample(s, model, name if len(samples) == 1 else f"{name}: {s.name}") for s in samples]


def decode(kind: str, content: bytes, model: ModelInput, filename: str | None = None,
           fmt: str | None = None) -> list[Sample]:
    """One request's samples: kind "json" (a JSON body) or "upload" (a file). A reader that runs out of memory
    is an InputError too (413), not a crash of whoever called."""
    try:
        if kind == "json":
            return samples_from_json(content, model)
        return samples_from_upload(filename, content, fmt, model)
    except MemoryError:
        raise InputError(413, "the input is too large to read") from None


def ready() -> bool:
    """A no-op a worker process runs once, to have imported this module before the first request."""
    return True
