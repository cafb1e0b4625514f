"""Frames per second of pose extraction (sugar.pose) on this CPU, by setting, and where the time goes.

The input is a 1280 x 720, 30 fps H.264 video of a real photograph of a person (scikit-image's astronaut,
a dev dependency) moving across the frame, or any video given with --video. Each setting runs the whole
front end (decode, detector, landmark model, tracking, gap filling); the components are timed apart.

    PYTHONPATH=src python benchmarks/pose_speed.py [--frames 150] [--threads 2] [--video clip.mp4]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def make_video(path: Path, frames: int) -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs scikit-image (make install) for its astronaut.png, or pass --video")
    person = Image.open(Path(spec.submodule_search_locations[0]) / "data" / "astronaut.png").convert("RGB")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for t in range(frames):
            canvas = Image.new("RGB", (1280, 720), (90, 90, 90))
            canvas.paste(person, (100 + 4 * t, 100))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pose_speed.json"))
    args = ap.parse_args()

    from sugar.pose import PoseEstimator, PoseOptions
    from sugar.pose.frames import open_frames
    from sugar.pose.geometry import roi_from_points

    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or make_video(Path(tmp) / "astronaut.mp4", args.frames)
        t0 = time.perf_counter()
        est = PoseEstimator(args.threads)
        load_s = time.perf_counter() - t0
        source = open_frames(video)
        images = list(source)
        n = len(images)
        decode = timed(lambda: sum(1 for _ in open_frames(video)), args.repeats)
        settings = {
            "one person tracked (detector on the first frame only)": PoseOptions(max_persons=1),
            "up to two people (detector every 10 frames looking for the second)": PoseOptions(max_persons=2),
            "one person, thinned to 15 fps": PoseOptions(max_persons=1, fps=15),
            "one person, frames kept for --render": PoseOptions(max_persons=1, keep_frames=120),
        }
        rows = {}
        for name, opts in settings.items():
            est.estimate(video, opts)  # warm-up
            runs = timed(lambda o=opts: est.estimate(video, o), args.repeats)
            done = est.estimate(video, opts).num_frames
            best = statistics.median(runs)
            rows[name] = {"frames_processed": done, "median_s": best, "frames_per_s": done / best,
                          "video_seconds_per_s": n / source.fps / best}
        image = images[0]
        detect = timed(lambda: est.detector.detect(image), 20)
        _, roi = est.detector.detect(image)[0]
        landmarks = timed(lambda: est.landmarker.landmarks(image, roi), 20)
        found = est.landmarker.landmarks(image, roi)
        assert roi_from_points(found.image[23, :2], found.image[11, :2]).size > 0
    result = {
        "video": str(args.video) if args.video else f"astronaut moving, 1280x720, 30 fps, {n} frames",
        "threads": args.threads,
        "settings": rows,
        "components_ms": {"load_models": load_s * 1000, "decode_per_frame": statistics.median(decode) / n * 1000,
                          "detector": statistics.median(detect) * 1000,
                          "landmark_model_with_crop": statistics.median(landmarks) * 1000},
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1min": os.getloadavg()[0]},  # other work on the machine slows every number
        "command": "PYTHONPATH=src python benchmarks/pose_speed.py",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
