"""Leave-classes-out fusion weights (sugar.evaluation.zero_shot): each run's weight comes from the held-out
classes of the runs that share none of its own, and its held-out test samples are scored at that weight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sugar.cli import app
from sugar.errors import ConfigError
from sugar.evaluation.metrics import save_scores
from sugar.evaluation.zero_shot import RESULT, leave_classes_out
from sugar.models.evidence import choose_weight, choose_weight_pooled, fuse


def _scores(labels: np.ndarray, right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n, 2] noisy logits that pick the true label on the rows where `right` holds."""
    out = rng.normal(size=(len(labels), 2))
    out[right, labels[right]] += 4.0
    return out


def _run(root: Path, name: str, held_out: list[str], trust: str, seed: int) -> Path:
    """A zero-shot run folder with saved held-out scores on val and test: on val, `trust` names the evidence
    that is right; on test the LLM is right on the first half and the text head on the second."""
    rng = np.random.default_rng(seed)
    run = root / name
    n = 40
    for split in ("val", "test"):
        y = rng.integers(0, 2, n)
        first = np.arange(n) < n // 2
        llm_right = np.full(n, trust == "llm") if split == "val" else first
        text_right = np.full(n, trust == "text") if split == "val" else ~first
        folder = run / "evaluation" / split
        folder.mkdir(parents=True)
        names = [f"{name}-{split}-{i}" for i in range(n)]
        save_scores(folder / "scores-llm-zero_shot.npz", _scores(y, llm_right, rng), y, names, held_out)
        save_scores(folder / "scores-text-zero_shot.npz", _scores(y, text_right, rng), y, names, held_out)
    return run


def test_each_run_is_calibrated_on_the_runs_that_share_none_of_its_classes(tmp_path) -> None:
    a = _run(tmp_path, "a", ["wave", "sit"], "llm", 1)
    b = _run(tmp_path, "b", ["throw", "kick"], "text", 2)  # the text head is right on b's val samples
    c = _run(tmp_path, "c", ["wave", "jump"], "llm", 3)  # shares "wave" with a
    results = {Path(r["run"]).name: r for r in leave_classes_out([a, b, c])}
    assert [Path(d).name for d in results["a"]["donors"]] == ["b"]
    assert [Path(d).name for d in results["c"]["donors"]] == ["b"]
    assert [Path(d).name for d in results["b"]["donors"]] == ["a", "c"]
    assert results["a"]["weight"] > 0.5 and results["c"]["weight"] > 0.5  # b says: trust the text head
    assert results["b"]["weight"] < 0.5  # a and c say: trust the LLM
    saved = json.loads((a / "evaluation" / "test" / RESULT).read_text())
    assert saved["weight"] == results["a"]["weight"] and saved["held_out"] == ["wave", "sit"]
    test_scores = np.load(a / "evaluation" / "test" / "scores-llm-zero_shot.npz")
    text_scores = np.load(a / "evaluation" / "test" / "scores-text-zero_shot.npz")
    fused = fuse(test_scores["logits"], text_scores["logits"], saved["weight"]).numpy()
    assert saved["evidence"]["fused"]["top1"] == pytest.approx(float((fused.argmax(1) == test_scores["labels"]).mean()))


def test_a_run_without_donors_is_reported_and_the_others_still_calibrated(tmp_path) -> None:
    a = _run(tmp_path, "a", ["wave", "sit"], "llm", 1)
    b = _run(tmp_path, "b", ["wave", "kick"], "text", 2)
    c = _run(tmp_path, "c", ["kick", "jump"], "llm", 3)  # b shares a class with both a and c: no donors
    results = {Path(r["run"]).name: r for r in leave_classes_out([a, b, c])}
    assert "every other run holds out one of its classes" in results["b"]["skipped"]
    assert not (b / "evaluation" / "test" / RESULT).exists()
    assert [Path(d).name for d in results["a"]["donors"]] == ["c"] and (a / "evaluation" / "test" / RESULT).exists()
    result = CliRunner().invoke(app, ["calibrate-unseen", str(a), str(b), str(c)])
    assert result.exit_code == 0 and "skipped" in result.output
    with pytest.raises(ConfigError, match="every other run holds out one of its classes"):
        leave_classes_out([a, b])  # no run has a donor
    with pytest.raises(ConfigError, match="at least two"):
        leave_classes_out([a])


def test_missing_scores_name_the_file(tmp_path) -> None:
    a = _run(tmp_path, "a", ["wave", "sit"], "llm", 1)
    (tmp_path / "b" / "evaluation" / "val").mkdir(parents=True)
    result = CliRunner().invoke(app, ["calibrate-unseen", str(a), str(tmp_path / "b")])
    assert result.exit_code != 0
    assert "scores-llm-zero_shot.npz" in (result.output + str(result.exception))


def test_pooled_choice_equals_the_choice_on_concatenated_samples() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    llm, text = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    text[np.arange(60), y] += 1.0
    whole = choose_weight(llm, text, y)
    pooled = choose_weight_pooled([(llm[:25], text[:25], y[:25]), (llm[25:], text[25:], y[25:])])
    assert whole[0] == pooled[0]
    assert [r["top1"] for r in whole[1]] == pytest.approx([r["top1"] for r in pooled[1]])


def test_predict_notes_listed_classes_the_recogniser_was_not_tuned_on() -> None:
    from sugar.commands.recognizer import new_classes_notice

    tuned = ["wave", "sit", "kick"]
    note = new_classes_notice(tuned, ["wave", "juggle"], None, True)
    assert note is not None and "juggle" in note and "--fusion 1" in note
    assert new_classes_notice(tuned, ["kick", "wave"], None, True) is None  # every class seen in tuning
    assert new_classes_notice(tuned, None, None, True) is None  # the recogniser's own list
    assert new_classes_notice(tuned, ["juggle"], 0.5, True) is None  # the user chose a weight
    assert new_classes_notice(tuned, ["juggle"], None, False) is None  # no text head to fall back on


def test_generalized_zero_shot_reports_each_side_and_their_harmonic_mean() -> None:
    from sugar.evaluation.metrics import generalized_zero_shot

    labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])  # class 2 unseen
    scores = np.eye(3)[[0, 1, 1, 1, 2, 0, 2, 1]]  # seen 3/4 right, unseen 2/4
    out = generalized_zero_shot(scores, labels, [2])
    assert out["seen"] == 0.75 and out["unseen"] == 0.5 and out["harmonic"] == pytest.approx(0.6)
    assert (out["seen_samples"], out["unseen_samples"]) == (4, 4)
    collapsed = generalized_zero_shot(np.eye(3)[[0, 0, 1, 1, 0, 0, 1, 1]], labels, [2])  # never answers class 2
    assert collapsed["seen"] == 1.0 and collapsed["unseen"] == 0.0 and collapsed["harmonic"] == 0.0


CLASSES = ["wave", "sit", "throw", "kick", "jump", "clap"]


def _whole_list_run(root: Path, name: str, held_out: list[str], seed: int, seen_bonus: float = 3.0) -> Path:
    """A zero-shot run with saved whole-list scores (val, test): the true class +2, every seen class +seen_bonus,
    so at bias 0 a held-out class is never answered (the bias of a model trained on its seen classes)."""
    rng = np.random.default_rng(seed)
    run = root / name
    unseen = np.array([c in held_out for c in CLASSES])
    for split in ("val", "test"):
        y = rng.integers(0, len(CLASSES), 60)
        scores = rng.normal(0, 0.3, (60, len(CLASSES))) + seen_bonus * ~unseen
        scores[np.arange(60), y] += 2.0
        folder = run / "evaluation" / split
        folder.mkdir(parents=True)
        names = [f"{name}-{split}-{i}" for i in range(60)]
        for kind in ("fused", "text"):
            save_scores(folder / f"scores-{kind}-all.npz", scores, y, names, CLASSES)
            rows = np.isin(y, np.flatnonzero(unseen))  # the held-out list's view, for its class names
            save_scores(folder / f"scores-{kind}-zero_shot.npz", scores[rows][:, unseen],
                        np.searchsorted(np.flatnonzero(unseen), y[rows]), list(np.asarray(names)[rows]), held_out)
    return run


def test_calibrated_stacking_lets_held_out_classes_win_on_the_whole_list(tmp_path) -> None:
    from sugar.evaluation.zero_shot import STACKING_RESULT, calibrated_stacking

    a = _whole_list_run(tmp_path, "a", ["wave", "sit"], 1)
    b = _whole_list_run(tmp_path, "b", ["throw", "kick"], 2)
    c = _whole_list_run(tmp_path, "c", ["wave", "clap"], 3)  # shares "wave" with a
    results = {Path(r["run"]).name: r for r in calibrated_stacking([a, b, c])}
    assert [Path(d).name for d in results["a"]["donors"]] == ["b"]
    for r in results.values():
        fused = r["kinds"]["fused"]
        assert 1.0 < fused["bias"] < 5.0  # enough to undo the seen classes' +3, not so much that seen ones lose
        assert fused["test"]["at_0"]["unseen"] == 0.0 and fused["test"]["at_0"]["harmonic"] == 0.0
        assert fused["test"]["at_bias"]["harmonic"] > 0.8
    saved = json.loads((a / "evaluation" / "test" / STACKING_RESULT).read_text())
    assert saved["kinds"]["text"]["bias"] == results["a"]["kinds"]["text"]["bias"]
    for run in (a, b, c):
        (run / "recognizer.json").write_text(json.dumps({"format": "x"}))
    result = CliRunner().invoke(app, ["calibrate-unseen", str(a), str(b), str(c), "--whole-list", "--save"])
    assert result.exit_code == 0 and '"at_bias"' in result.output
    stored = json.loads((a / "recognizer.json").read_text())
    assert stored["format"] == "x" and stored["new_class_bias"]["bias"] == results["a"]["kinds"]["fused"]["bias"]
    refused = CliRunner().invoke(app, ["calibrate-unseen", str(a), str(b), "--save"])
    assert refused.exit_code != 0 and "--whole-list" in refused.output


def test_choose_bias_prefers_the_smaller_of_equal_biases() -> None:
    from sugar.evaluation.zero_shot import choose_bias

    labels = np.array([0, 1])
    scores = np.array([[5.0, 0.0], [0.0, 5.0]])  # already right: every bias up to 5 ties
    bias, table = choose_bias([{"scores": scores, "labels": labels, "unseen": np.array([False, True])}])
    assert bias == 0.0 and table[0]["harmonic"] == 1.0
