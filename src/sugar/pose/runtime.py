"""Where the pose models come from: MediaPipe's BlazePose weights and a TFLite interpreter.

The legacy MediaPipe Pose solution's weights (`pose_detection.tflite`, `pose_landmark_full.tflite`) ship inside
the `mediapipe` 0.10.x wheel; its Python package pins numpy and protobuf versions that clash with the core, so
it is installed with `--no-deps` and never imported: the files are found with importlib's spec. The models run
in `ai-edge-litert` (LiteRT, the TFLite interpreter). Both make up the optional `pose` extra; without them
every video entry point fails with one line saying how to install it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from sugar.errors import SugarError

DETECTOR_FILE = "modules/pose_detection/pose_detection.tflite"
LANDMARK_FILE = "modules/pose_landmark/pose_landmark_full.tflite"
INSTALL_HINT = ("install the pose extra: `make install`, or `pip install ai-edge-litert` and "
                "`pip install --no-deps mediapipe==0.10.21` (only its model files are used)")


class PoseUnavailable(SugarError):
    """The optional pose extra (weights or interpreter) is not installed."""


def model_path(relative: str) -> Path:
    """A model file inside the installed mediapipe wheel, found without importing mediapipe."""
    spec = importlib.util.find_spec("mediapipe")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise PoseUnavailable(f"video input needs MediaPipe's BlazePose weights ({Path(relative).name}); {INSTALL_HINT}")


def interpreter(path: Path, threads: int) -> Any:
    """A LiteRT interpreter with its tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # optional extra: only video input needs it
    except ImportError:
        raise PoseUnavailable(f"video input needs the LiteRT interpreter (ai-edge-litert); {INSTALL_HINT}") from None
    try:
        it = Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise PoseUnavailable(f"{path}: cannot load the pose model ({exc}); reinstall the pose extra") from None
    return it


def available() -> bool:
    """True when video input works here (for skipping tests and telling users up front)."""
    try:
        model_path(DETECTOR_FILE)
        model_path(LANDMARK_FILE)
    except PoseUnavailable:
        return False
    return importlib.util.find_spec("ai_edge_litert") is not None
