"""Readers on the real files in ../shared/data: exact frame counts, labels, ids and the known bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sugar.errors import DataError
from sugar.skeleton.folders import scan
from sugar.skeleton.readers import detect_format, ntu, read_file


def test_ntu_all_samples_exact_frames(shared_data: Path):
    files = sorted((shared_data / "ntu_rgbd" / "samples").glob("*.skeleton"))
    assert len(files) == 15
    for f in files:
        expected = int(f.read_text().split(maxsplit=1)[0])
        [s] = read_file(f)
        assert detect_format(f) == "ntu"
        assert s.joints.dtype == np.float32 and s.joints.shape[1:] == (expected, 25, 3)
        assert s.name == f.stem and s.label == int(f.stem[-3:]) - 1
        assert s.meta["action"] == int(f.stem[-3:]) and s.meta["layout"] == "ntu25"
        assert 1 <= s.num_persons <= 2
        # metres, camera in front: depth between 0.5 and 6 m wherever a person is present
        z = s.joints[..., 2][s.joints[..., 2] != 0]
        assert z.min() > 0.5 and z.max() < 6.0


def test_ntu_known_files(shared_data: Path):
    samples = shared_data / "ntu_rgbd" / "samples"
    [first] = read_file(samples / "S001C001P001R001A001.skeleton")
    assert first.num_frames == 103 and first.num_persons == 1 and first.label == 0
    assert first.meta.items() >= {"setup": 1, "camera": 1, "performer": 1, "replication": 1, "action": 1}.items()
    assert first.joints[0, 0, 0].tolist() == pytest.approx([0.2181153, 0.1725972, 3.785547])
    [pair] = read_file(samples / "S001C003P008R002A058.skeleton")
    assert pair.num_persons == 2 and pair.label == 57
    assert pair.joints[0].any() and pair.joints[1].any()


def test_ntu_missing_lists(shared_data: Path):
    meta = shared_data / "ntu_rgbd" / "meta"
    ntu60 = ntu.read_missing_list(meta / "official_NTU_RGBD_samples_with_missing_skeletons.txt")
    ntu120 = ntu.read_missing_list(meta / "official_NTU_RGBD120_samples_with_missing_skeletons.txt")
    assert len(ntu60) == 302 and len(ntu120) == 535 and "S001C002P005R002A008" in ntu60


def test_nw_ucla_file(shared_data: Path):
    f = shared_data / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json"
    [s] = read_file(f)
    assert detect_format(f) == "nw-ucla"
    assert s.name == "a01_s01_e00_v01" and s.label == 0 and s.joints.shape[0] == 1 and s.joints.shape[2:] == (20, 3)
    assert s.meta.items() >= {"action": 1, "subject": 1, "environment": 0, "view": 1}.items()
    assert s.joints[0, 0, 0].tolist() == pytest.approx([-0.619699, 0.328046, 3.18186])


def test_msr_file_and_all_zero_file(shared_data: Path):
    folder = shared_data / "msr_action3d" / "real_world_coordinates"
    f = folder / "a01_s01_e01_skeleton3D.txt"
    [s] = read_file(f)
    rows = len(f.read_text().split("\n")) - 1
    assert s.name == "a01_s01_e01" and s.label == 0 and s.joints.shape == (1, rows // 20, 20, 3)
    assert s.meta.items() >= {"action": 1, "subject": 1, "episode": 1}.items()
    assert s.joints[0, 0, 0].tolist() == pytest.approx([-0.371736, 0.371031, 2.674849])
    with pytest.raises(DataError, match=r"a13_s09_e02.*all coordinates are zero"):
        read_file(folder / "a13_s09_e02_skeleton3D.txt")


def test_kinetics_files(shared_data: Path):
    files = sorted((shared_data / "kinetics_skeleton" / "samples").glob("*.json"))
    assert len(files) == 5
    for f in files:
        assert detect_format(f) == "openpose"
        [s] = read_file(f)
        assert s.joints.shape[2:] == (18, 3) and 1 <= s.num_persons <= 2
        assert s.label is not None and s.meta["label_name"]
        scores = s.joints[..., 2]
        assert scores.min() >= 0 and scores.max() <= 1
        if s.num_persons == 2:  # ranked by mean score
            assert scores[0].mean() >= scores[1].mean()


@pytest.mark.slow
def test_scan_whole_nw_ucla_and_msr(shared_data: Path):
    ucla = scan(shared_data / "nw_ucla")
    assert ucla.format == "nw-ucla" and len(ucla.samples) == 1484 and ucla.bad == []
    assert ucla.layout == "kinect20" and len({s.label for s in ucla.samples}) == 10
    msr = scan(shared_data / "msr_action3d")
    assert len(msr.samples) == 566 and len(msr.bad) == 1 and "a13_s09_e02" in msr.bad[0][0]
    assert msr.layout == "msr20" and len(msr.classes) == 20
