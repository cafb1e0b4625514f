"""Test inputs for the pose front end: a real photograph of a person that a registry package ships
(scikit-image's `astronaut.png`, a dev dependency), turned into short videos by shifting it frame by frame."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sugar.pose import available


def photo() -> Image.Image:
    """scikit-image's astronaut (Eileen Collins, 512 x 512, facing the camera, head to waist)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("scikit-image (a dev dependency) is not installed: run `make install`")
    return Image.open(Path(spec.submodule_search_locations[0]) / "data" / "astronaut.png").convert("RGB")


def frames(n: int = 12, shift: int = 4, size: tuple[int, int] = (640, 512), blank: tuple[int, ...] = ()) -> list:
    """n frames of the photo on a wider grey canvas, moving right by `shift` pixels a frame; frames listed in
    `blank` show the empty canvas (no person)."""
    person, out = photo(), []
    for t in range(n):
        canvas = Image.new("RGB", size, (90, 90, 90))
        if t not in blank:
            canvas.paste(person, (t * shift, 0))
        out.append(canvas)
    return out


def write_video(path: Path, images: list, fps: int = 15) -> Path:
    """An H.264 mp4 of the images (PyAV)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = images[0].width, images[0].height, "yuv420p"
        for im in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(im), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


needs_pose = pytest.mark.skipif(not available() and not __import__("os").environ.get("CI"),
                                reason="the pose extra is not installed here (make install installs it)")
