"""The pose front end: a video, a folder of frames or an image in, a skeleton sequence out (blazepose33).

    estimate(path, options) -> PoseResult        people tracked through the frames; .sample() is a Sample
    read_input(path, format=None, pose=None)     videos and frames through the estimator, skeleton files
                                                 through sugar.skeleton.readers: one entry for every command
Needs the optional `pose` extra (see sugar.pose.runtime); nothing else in the project imports this package.
"""

from __future__ import annotations

from sugar.pose.estimate import LAYOUT, PoseEstimator, PoseOptions, PoseResult
from sugar.pose.frames import InputTooLong, Limits, is_video_input
from sugar.pose.inputs import VIDEO_FORMAT, estimator, read_input
from sugar.pose.runtime import PoseUnavailable, available

__all__ = ["LAYOUT", "VIDEO_FORMAT", "InputTooLong", "Limits", "PoseEstimator", "PoseOptions", "PoseResult",
           "PoseUnavailable", "available", "estimator", "is_video_input", "read_input"]
