"""The whole own-data path on real files, as a user takes it: convert a few MSR Action3D recordings as if they
were the user's own, generate knowledge offline, pretrain, tune, evaluate, predict and serve (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from servicehelpers import running_server
from sugar.cli import app

pytestmark = pytest.mark.slow  # a few minutes on 2 cores: the offline LLM writes knowledge and is tuned

ACTIONS = ("a01", "a06", "a14")  # high arm wave, high throw, forward kick
ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{args[:2]}: {result.output}\n{result.exception!r}"
    return result.stdout


def test_convert_knowledge_pretrain_tune_evaluate_predict_serve(shared_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "recordings"
    source.mkdir()
    for f in sorted((shared_data / "msr_action3d" / "real_world_coordinates").glob("a*_s0[1-4]_e0[12]_*.txt")):
        if f.name[:3] in ACTIONS:
            shutil.copy(f, source / f.name)
    data = tmp_path / "my-dataset"
    _run(["data", "convert", str(source), str(data), "--present-classes"])
    assert len((data / "classes.txt").read_text().split("\n")) == len(ACTIONS) + 1

    knowledge = data / "knowledge.json"
    _run(["knowledge", "motion", "--actions", str(data), "--out", str(knowledge), "--provider", "hf",
          "--attempts", "3", "--concurrency", "1", "--quiet"])

    encoder = tmp_path / "encoder"
    _run(["pretrain", "--config", str(ROOT / "configs/pretrain/custom.yaml"), "--data", str(data), "--run-dir",
          str(encoder), "--no-progress", "--set", "epochs=2", "--set", "data.frames=24"])
    assert json.loads((encoder / "report.json").read_text())["test"]["samples"] > 0

    recogniser = tmp_path / "recogniser"
    _run(["tune", "--encoder", str(encoder), "--config", str(ROOT / "configs/tune/msr-action3d-cpu.yaml"),
          "--run-dir", str(recogniser), "--no-progress", "--set", "epochs=1", "--set", "bridge.num_queries=4",
          "--set", "max_description_tokens=8", "--set", "max_train_samples=16"])
    meta = json.loads((recogniser / "recognizer.json").read_text())
    assert meta["actions"] == (data / "classes.txt").read_text().splitlines()
    assert set(meta["descriptions"]) == set(meta["actions"])  # the folder's knowledge was inherited

    summary = json.loads(_run(["evaluate", str(recogniser), "--split", "test", "--limit", "6"]).splitlines()[-1])
    assert summary["views"]["all"]["samples"] == 6

    clip = sorted((data / "samples").glob("*.npy"))[0]
    answer = json.loads(_run(["predict", str(clip), "--run", str(recogniser)]))
    assert answer["label"] in meta["actions"] and answer["description"]

    from sugar.models.recognizer_io import load_recognizer
    from sugar.serve import create_app

    with running_server(create_app(load_recognizer(recogniser))) as url:
        joints = np.load(clip)
        r = httpx.post(f"{url}/v1/recognize", json={"layout": "msr20", "joints": joints.tolist()}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["label"] in meta["actions"]
