"""A tiny real stage-2 run: synthetic skeletons, the shipped knowledge through the offline MiniLM, 2 epochs."""

import json

import torch
from typer.testing import CliRunner

from sugar.cli import app
from sugar.models.encoder import load_encoder
from sugar.paths import cache_dir


def test_tiny_synthetic_pretrain(tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    args = ["pretrain", "--config", "configs/pretrain/synthetic.yaml", "--run-dir", str(run), "--no-progress",
            "--set", "epochs=2", "--set", "max_train_samples=40", "--set", "data.frames=16",
            "--set", "loss=milnce+ce",  # the shipped synthetic knowledge
            "--set", "unseen_classes=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(m["loss"] > 0 and 0 < m["temperature"] <= 1 for m in metrics)
    report = json.loads((run / "report.json").read_text())
    assert len(report["exclude_classes"]) == 2
    assert report["test"]["samples"] == 80 and report["zero_shot"]["samples"] == 20  # 10 test samples per class
    bundle = load_encoder(run)
    assert bundle.encoder.layout.name == "ntu25" and len(bundle.data.exclude_classes) == 2
    assert list(cache_dir("text-embeddings").glob("*.safetensors"))  # knowledge embedded once, cached


def test_held_out_classes_leave_training_labels_in_the_full_class_list() -> None:
    """Regression: labels of a split opened without some classes must index the full list the texts follow."""
    from sugar.config import PretrainConfig, load_config
    from sugar.training.pretrain import build_data

    cfg = load_config(PretrainConfig, overrides=["data.dataset=synthetic", "exclude_classes=[kick, clap]", "loss=ce",
                                                 "data.frames=16"])
    cfg, data = build_data(cfg)
    names = list(data.classes)
    assert len(names) == 10 and data.seen == [i for i, c in enumerate(names) if c not in ("kick", "clap")]
    for split in (data.train, data.val):
        labels = {int(y) for _, y in split}
        assert labels == set(data.seen), split
