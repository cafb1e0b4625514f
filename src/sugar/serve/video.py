"""Uploaded videos: poses estimated in a decoding worker process, then checked like any uploaded skeleton.

A video is the least trusted input the service takes (FFmpeg parses it), so it is decoded where skeleton files
are: in a worker process (sugar.serve.workers), never in the server. Each worker loads the pose estimator once
(sugar.pose, 0.2 s). The video's header is checked against the service's duration and frame bounds before
a frame is decoded (413); it is thinned to a frame rate; frames are kept for the animation only when the
client asked for one. The skeletons are converted to the model's layout by joint name (BlazePose lacks
Kinect's spine, hip centre and the like: computed from their neighbours, docs/video.md).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from sugar.errors import DataError, LayoutError
from sugar.pose import (
    VIDEO_FORMAT,
    InputTooLong,
    Limits,
    PoseOptions,
    PoseUnavailable,
    available,
    estimator,
    is_video_input,
)
from sugar.skeleton.layouts import convert_joints
from sugar.skeleton.sample import Sample
from sugar.skeleton.untrusted import InputError, ModelInput, check_sample, safe_filename, unprocessable


def video_options(recognizer: Any, limits: Any) -> tuple[PoseOptions | None, str]:
    """How this service reads videos for this recogniser (its processor's coordinates and persons; 3-D and one
    person without one), or None and the reason a video upload is refused."""
    if not available():
        return None, "this service cannot read videos: the pose extra is not installed on the server"
    processor = getattr(recognizer, "processor", None)
    dims = int(getattr(processor, "dims", 3))
    persons = int(getattr(getattr(processor, "settings", None), "max_persons", 1) or 1)
    try:
        return PoseOptions.for_layout(recognizer.layout, dims, persons, fps=limits.video_fps,
                                      limits=Limits(limits.max_video_seconds, limits.max_video_frames)), ""
    except LayoutError as exc:
        return None, str(exc)


def is_video_upload(filename: str | None, fmt: str | None) -> bool:
    """A video (or image) by its name, or any upload sent with format "video"."""
    return fmt == VIDEO_FORMAT or (fmt is None and is_video_input(Path(safe_filename(filename))))


def decode_video(filename: str | None, content: bytes, model: ModelInput, pose: PoseOptions,
                 keep_frames: int = 0) -> list[Sample]:
    """The upload's skeletons as one checked sample in the model's layout; meta["pose"] reports what the
    estimator saw and, when keep_frames > 0, meta["video"] holds the frames to draw on. InputError otherwise."""
    name = safe_filename(filename)
    opts = replace(pose, keep_frames=keep_frames)
    with tempfile.TemporaryDirectory(prefix="sugar-video-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        try:
            result = estimator(opts.threads).estimate(path, opts, name=name)
        except InputTooLong as exc:
            raise InputError(413, f"{name}: {exc.problem}") from None
        except (DataError, PoseUnavailable) as exc:
            raise unprocessable(f"{name}: {getattr(exc, 'problem', exc)}") from None
        except MemoryError:
            raise InputError(413, f"{name}: the video is too large to read") from None
    sample = result.sample(opts.coords)
    sample.name = Path(name).stem
    sample.joints = convert_joints(sample.joints, sample.meta["layout"], model.layout)
    sample.meta["layout"] = model.layout.name
    if not keep_frames:
        sample.meta.pop("video", None)  # nothing to draw: do not send the result back from the worker
    return [check_sample(sample, model, name)]
