"""Readers on files the tests write: PKU-MMD, Toyota, PYSKL (and a malicious pickle), CTR-GCN npz, generic."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from readerfiles import npz_file, openpose_frames, pku_files, pyskl_file, toyota_file
from sugar.errors import DataError
from sugar.skeleton.folders import scan
from sugar.skeleton.layouts import get_layout
from sugar.skeleton.readers import FORMATS, detect_format, read_file, write_generic
from sugar.skeleton.sample import Sample


def test_pku_mmd_segments(tmp_path: Path):
    path = pku_files(tmp_path)
    assert detect_format(path) == "pku-mmd"
    segs = read_file(path)
    assert [s.name for s in segs] == ["0002-L_01", "0002-L_02"]
    assert [s.label for s in segs] == [2, 50]
    assert segs[0].joints.shape == (1, 20, 25, 3)  # body 2 is all zero: dropped
    assert segs[1].joints.shape == (1, 35, 25, 3)  # 25..60 clipped to the 60-frame file
    assert segs[0].meta["layout"] == "ntu25" and segs[0].meta["video"] == "0002-L"
    # the label file is not a skeleton file; scanning the root reads only the skeleton file
    result = scan(tmp_path)
    assert result.format == "pku-mmd" and len(result.samples) == 2 and result.bad == []
    with pytest.raises(DataError, match="label file"):
        read_file(tmp_path / "Label" / "0002-L.txt", format="pku-mmd")


def test_pku_mmd_needs_label_file(tmp_path: Path):
    path = pku_files(tmp_path)
    (tmp_path / "Label" / "0002-L.txt").unlink()
    with pytest.raises(DataError, match="no PKU-MMD label file"):
        read_file(path)


def test_pku_mmd_bad_label_line(tmp_path: Path):
    path = pku_files(tmp_path)
    (tmp_path / "Label" / "0002-L.txt").write_text("3,0,20\n")
    with pytest.raises(DataError, match="line 1"):
        read_file(path)


def test_toyota(tmp_path: Path):
    path = toyota_file(tmp_path)
    assert detect_format(path) == "toyota"
    [s] = read_file(path)
    assert s.name == "Drink.Fromcup_p03_r01_v05_c05" and s.label == 8
    assert s.joints.shape == (1, 12, 13, 3) and not s.joints[0, 3].any()
    assert s.meta["layout"] == "lcrnet13" and get_layout(s.meta["layout"]).num_joints == 13
    assert s.meta["subject"] == 3 and s.meta["camera"] == 5
    doc = json.loads(path.read_text())
    flat = doc["frames"][0][0]["pose3d"]
    assert s.joints[0, 0, 4].tolist() == pytest.approx([flat[4], flat[13 + 4], flat[26 + 4]])  # coordinate-major


def test_toyota_wrong_joint_count(tmp_path: Path):
    path = toyota_file(tmp_path)
    doc = json.loads(path.read_text())
    doc["frames"][1][0]["pose3d"] = doc["frames"][1][0]["pose3d"][:36]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"frames\[1\]"):
        read_file(path)


def test_toyota_dataset(tmp_path: Path):
    from sugar.skeleton import datasets

    for i, (action, subject, cam) in enumerate([("Walk", 3, 1), ("Sitdown", 2, 1), ("Walk", 4, 5), ("Getup", 5, 2)]):
        toyota_file(tmp_path, f"{action}_p{subject:02d}_r00_v01_c{cam:02d}_pose3d.json", seed=i)
    train = datasets.open_dataset("toyota", root=tmp_path, protocol="cs", split="trainval")
    assert train.layout.name == "lcrnet13" and sorted(train.names) == ["Walk_p03_r00_v01_c01", "Walk_p04_r00_v01_c05"]
    assert train.bad == []


def test_pyskl_2d_and_3d(tmp_path: Path):
    path = pyskl_file(tmp_path)
    assert detect_format(path) == "pyskl"
    samples = read_file(path)
    assert [s.name for s in samples] == ["clip0", "clip1", "clip2", "clip3"]
    assert samples[0].joints.shape[::2] == (2, 17) and samples[0].joints.shape[3] == 3
    assert samples[0].meta["split"] == "xsub_train" and samples[3].meta["split"] == "xsub_val"
    assert [s.label for s in samples] == [0, 1, 2, 0]
    res = scan(path)
    assert res.layout == "coco17" and len(res.samples) == 4
    samples3d = read_file(pyskl_file(tmp_path, two_d=False))
    assert samples3d[0].joints.shape[2:] == (25, 3) and samples3d[2].label == 2


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pyskl_refuses_code(tmp_path: Path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"annotations": [_Evil()]}))
    with pytest.raises(DataError, match=r"refused to unpickle global (posix|os|nt)\.system"):
        read_file(path)
    path.write_bytes(pickle.dumps({"annotations": [{"keypoint": eval}]}))
    with pytest.raises(DataError, match=r"builtins\.eval"):
        read_file(path)


def test_ctrgcn_npz(tmp_path: Path):
    path = npz_file(tmp_path)
    assert detect_format(path) == "ctrgcn-npz"
    samples = read_file(path)
    assert [s.name for s in samples] == ["train_000000", "train_000001", "test_000000"]
    assert [s.label for s in samples] == [1, 4, 2]
    assert [s.joints.shape for s in samples] == [(1, 10, 25, 3), (1, 11, 25, 3), (1, 12, 25, 3)]
    assert samples[2].meta["split"] == "test"


def test_ctrgcn_npz_refuses_object_arrays(tmp_path: Path):
    path = tmp_path / "obj.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1))
    with pytest.raises(DataError):
        read_file(path)


def _samples() -> list[Sample]:
    r = np.random.default_rng(0)
    return [Sample(f"s/{i}", r.normal(size=(1 + i % 2, 5 + i, 25, 3)).astype(np.float32), i % 3, {"split": "train"})
            for i in range(5)]


def test_generic_round_trip(tmp_path: Path):
    samples = _samples()
    out = write_generic(samples, "ntu25", ["a", "b", "c"], ["train", "train", "test", "test", ""], tmp_path / "g")
    assert detect_format(out) == "generic"
    assert (out / "manifest.csv").read_text().splitlines()[0] == "name,label,split,path"
    back = read_file(out)
    assert [s.name for s in back] == [s.name for s in samples]
    for a, b in zip(samples, back, strict=True):
        np.testing.assert_array_equal(a.joints, b.joints)
        assert a.label == b.label and b.meta["layout"] == "ntu25"
    assert [s.meta["split"] for s in back] == ["train", "train", "test", "test", ""]
    res = scan(out)
    assert res.format == "generic" and res.layout == "ntu25" and res.classes == ["a", "b", "c"]
    with pytest.raises(DataError, match="already holds"):
        write_generic(samples, "ntu25", ["a", "b", "c"], None, out)


def test_generic_bad_sample_is_reported(tmp_path: Path):
    out = write_generic(_samples(), "ntu25", ["a", "b", "c"], None, tmp_path / "g")
    np.save(out / "samples" / "s_1.npy", np.full((1, 4, 25, 3), np.nan, dtype=np.float32))
    np.save(out / "samples" / "s_2.npy", np.ones((1, 4, 20, 3), dtype=np.float32))
    res = scan(out)
    assert len(res.samples) == 3
    reasons = sorted(r for _, r in res.bad)
    assert "NaN" in reasons[1] and "20 joints" in reasons[0]
    with pytest.raises(DataError):
        read_file(out)


def test_generic_rejects_escaping_paths(tmp_path: Path):
    out = write_generic(_samples()[:1], "ntu25", ["a"], None, tmp_path / "g")
    (out / "manifest.csv").write_text("name,label,split,path\nx,a,train,../../etc/passwd\n")
    res = scan(out)
    assert res.samples == [] and "leaves the dataset folder" in res.bad[0][1]


def test_single_npy(tmp_path: Path):
    arr = np.random.default_rng(1).normal(size=(8, 17, 3)).astype(np.float32)
    np.save(tmp_path / "one.npy", arr)
    [s] = read_file(tmp_path / "one.npy")
    assert s.joints.shape == (1, 8, 17, 3) and s.name == "one"
    np.save(tmp_path / "bad.npy", np.zeros((8, 17)))
    with pytest.raises(DataError, match="shape"):
        read_file(tmp_path / "bad.npy")


def test_detect_format_unknown(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello world\n")
    with pytest.raises(DataError, match="cannot tell"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="unknown format"):
        read_file(tmp_path / "notes.txt", format="nope")
    assert set(FORMATS) >= {"ntu", "nw-ucla", "msr", "pku-mmd", "toyota", "openpose", "pyskl", "ctrgcn-npz"}


def test_pyskl_pickle_as_ntu_root(tmp_path: Path):
    """open_dataset accepts one container file as root: a PYSKL pickle whose samples have NTU names."""
    from sugar.skeleton.datasets import open_dataset

    r = np.random.default_rng(0)
    names = [f"S001C00{c}P00{p}R001A00{a}" for c in (1, 2) for p in (1, 3) for a in (1, 2)]
    anns = [{"frame_dir": n, "label": int(n[-1]) - 1, "keypoint": r.normal(size=(1, 8, 25, 3)).astype(np.float32)}
            for n in names]
    path = tmp_path / "ntu60_3d.pkl"
    path.write_bytes(pickle.dumps({"split": {}, "annotations": anns}))
    test = open_dataset("ntu60", root=path, protocol="xsub", split="test")
    assert sorted(test.names) == sorted(n for n in names if "P003" in n) and test.bad == []
    assert [int(n[-1]) - 1 for n in test.names] == test.labels.tolist()


def test_pku_mmd_dataset(tmp_path: Path):
    """open_dataset reads PKU-MMD skeleton files only (label files beside them are not samples)."""
    from sugar.skeleton import datasets

    for i, video in enumerate(["0002-L", "0002-M", "0291-L"]):
        pku_files(tmp_path, video, seed=i)
    test = datasets.open_dataset("pku-mmd", root=tmp_path, protocol="xview", split="test")
    train = datasets.open_dataset("pku-mmd", root=tmp_path, protocol="xview", split="trainval")
    assert sorted(test.names) == ["0002-L_01", "0002-L_02", "0291-L_01", "0291-L_02"]
    assert sorted(train.names) == ["0002-M_01", "0002-M_02"] and train.bad == []
    assert sorted(test.labels.tolist()) == [2, 2, 50, 50]


@pytest.mark.parametrize("joints", [25, 18])
def test_openpose_frames_folder(tmp_path: Path, joints: int):
    folder = openpose_frames(tmp_path / "clip", frames=12, joints=joints)
    assert detect_format(folder) == "openpose-frames"
    assert detect_format(folder / "clip_000000000004_keypoints.json") == "openpose-frames"
    [s] = read_file(folder)
    assert s.name == "clip" and s.label is None and s.joints.shape == (2, 12, 18, 3)
    assert s.meta["layout"] == "openpose18"
    src = np.array(json.loads((folder / "clip_000000000002_keypoints.json").read_text())["people"][1]
                   ["pose_keypoints_2d"]).reshape(joints, 3)
    if joints == 25:  # BODY_25 -> openpose18: mid-hip (8) and the feet (19-24) dropped
        src = src[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]]
    np.testing.assert_allclose(s.joints[0, 2], src, rtol=1e-6)  # the higher-scored person fills slot 0
    assert not s.joints[:, 0].any() and not s.joints[1, 1].any()  # nobody in frame 0, one person in frame 1


def test_openpose_frames_order_top_m_and_scan(tmp_path: Path):
    folder = tmp_path / "root" / "video"
    folder.mkdir(parents=True)
    for t in (10, 2, 1):  # frame numbers, not name order (10 < 2 as text)
        people = [{"pose_keypoints_2d": [float(t)] * 2 + [0.1 * k + 0.1] + [1.0] * 51} for k in range(3)]
        (folder / f"v_{t}_keypoints.json").write_text(json.dumps({"people": people}))
    [s] = read_file(folder)
    assert s.joints[0, :, 0, 0].tolist() == [1, 2, 10]
    np.testing.assert_allclose(s.joints[:, 0, 0, 2], [0.3, 0.2], rtol=1e-6)  # top 2 of 3 by mean score
    openpose_frames(tmp_path / "root" / "other", frames=5)
    result = scan(tmp_path / "root")
    assert result.format == "openpose-frames" and result.layout == "openpose18" and not result.bad
    assert sorted(x.name for x in result.samples) == ["other", "video"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"people": [{"pose_keypoints_2d": [1.0] * 60}]}, "60 keypoint values is neither BODY_25"),
    ({"people": [{"face_keypoints_2d": [1.0] * 54}]}, "no 'pose_keypoints_2d'"),
    ({"persons": []}, "no 'people' list"),
    ({"people": [{"pose_keypoints_2d": ["x"] * 54}]}, "regular array of numbers"),
])  # fmt: skip
def test_openpose_frames_errors(tmp_path: Path, doc: dict, message: str):
    folder = openpose_frames(tmp_path / "clip", frames=4)
    bad = folder / "clip_000000000003_keypoints.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message) as info:
        read_file(folder)
    assert bad.name in str(info.value)


def test_openpose_frames_nobody(tmp_path: Path):
    folder = openpose_frames(tmp_path / "empty", frames=1)
    with pytest.raises(DataError, match="no person detected in any of its 1 frames"):
        read_file(folder)
