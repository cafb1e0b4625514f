"""`sugar data inspect` and `sugar data convert` through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sugar.cli import app
from sugar.errors import DataError
from sugar.skeleton.readers import read_file

runner = CliRunner()


def test_inspect_nw_ucla_json(shared_data: Path):
    result = runner.invoke(app, ["data", "inspect", str(shared_data / "nw_ucla"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary.keys() >= {"samples", "classes", "frames", "bad"}
    assert summary["samples"] == 1484 and len(summary["classes"]) == 10 and summary["bad"] == []
    assert summary["classes"][0]["name"] == "pick up with one hand"
    assert summary["frames"]["min"] <= summary["frames"]["median"] <= summary["frames"]["max"]


def test_inspect_msr_table_names_bad_file(shared_data: Path):
    result = runner.invoke(app, ["data", "inspect", str(shared_data / "msr_action3d")])
    assert result.exit_code == 0, result.output
    assert "566" in result.stdout and "a13_s09_e02" in result.stdout and "all coordinates are zero" in result.stdout


def test_convert_ntu_round_trip(shared_data: Path, tmp_path: Path):
    src = shared_data / "ntu_rgbd" / "samples"
    out = tmp_path / "ntu_generic"
    result = runner.invoke(app, ["data", "convert", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "layout.json").is_file() and (out / "classes.txt").read_text().count("\n") == 120
    summary = json.loads(runner.invoke(app, ["data", "inspect", str(out), "--json"]).stdout)
    assert summary["samples"] == 15 and summary["format"] == "generic" and summary["layout"] == "ntu25"
    back = {s.name: s for s in read_file(out)}
    for f in sorted(src.glob("*.skeleton"))[:3]:
        [orig] = read_file(f)
        np.testing.assert_array_equal(back[orig.name].joints, orig.joints)
        assert back[orig.name].label == orig.label


def test_convert_npy_needs_layout(tmp_path: Path):
    np.save(tmp_path / "clip.npy", np.random.default_rng(0).normal(size=(9, 20, 3)).astype(np.float32))
    with pytest.raises(DataError, match="--layout"):
        runner.invoke(app, ["data", "convert", str(tmp_path / "clip.npy"), str(tmp_path / "out")],
                      catch_exceptions=False)
    result = runner.invoke(app, ["data", "convert", str(tmp_path / "clip.npy"), str(tmp_path / "out"),
                                 "--layout", "kinect20"])
    assert result.exit_code == 0, result.output
    [s] = read_file(tmp_path / "out")
    assert s.joints.shape == (1, 9, 20, 3) and s.meta["layout"] == "kinect20"


def test_inspect_unknown_folder(tmp_path: Path):
    (tmp_path / "readme.txt").write_text("nothing here\n")
    with pytest.raises(DataError, match="no skeleton file"):
        runner.invoke(app, ["data", "inspect", str(tmp_path)], catch_exceptions=False)
