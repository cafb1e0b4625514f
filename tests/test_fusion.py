"""Fusing runs: samples matched by name, weights chosen on validation, and a real two-stream fusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sugar.cli import app
from sugar.errors import SugarError
from sugar.evaluation.fusion import aligned, choose_weights, fuse
from sugar.evaluation.metrics import save_scores


def _table(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return {"logits": logits, "labels": labels, "names": np.array(names), "classes": np.array(["a", "b", "c"])}


def test_runs_are_matched_by_sample_name_and_mismatches_refused() -> None:
    labels = np.array([0, 1, 2])
    a = _table(np.eye(3) * 5, labels, ["x", "y", "z"])
    b = _table((np.eye(3) * 5)[[2, 0, 1]], labels[[2, 0, 1]], ["z", "x", "y"])  # same scores, another order
    got_labels, probs, classes = aligned([a, b], "test")
    assert classes == ["a", "b", "c"] and got_labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(probs[0], probs[1])
    with pytest.raises(SugarError, match="other samples"):
        aligned([a, _table(np.eye(3), labels, ["x", "y", "w"])], "test")


def test_weights_follow_the_validation_split() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    good = np.eye(3)[labels] * 3 + rng.normal(size=(200, 3))
    noise = rng.normal(size=(200, 3)) * 3
    probs = [np.exp(s) / np.exp(s).sum(1, keepdims=True) for s in (noise, good)]
    weights = choose_weights(labels, probs)
    assert weights[1] > weights[0]  # the informative run weighs more
    assert (fuse(probs, weights).argmax(1) == labels).mean() >= (probs[1].argmax(1) == labels).mean() - 0.02


def test_fuse_two_streams_of_real_runs(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    runs = []
    for stream in ("joint", "bone"):
        run = tmp_path / stream
        args = ["pretrain", "--config", "configs/pretrain/synthetic.yaml", "--run-dir", str(run), "--no-progress",
                "--set", "epochs=1", "--set", "max_train_samples=40", "--set", "data.frames=16", "--set", "loss=ce",
                "--set", f"data.stream={stream}"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        runs.append(str(run))
    result = CliRunner().invoke(app, ["fuse", *runs, "--head", "ce"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(summary["weights"]) == 2 and 0 <= summary["top1"] <= 1
    saved = json.loads((Path(runs[0]) / "evaluation" / "fused-test" / "results.json").read_text())
    assert saved["weights_chosen_on"] == "val" and len(saved["single"]) == 2
    plain = (Path(runs[0]) / "evaluation" / "test" / "scores-ce.npz").read_bytes()
    result = CliRunner().invoke(app, ["fuse", *runs, "--head", "ce", "--multi-clip", "2", "--weights", "equal",
                                      "--out", str(tmp_path / "clips")])
    assert result.exit_code == 0, result.output
    # multi-clip scores sit beside the single-clip ones that other fusions read, never over them
    assert (Path(runs[0]) / "evaluation" / "test-clips2" / "scores-ce.npz").is_file()
    assert (Path(runs[0]) / "evaluation" / "test" / "scores-ce.npz").read_bytes() == plain
    clips = json.loads((tmp_path / "clips" / "results.json").read_text())
    assert clips["multi_clip"] == 2 and clips["weights"] == [1.0, 1.0] and clips["weights_chosen_on"] == "given"
    bad = CliRunner().invoke(app, ["fuse", *runs, "--head", "ce", "--weights", "1"])
    assert bad.exit_code != 0 and "1 weights for 2 runs" in str(bad.exception)


def test_saved_scores_round_trip(tmp_path: Path) -> None:
    from sugar.evaluation.metrics import load_scores

    save_scores(tmp_path / "s.npz", np.ones((2, 3)), np.array([0, 1]), ["p", "q"], ["a", "b", "c"])
    loaded = load_scores(tmp_path / "s.npz")
    assert loaded["names"].tolist() == ["p", "q"] and loaded["logits"].shape == (2, 3)


def test_a_recogniser_fuses_with_a_head_of_its_encoder_by_run_head_specs(tmp_path: Path) -> None:
    """`sugar fuse RECOGNISER:llm ENCODER:ce`: a stage-3 run's saved LLM scores beside a stage-2 head, weights
    chosen on val; heads a run does not have, and recognisers never evaluated, are refused by name."""
    rng = np.random.default_rng(1)
    names = [f"s{i}" for i in range(60)]
    labels = rng.integers(0, 3, 60)
    recogniser, encoder = tmp_path / "recogniser", tmp_path / "encoder"
    (recogniser / "recognizer.json").parent.mkdir()
    (recogniser / "recognizer.json").write_text("{}")
    for split in ("val", "test"):
        for folder in (recogniser, encoder):
            (folder / "evaluation" / split).mkdir(parents=True, exist_ok=True)
        informative = np.eye(3)[labels] * 4 + rng.normal(size=(60, 3))
        save_scores(recogniser / "evaluation" / split / "scores-llm-all.npz", informative, labels, names, list("abc"))
        save_scores(encoder / "evaluation" / split / "scores-ce.npz", rng.normal(size=(60, 3)), labels, names,
                    list("abc"))
    result = CliRunner().invoke(app, ["fuse", f"{recogniser}:llm", f"{encoder}:ce", "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "f" / "results.json").read_text())
    assert saved["heads"] == ["llm", "ce"] and saved["weights_chosen_on"] == "val"
    assert saved["weights"][0] > saved["weights"][1] and saved["fused"]["top1"] > 0.9
    wrong = CliRunner().invoke(app, ["fuse", f"{recogniser}:ce", f"{encoder}:ce"])
    assert wrong.exit_code != 0 and "llm, text, fused" in str(wrong.exception)
    (recogniser / "evaluation" / "test" / "scores-llm-all.npz").unlink()
    missing = CliRunner().invoke(app, ["fuse", f"{recogniser}:llm", f"{encoder}:ce", "--weights", "1,1"])
    assert missing.exit_code != 0 and "sugar evaluate" in str(missing.exception)
