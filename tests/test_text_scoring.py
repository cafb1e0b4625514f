"""The text head's scoring rules: the prototype (mean of a class's texts) and MIL (log-mean-exp over them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sugar.cli import app
from sugar.config import PretrainConfig
from sugar.errors import ConfigError
from sugar.models.encoder import SkeletonEncoder
from sugar.models.heads import EncoderWithHeads
from sugar.models.text import KnowledgeEmbeddings
from sugar.models.text_scoring import TextScorer
from sugar.skeleton.layouts import get_layout


def _unit(*rows: list[float]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def _texts() -> KnowledgeEmbeddings:
    """Class 0's texts point two ways (x, y); class 1's single text leans towards y."""
    motion = _unit([1.0, 0.0, 0.0], [0.5, 1.0, 0.5])
    visual = _unit([0.0, 1.0, 0.0])
    return KnowledgeEmbeddings(["a", "b"], motion, visual, torch.tensor([0]))


def test_prototype_rule_is_the_cosine_to_the_mean_text() -> None:
    texts = _texts()
    scorer = TextScorer.build(texts, "prototype")
    feature = _unit([0.3, 0.5, 0.8]).numpy()
    np.testing.assert_allclose(scorer(feature), feature @ texts.prototypes().numpy().T, rtol=1e-6)


def test_mil_rule_recognises_a_feature_next_to_one_of_its_class_texts() -> None:
    """A feature on class 0's visual text: nearer class 1's single text than class 0's mean, so the prototype
    rule says class 1, while MIL (what MIL-NCE trained) says class 0."""
    texts = _texts()
    feature = _unit([0.05, 1.0, 0.0]).numpy()
    assert TextScorer.build(texts, "prototype")(feature).argmax() == 1
    assert TextScorer.build(texts, "mil", scale=30.0)(feature).argmax() == 0


def test_mil_rule_gives_no_bonus_for_more_texts() -> None:
    texts = _texts()
    doubled = KnowledgeEmbeddings(["a", "b"], texts.motion, torch.cat([texts.visual, texts.motion[1:]]),
                                  torch.tensor([0, 1]))  # class 1 gains a copy of its own text
    feature = _unit([0.4, 0.6, 0.1]).numpy()
    once = TextScorer.build(texts, "mil", scale=20.0)(feature)
    np.testing.assert_allclose(once, TextScorer.build(doubled, "mil", scale=20.0)(feature), rtol=1e-5)


def test_an_unknown_rule_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="text_score"):
        TextScorer.build(_texts(), "max")
    encoder = SkeletonEncoder(get_layout("kinect20"), 3, "cpu")
    with pytest.raises(ConfigError, match="text_score"):
        EncoderWithHeads(encoder, PretrainConfig(loss="milnce", text_score="mean"), 2, 8)


def test_evaluate_and_fuse_take_the_rule_without_overwriting_the_runs_own_scores(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    run = tmp_path / "run"
    args = ["pretrain", "--config", "configs/pretrain/synthetic.yaml", "--run-dir", str(run), "--no-progress",
            "--set", "epochs=1", "--set", "max_train_samples=40", "--set", "data.frames=16", "--set", "loss=milnce+ce"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["evaluate", str(run), "--split", "val", "--text-score", "mil", "--no-tsne"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "evaluation" / "val-text-mil" / "results.json").read_text())
    assert saved["text_score"] == "mil" and not (run / "evaluation" / "val").exists()
    result = CliRunner().invoke(app, ["fuse", str(run), str(run), "--text-score", "mil", "--split", "val",
                                      "--weights", "1,1"])
    assert result.exit_code == 0, result.output
    fused = json.loads((run / "evaluation" / "fused-val" / "results.json").read_text())
    assert fused["text_score"] == "mil"
    assert fused["fused"]["top1"] == pytest.approx(saved["heads"]["text"]["all"]["top1"])
