"""Named datasets: official split sizes, validation carving, class subsets and the parse-once cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sugar.errors import DataError, SugarError
from sugar.skeleton import benchmark as ds
from sugar.skeleton import datasets
from sugar.skeleton.datasets import BENCHMARKS, open_dataset

NWUCLA_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)


def _write_ucla(root: Path, action: int, subject: int, view: int, episode: int = 0, seed: int = 0) -> Path:
    name = f"a{action:02d}_s{subject:02d}_e{episode:02d}_v{view:02d}"
    rng = np.random.default_rng([seed, action, subject, view, episode])
    frames = int(rng.integers(8, 20))
    skel = rng.normal(0, 0.3, size=(frames, 20, 3)) + np.array([0, 0, 3])
    path = root / f"{name}.json"
    path.write_text(json.dumps({"file_name": name, "skeletons": skel.round(4).tolist(),
                                "label": NWUCLA_IDS.index(action) + 1}))
    return path


@pytest.fixture
def fake_ucla(tmp_path: Path) -> Path:
    """A tiny NW-UCLA-format folder: 10 actions x 3 subjects x 3 views x 2 episodes (180 files)."""
    root = tmp_path / "ucla"
    root.mkdir()
    for a in NWUCLA_IDS:
        for s in (1, 2, 3):
            for v in (1, 2, 3):
                for e in (0, 1):
                    _write_ucla(root, a, s, v, e)
    return root


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = ds._read_one

    def counting(args):
        calls.append(args[0])
        return real(args)

    monkeypatch.setattr(ds, "_read_one", counting)
    return calls


# --------------------------------------------------------------------------- real data


def test_nw_ucla_xview_split_is_the_standard_one(shared_data: Path):
    train = open_dataset("nw-ucla", split="trainval")
    test = open_dataset("nw-ucla", split="test")
    assert len(train) == 1020 and len(test) == 464
    expected = set((shared_data / "nw_ucla" / "xview_test_files.txt").read_text().split())
    assert set(test.names) == expected
    assert not set(train.names) & expected
    assert train.classes[:2] == ["pick up with one hand", "pick up with two hands"] and len(train.classes) == 10
    assert train.bad == [] and train.layout.name == "kinect20"
    s = test[0]
    assert s.joints.dtype == np.float32 and s.joints.shape[1:] == (s.num_frames, 20, 3)
    assert isinstance(s.joints.base, np.memmap) or isinstance(s.joints, np.memmap)  # a view, not a copy
    # labels agree with the json files' own 1-based labels
    for sample in test[:20]:
        raw = json.loads((shared_data / "nw_ucla" / "all_sqe" / f"{sample.name}.json").read_text())
        assert raw["label"] - 1 == sample.label


def test_msr_xsub_uses_the_557_ids_and_reports_the_empty_file(shared_data: Path):
    trainval = open_dataset("msr-action3d", split="trainval")
    test = open_dataset("msr-action3d", split="test")
    listed = set((shared_data / "msr_action3d" / "real_world_coordinates" / "files_used_in_cvpr12_paper.txt")
                 .read_text().split())
    names = {n.removesuffix("_skeleton3D") for n in trainval.names + test.names}
    assert names == listed and len(listed) == 557
    assert (len(trainval), len(test)) == (284, 273)
    assert all(int(n.split("_s")[1][:2]) % 2 == 1 for n in trainval.names)
    assert all(int(n.split("_s")[1][:2]) % 2 == 0 for n in test.names)
    assert [Path(f).name for f, _ in test.bad] == ["a13_s09_e02_skeleton3D.txt"]
    assert "zero" in test.bad[0][1]
    assert len(test.classes) == 20 and test.classes[0] == "high arm wave"


def test_msr_random_subject_split_names_its_training_subjects(shared_data: Path):
    trainval = open_dataset("msr-action3d", protocol="xsub:2,3,5,8,10", split="trainval")
    test = open_dataset("msr-action3d", protocol="xsub:2,3,5,8,10", split="test")
    subject = lambda n: int(n.split("_s")[1][:2])  # noqa: E731
    assert {subject(n) for n in trainval.names} == {2, 3, 5, 8, 10}
    assert {subject(n) for n in test.names} == {1, 4, 6, 7, 9}
    assert len(trainval) + len(test) == 557  # the common protocol's 557 ids
    with pytest.raises(SugarError, match="training subjects from 1-10"):
        open_dataset("msr-action3d", protocol="xsub:0,11", split="test")
    with pytest.raises(SugarError, match="no subject to test"):
        open_dataset("msr-action3d", protocol="xsub:" + ",".join(map(str, range(1, 11))), split="test")


def test_msr_subject_proxy_protocol_never_reads_the_official_test_subjects(shared_data: Path):
    trainval = open_dataset("msr-action3d", protocol="xsub:1,3,5,7>9", split="trainval")
    test = open_dataset("msr-action3d", protocol="xsub:1,3,5,7>9", split="test")
    subject = lambda n: int(n.split("_s")[1][:2])  # noqa: E731
    assert {subject(n) for n in trainval.names} == {1, 3, 5, 7} and {subject(n) for n in test.names} == {9}
    official = open_dataset("msr-action3d", split="trainval")
    assert len(trainval) + len(test) == len(official)  # subjects 1,3,5,7,9: the official training part
    with pytest.raises(SugarError, match="both train and test"):
        open_dataset("msr-action3d", protocol="xsub:1,3>3", split="test")
    with pytest.raises(SugarError, match="training and test subjects"):
        open_dataset("msr-action3d", protocol="xsub:1,3>", split="test")


def test_nw_ucla_view_proxy_protocol_never_reads_the_official_test_view(shared_data: Path):
    trainval = open_dataset("nw-ucla", protocol="xview:1>2", split="trainval")
    test = open_dataset("nw-ucla", protocol="xview:1>2", split="test")
    view = lambda n: int(n.split("_v")[1][:2])  # noqa: E731
    assert {view(n) for n in trainval.names} == {1} and {view(n) for n in test.names} == {2}
    official = open_dataset("nw-ucla", split="trainval")
    assert len(trainval) + len(test) == len(official)  # views 1 and 2: the official training part
    with pytest.raises(SugarError, match="views from 1-3"):
        open_dataset("nw-ucla", protocol="xview:1>4", split="test")
    with pytest.raises(SugarError, match="both train and test"):
        open_dataset("nw-ucla", protocol="xview:1,2>2", split="test")


def test_val_is_carved_from_train_seeded_and_stratified(shared_data: Path):
    trainval = open_dataset("nw-ucla", split="trainval")
    train = open_dataset("nw-ucla", split="train", seed=3)
    val = open_dataset("nw-ucla", split="val", seed=3)
    test = open_dataset("nw-ucla", split="test", seed=3)
    assert set(train.names) | set(val.names) == set(trainval.names)
    assert not set(train.names) & set(val.names)
    assert not set(val.names) & set(test.names)
    assert len(val) == pytest.approx(0.1 * len(trainval), abs=10)
    per_class_all = trainval.class_counts()
    np.testing.assert_allclose(val.class_counts(), 0.1 * per_class_all, atol=1)  # stratified
    assert open_dataset("nw-ucla", split="val", seed=3).names == val.names  # reproducible
    assert open_dataset("nw-ucla", split="val", seed=4).names != val.names  # seed matters
    assert len(open_dataset("nw-ucla", split="val", val_fraction=0.0)) == 0


def test_exclude_and_only_classes(shared_data: Path):
    unseen = ["throw", "carry"]
    seen_train = open_dataset("nw-ucla", split="train", exclude_classes=unseen)
    assert seen_train.classes == [c for c in open_dataset("nw-ucla").classes if c not in unseen]
    assert set(seen_train.labels) <= set(range(8))
    assert all(seen_train.classes[s.label] not in unseen for s in seen_train[:50])
    unseen_test = open_dataset("nw-ucla", split="test", only_classes=unseen)
    assert unseen_test.classes == unseen
    assert len(unseen_test) == sum(1 for n in open_dataset("nw-ucla", split="test").names if n[:3] in ("a11", "a12"))
    # the val part of the remaining classes does not move when classes are dropped
    full_val = open_dataset("nw-ucla", split="val")
    kept_val = open_dataset("nw-ucla", split="val", exclude_classes=unseen)
    assert set(kept_val.names) == {n for n in full_val.names if n[:3] not in ("a11", "a12")}
    with pytest.raises(SugarError, match="not classes"):
        open_dataset("nw-ucla", exclude_classes=["fly"])


# --------------------------------------------------------------------------- cache behaviour (fake data)


def test_cache_hit_miss_and_invalidation(fake_ucla: Path, count_reads: list[str]):
    first = open_dataset("nw-ucla", root=fake_ucla, split="trainval")
    assert len(count_reads) == 180 and len(first) == 120
    open_dataset("nw-ucla", root=fake_ucla, split="test")
    assert len(count_reads) == 180  # hit: nothing parsed again

    changed = fake_ucla / "a01_s01_e00_v01.json"
    before = first[first.names.index("a01_s01_e00_v01")].joints.copy()
    time.sleep(0.01)
    _write_ucla(fake_ucla, 1, 1, 1, 0, seed=99)  # new content (new size/mtime)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = open_dataset("nw-ucla", root=fake_ucla, split="trainval")
    assert len(count_reads) == 360  # miss: rebuilt
    after = again[again.names.index("a01_s01_e00_v01")].joints
    assert after.shape != before.shape or not np.allclose(after, before)

    _write_ucla(fake_ucla, 1, 4, 3)  # a new file
    test = open_dataset("nw-ucla", root=fake_ucla, split="test")
    assert len(count_reads) == 541 and "a01_s04_e00_v03" in test.names


def test_bad_file_is_reported_once_and_skipped(fake_ucla: Path, caplog: pytest.LogCaptureFixture):
    (fake_ucla / "a02_s01_e00_v03.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="sugar.data"):
        test = open_dataset("nw-ucla", root=fake_ucla, split="test")
        open_dataset("nw-ucla", root=fake_ucla, split="train")
    assert len(test) == 59 and "a02_s01_e00_v03" not in test.names
    assert [Path(f).name for f, _ in test.bad] == ["a02_s01_e00_v03.json"]
    assert sum("a02_s01_e00_v03" in r.getMessage() for r in caplog.records) == 1


_KILLED_BUILD = """
import os, signal, sys
from sugar.skeleton import cache, datasets
def die(*args):
    os.kill(os.getpid(), signal.SIGKILL)
cache.os.rename = die  # killed right before the finished cache would be moved into place
datasets.open_dataset("nw-ucla", root=sys.argv[1])
"""


def test_killed_cache_build_leaves_no_broken_cache(fake_ucla: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache_root = tmp_path / "cache"
    env = {**os.environ, "SUGAR_CACHE": str(cache_root), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_BUILD, str(fake_ucla)], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    folder = cache_root / "datasets" / "nw-ucla"
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".build-")] == []  # no usable cache
    assert any(p.name.startswith(".build-") for p in folder.iterdir())  # only a temp folder is left

    monkeypatch.setenv("SUGAR_CACHE", str(cache_root))
    d = open_dataset("nw-ucla", root=fake_ucla, split="test")
    assert len(d) == 60
    assert not any(p.name.startswith(".build-") for p in folder.iterdir())  # the dead build was cleaned


def test_samples_are_read_only_views_and_dataset_pickles_small(fake_ucla: Path):
    import pickle

    d = open_dataset("nw-ucla", root=fake_ucla, split="test")
    _ = d[0].joints.sum()  # opens the memmap
    blob = pickle.dumps(d)  # what DataLoader workers receive under spawn: no array data
    assert len(blob) < 100_000
    np.testing.assert_array_equal(pickle.loads(blob)[3].joints, d[3].joints)
    s = d[0]
    assert not s.joints.flags.writeable
    assert d[-1].name == d.names[-1]
    with pytest.raises(IndexError):
        d[len(d)]


def test_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(SugarError, match="unknown dataset"):
        open_dataset("kinetics")
    with pytest.raises(SugarError, match="no protocol"):
        open_dataset("nw-ucla", protocol="xsub")
    with pytest.raises(SugarError, match="split"):
        open_dataset("nw-ucla", split="dev")
    with pytest.raises(SugarError, match="needs root"):
        open_dataset("ntu60")
    with pytest.raises(DataError, match="not found"):
        open_dataset("ntu60", root=tmp_path / "nowhere")
    with pytest.raises(DataError, match="no ntu60 files"):
        open_dataset("ntu60", root=tmp_path)


# --------------------------------------------------------------------------- protocol rules


def test_ntu_rules():
    ntu60, ntu120 = BENCHMARKS["ntu60"], BENCHMARKS["ntu120"]
    ids = ntu60.parse_name("S001C002P003R001A058")
    assert ids == {"setup": 1, "camera": 2, "performer": 3, "replication": 1, "action": 58}
    assert ntu60.assign("xsub", ids) == "test" and ntu60.assign("xview", ids) == "train"
    assert ntu60.assign("xsub", {**ids, "performer": 38}) == "train"
    assert ntu60.assign("xview", {**ids, "camera": 1}) == "test"
    assert len(ntu60.XSUB60_TRAIN) == 20 and len(ntu120.XSUB120_TRAIN) == 53
    assert ntu120.assign("xset", {**ids, "setup": 18}) == "train"
    assert ntu120.assign("xset", {**ids, "setup": 17}) == "test"
    assert ntu60.label(ids, None) == 57 and ntu60.label({**ids, "action": 61}, None) is None


def test_ntu_skips_official_missing_skeleton_ids(shared_data: Path, tmp_path: Path):
    missing = sorted(BENCHMARKS["ntu60"].missing_ids(tmp_path))
    assert len(missing) == 302
    for name in (missing[0], "S001C001P001R001A001"):
        (tmp_path / f"{name}.skeleton").write_text("")
    files = BENCHMARKS["ntu60"].source_files(tmp_path)
    assert [f.stem for f in files] == ["S001C001P001R001A001"]
    assert len(BENCHMARKS["ntu120"].missing_ids(tmp_path)) == 535


def test_toyota_rules():
    toyota = BENCHMARKS["toyota"]
    ids = toyota.parse_name("Drink.Fromcup_p03_r01_v05_c05")
    assert ids == {"action": "Drink.Fromcup", "subject": 3, "rep": 1, "var": 5, "camera": 5}
    assert toyota.label(ids, None) == 8
    assert toyota.assign("cs", ids) == "train" and toyota.assign("cs", {**ids, "subject": 2}) == "test"
    assert toyota.assign("cv1", ids) == "val"
    assert toyota.assign("cv1", {**ids, "camera": 1}) == "train"
    assert toyota.assign("cv1", {**ids, "camera": 3}) is None
    assert toyota.assign("cv2", {**ids, "camera": 3}) == "train"
    assert toyota.assign("cv2", {**ids, "camera": 2}) == "test"
    assert len(toyota.class_subset("cv1")) == 19 and toyota.class_subset("cs") is None


def test_pku_rules(tmp_path: Path):
    pku = BENCHMARKS["pku-mmd"]
    ids = pku.parse_name("0291-L_03")
    assert ids == {"video": 291, "camera": "L"}
    assert pku.splitter(tmp_path, "xview")(ids) == "test"
    assert pku.splitter(tmp_path, "xview")({**ids, "camera": "M"}) == "train"
    assert pku.splitter(tmp_path, "xsub")(ids) == "test"
    assert pku.splitter(tmp_path, "xsub")({**ids, "video": 2}) == "train"
    (tmp_path / "cross-subject.txt").write_text("Training videos: \n0291-L, 0002-M\nValidataion videos: \n0002-L\n")
    official = pku.splitter(tmp_path, "xsub")
    assert official(ids) == "train" and official({"video": 2, "camera": "L"}) == "test"
    assert official({"video": 5, "camera": "R"}) is None


def test_synthetic_dataset():
    pytest.importorskip("sugar.skeleton.synthetic")
    train = open_dataset("synthetic", split="trainval")
    test = open_dataset("synthetic", split="test")
    assert len(train) == 10 * datasets.Synthetic.TRAIN_PER_CLASS and len(test) == 10 * datasets.Synthetic.TEST_PER_CLASS
    assert train.layout.name == "ntu25" and len(train.classes) == 10
    assert not set(train.names) & set(test.names)
