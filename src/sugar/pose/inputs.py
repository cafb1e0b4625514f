"""One entry for every command that reads a user's input: videos and frames go through the pose estimator,
skeleton files through the readers, so `sugar predict clip.mp4` and `sugar predict clip.skeleton` are alike."""

from __future__ import annotations

import threading
from pathlib import Path

from sugar.pose.estimate import PoseEstimator, PoseOptions
from sugar.pose.frames import is_video_input
from sugar.skeleton.readers import guess_format, read_file
from sugar.skeleton.sample import Sample

VIDEO_FORMAT = "video"  # the `format` name that forces the pose front end (frames folders, odd suffixes)

_lock = threading.Lock()
_estimators: dict[int, PoseEstimator] = {}


def estimator(threads: int = 2) -> PoseEstimator:
    """The process's estimator (the networks load once, ~0.2 s)."""
    with _lock:
        if threads not in _estimators:
            _estimators[threads] = PoseEstimator(threads)
        return _estimators[threads]


def read_input(path: str | Path, format: str | None = None, pose: PoseOptions | None = None,
               progress: bool = False) -> list[Sample]:
    """The samples of a skeleton file, a video, a folder of frames or an image (format "video" forces the
    pose front end; otherwise videos and images are recognised by suffix, everything else is a skeleton file)."""
    p = Path(path)
    if format == VIDEO_FORMAT or (format is None and is_video_input(p) and not _skeleton_folder(p)):
        opts = pose or PoseOptions()
        result = estimator(opts.threads).estimate(p, opts, progress=progress)
        return [result.sample(opts.coords)]
    return read_file(p, format=format)


def _skeleton_folder(path: Path) -> bool:
    return path.is_dir() and guess_format(path) is not None
