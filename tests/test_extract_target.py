"""`sugar extract --out` never replaces another encoder's features silently (issue 12, item 11): checked
before the encoder is loaded, so these tests need no trained run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sugar.cli import app
from sugar.errors import DataError, SugarError
from sugar.features import FORMAT, extract_features


def feature_folder(out: Path, encoder_run: Path) -> Path:
    out.mkdir(parents=True)
    (out / "index.json").write_text(json.dumps({"format": FORMAT, "encoder_run": str(encoder_run.resolve()),
                                                "samples": []}))
    (out / "shard-00000.safetensors").write_bytes(b"old")
    return out


def test_features_of_another_encoder_are_refused(tmp_path: Path):
    out = feature_folder(tmp_path / "features", tmp_path / "encoder-a")
    with pytest.raises(DataError, match="holds features of another encoder"):
        extract_features(tmp_path / "encoder-b", out)
    assert (out / "shard-00000.safetensors").read_bytes() == b"old"
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "encoder-b"), "--out", str(out)])
    assert result.exit_code != 0 and "--overwrite" in str(result.exception)


def test_a_folder_of_other_files_is_refused(tmp_path: Path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    with pytest.raises(DataError, match="holds no extracted features"):
        extract_features(tmp_path / "encoder-a", out)


def test_same_encoder_or_overwrite_goes_on_to_load_the_encoder(tmp_path: Path):
    """Past the check, the (missing) encoder is what fails: the folder itself was accepted."""
    out = feature_folder(tmp_path / "features", tmp_path / "encoder-a")
    for run, overwrite in ((tmp_path / "encoder-a", False), (tmp_path / "encoder-b", True)):
        with pytest.raises(SugarError, match="not a finished encoder"):
            extract_features(run, out, overwrite=overwrite)


def test_features_are_read_only_with_the_encoder_that_made_them(tmp_path: Path):
    """A released name keeps its folder across releases, and --features/--encoder are given separately: features
    of other weights are refused by their digest before a recogniser is trained on them (older folders pass)."""
    from sugar.config import TuneConfig
    from sugar.features import FeatureStore
    from sugar.fileio import file_digest
    from sugar.training.instruct import features_data

    encoders = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "encoder.safetensors").write_bytes(name.encode() * 64)
        encoders[name] = tmp_path / name
    train = tmp_path / "features" / "train"
    train.mkdir(parents=True)
    index = {"format": FORMAT, "encoder_run": str(encoders["a"]), "split": "train", "classes": ["x"], "dim": 4,
             "samples": [], "encoder_sha256": file_digest(encoders["a"] / "encoder.safetensors")}
    (train / "index.json").write_text(json.dumps(index))
    FeatureStore(train).check_encoder(encoders["a"])
    with pytest.raises(DataError, match=r"other encoder weights.*sugar extract .*--overwrite"):
        FeatureStore(train).check_encoder(encoders["b"])
    with pytest.raises(DataError, match="other encoder weights"):
        features_data(TuneConfig(features=str(tmp_path / "features"), encoder_run=str(encoders["b"])))
    del index["encoder_sha256"]  # extracted before the digest was recorded
    (train / "index.json").write_text(json.dumps(index))
    FeatureStore(train).check_encoder(encoders["b"])
