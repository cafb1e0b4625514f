"""Small skeleton files in each format, written by tests (shared by the format and fuzz tests)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def pku_files(root: Path, video: str = "0002-L", frames: int = 60, seed: int = 0) -> Path:
    """PKU-MMD layout: skeleton/NNNN-V.txt (150 numbers a line, body 2 absent) + Label/NNNN-V.txt."""
    (root / "skeleton").mkdir(parents=True, exist_ok=True)
    (root / "Label").mkdir(parents=True, exist_ok=True)
    body = rng(seed).normal(0, 0.3, size=(frames, 25, 3)) + np.array([0, 0, 3])
    rows = np.concatenate([body.reshape(frames, 75), np.zeros((frames, 75))], axis=1)
    path = root / "skeleton" / f"{video}.txt"
    path.write_text("\n".join(" ".join(f"{v:.5f}" for v in row) for row in rows) + "\n")
    (root / "Label" / f"{video}.txt").write_text("3,0,20,1\n51,25,60,2\n")
    return path


def toyota_file(folder: Path, name: str = "Drink.Fromcup_p03_r01_v05_c05_pose3d.json", frames: int = 12,
                seed: int = 0) -> Path:
    """LCR-Net style: frames[t] = list of detections with coordinate-major pose3d (39) / pose2d (26)."""
    r = rng(seed)
    out = []
    for t in range(frames):
        if t == 3:
            out.append([])  # nobody detected
            continue
        xyz = r.normal(0, 0.3, size=(13, 3))
        xy = r.uniform(0, 640, size=(13, 2))
        out.append([{"pose3d": xyz.T.reshape(-1).round(5).tolist(), "pose2d": xy.T.reshape(-1).round(2).tolist(),
                     "cumscore": 3.2}])
    path = folder / name
    path.write_text(json.dumps({"K": 20, "njts": 13, "frames": out}))
    return path


def pyskl_file(folder: Path, n: int = 4, seed: int = 0, two_d: bool = True) -> Path:
    r = rng(seed)
    anns = []
    for i in range(n):
        t = int(r.integers(5, 15))
        if two_d:
            ann = {"frame_dir": f"clip{i}", "label": i % 3, "total_frames": t, "img_shape": (480, 640),
                   "keypoint": r.uniform(0, 640, size=(2, t, 17, 2)).astype(np.float32),
                   "keypoint_score": r.uniform(0, 1, size=(2, t, 17)).astype(np.float16)}
        else:
            ann = {"frame_dir": f"clip{i}", "label": np.int64(i % 3), "total_frames": t,
                   "keypoint": r.normal(size=(1, t, 25, 3)).astype(np.float32)}
        anns.append(ann)
    doc = {"split": {"xsub_train": ["clip0", "clip1"], "xsub_val": [f"clip{i}" for i in range(2, n)]},
           "annotations": anns}
    path = folder / "anno.pkl"
    path.write_bytes(pickle.dumps(doc, protocol=4))
    return path


def npz_file(folder: Path, n: int = 3, frames: int = 30, seed: int = 0) -> Path:
    """CTR-GCN style: x N x T x 150 zero-padded after each sequence's length; y one-hot."""
    r = rng(seed)
    x = np.zeros((n, frames, 150), dtype=np.float32)
    for i in range(n):
        x[i, : 10 + i, :75] = r.normal(size=(10 + i, 75))
    y = np.eye(5, dtype=np.float32)[[1, 4, 2][:n]]
    path = folder / "data.npz"
    np.savez(path, x_train=x[:2], y_train=y[:2], x_test=x[2:], y_test=y[2:])
    return path


def ntu_text(bodies: dict[str, tuple[range, np.ndarray]], frames: int) -> str:
    """A raw NTU .skeleton text. bodies: id -> (frames present, joints [len(frames), 25, 3])."""
    lines = [str(frames)]
    for t in range(frames):
        here = [(bid, arr[list(rng_).index(t)]) for bid, (rng_, arr) in bodies.items() if t in rng_]
        lines.append(str(len(here)))
        for bid, joints in here:
            lines.append(f"{bid} 0 1 1 1 1 0 0.01 0.02 2")
            lines.append("25")
            for x, y, z in joints:
                lines.append(f"{x:.6f} {y:.6f} {z:.6f} 250 180 1000 500 0.1 0.2 0.9 0.1 2")
    return "\n".join(lines) + "\n"


def upright_body(frames: int, seed: int, motion: float, width: float = 0.4, height: float = 1.6) -> np.ndarray:
    """A person-shaped point cloud (taller than wide) that moves by `motion` (std, metres)."""
    r = rng(seed)
    base = np.stack([r.uniform(-width / 2, width / 2, 25), r.uniform(-height / 2, height / 2, 25),
                     np.full(25, 3.0)], axis=1)
    drift = r.normal(0, motion, size=(frames, 1, 3))
    return base[None] + drift


def openpose_frames(folder: Path, frames: int = 6, joints: int = 25, seed: int = 0) -> Path:
    """An `openpose --write_json` folder: clip_000000000000_keypoints.json, ...; frame t holds t % 3 people
    (so frame 0 has nobody), each a flat [x, y, c] * joints list; person k of a frame has score 0.3 + 0.2 k."""
    r = rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        people = []
        for k in range(t % 3):
            kp = np.concatenate([r.uniform(0, 640, size=(joints, 2)), np.full((joints, 1), 0.3 + 0.2 * k)], axis=1)
            people.append({"person_id": [-1], "pose_keypoints_2d": kp.round(3).reshape(-1).tolist()})
        (folder / f"clip_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    return folder
