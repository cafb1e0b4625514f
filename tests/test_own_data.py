"""A user's own dataset folder is a first-class dataset: protocols from the manifest, units, validation carve,
an action list of the user's, and a stage-2 run named after the folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sugar.cli import app
from sugar.errors import DataError, SugarError
from sugar.knowledge.actions import read_action_list
from sugar.knowledge.schema import load_knowledge
from sugar.skeleton.datasets import DataSource, class_names, get_benchmark, knowledge_name, open_dataset
from sugar.skeleton.own_data import median_bone_length
from sugar.skeleton.readers import write_generic
from sugar.skeleton.synthetic import SYNTHETIC_CLASSES, make_synthetic


def _folder(tmp_path: Path, *, per_class: int = 8, subjects: int = 4, split: bool = False, scale: float = 1.0,
            units: str | None = None) -> Path:
    samples = make_synthetic(per_class, seed=7, min_frames=20, max_frames=30)
    for i, s in enumerate(samples):
        s.meta["subject"] = str(1 + i % subjects)
        s.joints = s.joints * scale
    splits = ["test" if i % 4 == 0 else "train" for i in range(len(samples))] if split else None
    out = write_generic(samples, "ntu25", SYNTHETIC_CLASSES, splits, tmp_path / "mine")
    if units:
        (out / "dataset.json").write_text(json.dumps({"units": units}))
    return out


def test_a_folder_is_a_dataset_with_the_protocols_its_manifest_gives(tmp_path: Path) -> None:
    folder = _folder(tmp_path, split=True)
    bench = get_benchmark(str(folder))
    assert bench.protocols == ("split", "xsub") and bench.subjects == ("1", "2", "3", "4")
    assert class_names(str(folder)) == tuple(SYNTHETIC_CLASSES)
    train, test = (open_dataset(str(folder), protocol="split", split=s, val_fraction=0) for s in ("train", "test"))
    assert len(train) + len(test) == 8 * len(SYNTHETIC_CLASSES) and len(test) == 2 * len(SYNTHETIC_CLASSES)
    # xsub: every other subject in sorted order trains, or the named ones
    xsub = open_dataset(str(folder), protocol="xsub", split="test", val_fraction=0)
    assert {xsub.store.meta[int(j)]["ids"]["subject"] for j in xsub.indices} == {"2", "4"}
    named = open_dataset(str(folder), protocol="xsub:1,2,3", split="test", val_fraction=0)
    assert {named.store.meta[int(j)]["ids"]["subject"] for j in named.indices} == {"4"}
    with pytest.raises(SugarError, match="subjects \\['9'\\] are not in the manifest"):
        open_dataset(str(folder), protocol="xsub:1,9")
    # xsub:TRAIN>TEST: a proxy inside the training subjects, the others unused
    proxy = {s: open_dataset(str(folder), protocol="xsub:1>3", split=s, val_fraction=0) for s in ("train", "test")}
    assert {s: {p.store.meta[int(j)]["ids"]["subject"] for j in p.indices} for s, p in proxy.items()} == \
        {"train": {"1"}, "test": {"3"}}
    with pytest.raises(SugarError, match="none in both"):
        open_dataset(str(folder), protocol="xsub:1,3>3")
    with pytest.raises(SugarError, match="no protocol 'xview'"):
        open_dataset(str(folder), protocol="xview")


def test_a_folder_without_split_or_subjects_says_how_to_fix_it(tmp_path: Path) -> None:
    samples = make_synthetic(2, seed=1, min_frames=20, max_frames=22)
    folder = write_generic(samples, "ntu25", SYNTHETIC_CLASSES, None, tmp_path / "bare")
    with pytest.raises(DataError, match="fill the split column with train and test"):
        get_benchmark(str(folder))
    with pytest.raises(SugarError, match="or a dataset folder in the generic format"):
        get_benchmark(str(tmp_path / "no-such-folder"))


def test_millimetres_are_refused_unless_declared_and_then_converted(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="look like millimetres"):
        open_dataset(str(_folder(tmp_path / "a", scale=1000.0)), protocol="xsub")
    folder = _folder(tmp_path / "b", scale=1000.0, units="mm")
    ds = open_dataset(str(folder), protocol="xsub")
    reference = open_dataset(str(_folder(tmp_path / "c")), protocol="xsub")
    assert median_bone_length(list(ds[:4]), ds.layout) == pytest.approx(
        median_bone_length(list(reference[:4]), reference.layout), rel=1e-4)


def test_validation_keeps_at_least_two_samples_per_class_when_asked(tmp_path: Path) -> None:
    folder = str(_folder(tmp_path, per_class=6))
    val = open_dataset(folder, protocol="xsub", split="val", val_fraction=0.1, val_min_per_class=2)
    assert (val.class_counts() >= 2).all()
    source = DataSource(folder, "xsub", val_fraction=0.1, val_min_per_class=2)
    assert DataSource.from_dict(source.to_dict()) == source
    assert len(source.open_split("val")) == len(val)


def test_a_users_action_list_scores_listed_classes_with_distractors(tmp_path: Path) -> None:
    ds = open_dataset(str(_folder(tmp_path)), protocol="xsub", split="test", val_fraction=0)
    names = ["somersault", SYNTHETIC_CLASSES[3], SYNTHETIC_CLASSES[1]]
    listed = ds.on_list(names)
    assert listed.classes == names and set(listed.labels.tolist()) == {1, 2}
    assert len(listed) == int((np.isin(ds.labels, [1, 3])).sum())


def test_the_folder_is_an_action_list_and_carries_its_knowledge(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(DataError, match="sugar knowledge motion --actions"):
        knowledge_name(str(folder))
    load_knowledge("synthetic").save(folder / "knowledge.json")
    listed = read_action_list(folder)
    assert listed.names == list(SYNTHETIC_CLASSES) and listed.knowledge is not None and listed.source == "mine"
    assert knowledge_name(str(folder)) == str(folder / "knowledge.json")


def test_pretrain_and_evaluate_on_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    folder = _folder(tmp_path, per_class=6)
    load_knowledge("synthetic").save(folder / "knowledge.json")
    monkeypatch.chdir(tmp_path)
    args = ["pretrain", "--config", str(Path(__file__).parents[1] / "configs/pretrain/custom.yaml"), "--data",
            "mine", "--no-progress", "--set", "epochs=1", "--set", "data.frames=16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "pretrain" / "mine-xsub"  # named after the folder
    config = (run / "config.yaml").read_text()
    assert str(folder.resolve()) in config and "max_persons: 1" in config  # resolved, and persons from the data
    lst = tmp_path / "list.txt"
    lst.write_text(f"{SYNTHETIC_CLASSES[0]}\n{SYNTHETIC_CLASSES[2]}\nsomersault\n")
    result = CliRunner().invoke(app, ["evaluate", str(run), "--actions", str(lst), "--knowledge",
                                      str(folder / "knowledge.json"), "--no-tsne"])
    assert result.exit_code != 0 and "no description" not in result.output  # somersault has no text
    assert "somersault" in str(result.exception)
    lst.write_text(f"{SYNTHETIC_CLASSES[0]}\n{SYNTHETIC_CLASSES[2]}\n")
    result = CliRunner().invoke(app, ["evaluate", str(run), "--actions", str(lst), "--no-tsne"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert set(summary["heads"]) == {"text"} and summary["heads"]["text"]["all"]["samples"] > 0
    assert (run / "evaluation" / "list-test" / "results.json").is_file()


def test_inspect_reports_splits_subjects_and_a_scale_that_is_not_metres(tmp_path: Path) -> None:
    from sugar.skeleton.folders import scan

    summary = scan(_folder(tmp_path / "m", split=True)).summary()
    assert summary["splits"] == {"test": 20, "train": 60} and summary["subjects"] == 4
    assert summary["coordinates"] is None
    assert "not metres" in scan(_folder(tmp_path / "mm", scale=1000.0)).summary()["coordinates"]


def test_plain_xyz_text_is_read_with_its_layout_and_converted(tmp_path: Path) -> None:
    from sugar.skeleton.layouts import get_layout
    from sugar.skeleton.readers import detect_format, read_file

    rng = np.random.default_rng(0)
    frames = rng.normal(scale=0.3, size=(6, 20, 3)).round(4)
    text = "# layout: kinect20\n" + "\n\n".join("\n".join(" ".join(map(str, j)) for j in f) for f in frames) + "\n"
    path = tmp_path / "wave_01.txt"
    path.write_text(text)
    assert detect_format(path) == "xyz-text"
    (sample,) = read_file(path)
    assert sample.joints.shape == (1, 6, 20, 3) and sample.meta["layout"] == "kinect20"
    np.testing.assert_allclose(sample.joints[0], frames, atol=1e-6)
    assert get_layout(sample.meta["layout"]).num_joints == 20
    path.write_text("0 0 0\n1 1 1\n\n0 0 0\n")
    with pytest.raises(DataError, match="different joint counts"):
        read_file(path)
    path.write_text("0 0\n")
    with pytest.raises(DataError, match="line 1: expected 3 numbers"):
        read_file(path, format="xyz-text")


def test_convert_keeps_a_builtin_protocol_as_the_manifest_split(tmp_path: Path, shared_data: Path) -> None:
    """NW-UCLA converted with --protocol xview trains on views 1+2 and tests on view 3, as the built-in does."""
    src = tmp_path / "ucla"
    src.mkdir()
    names = ["a01_s01_e00_v01.json", "a01_s01_e00_v02.json", "a01_s01_e00_v03.json", "a02_s02_e00_v03.json"]
    for name in names:
        (src / name).symlink_to(shared_data / "nw_ucla" / "all_sqe" / name)
    out = tmp_path / "own"
    result = CliRunner().invoke(app, ["data", "convert", str(src), str(out), "--protocol", "xview"])
    assert result.exit_code == 0, result.output
    rows = (out / "manifest.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[2] for r in rows) == ["test", "test", "train", "train"]
    assert get_benchmark(str(out)).protocols[0] == "split"
    refused = CliRunner().invoke(app, ["data", "convert", str(src), str(tmp_path / "x"), "--protocol", "xsub"])
    assert refused.exit_code != 0 and "no protocol 'xsub'" in str(refused.exception or refused.output)
