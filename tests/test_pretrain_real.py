"""End to end on real NW-UCLA skeletons: pretrain (1 epoch, subset) -> evaluate -> extract -> read back."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sugar.cli import app
from sugar.features import FeatureStore
from sugar.models.encoder import encoder_digest, load_encoder

pytestmark = pytest.mark.slow  # real data, ~20 s on 2 cores


@pytest.fixture(scope="module")
def ucla_run(tmp_path_factory, shared_data):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("ucla") / "run"
    args = ["pretrain", "--dataset", "nw-ucla", "--run-dir", str(run), "--no-progress",
            "--root", str(shared_data / "nw_ucla" / "all_sqe"), "--set", "loss=milnce+ce", "--set", "epochs=1",
            "--set", "batch_size=16", "--set", "max_train_samples=48", "--set", "data.frames=16",
            "--set", "data.max_persons=1", "--set", "model.preset=cpu", "--set", "warmup_epochs=0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return run


def test_pretrain_writes_the_run_directory(ucla_run):
    for name in ("config.yaml", "metrics.jsonl", "report.json", "encoder.safetensors", "encoder.json", "curves.png",
                 "checkpoints/best.safetensors", "checkpoints/last.json"):
        assert (ucla_run / name).is_file(), name
    assert any((ucla_run / "tb").iterdir())
    metrics = [json.loads(line) for line in (ucla_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1]
    assert {"epoch", "lr", "loss", "val_top1", "val_top5", "time"} <= set(metrics[0])
    report = json.loads((ucla_run / "report.json").read_text())
    assert report["test"]["samples"] == 464  # view 3 of the cross-view protocol
    bundle = load_encoder(ucla_run)
    encoder = bundle.encoder
    assert bundle.data is not None and bundle.data.dataset == "nw-ucla" and bundle.data.protocol == "xview"
    assert encoder(torch.zeros(1, 3, 16, 20, 1)).shape == (1, 4, encoder.dim)


def test_evaluate_and_extract(ucla_run, tmp_path, shared_data):
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(ucla_run), "--split", "test", "--multi-clip", "2", "--tsne",
                                 "--root", str(shared_data / "nw_ucla" / "all_sqe")])
    assert result.exit_code == 0, result.output
    res = json.loads((ucla_run / "evaluation" / "test-clips2" / "results.json").read_text())
    for head in ("text", "ce"):
        r = res["heads"][head]["all"]
        assert r["samples"] == 464 and 0 <= r["top1"] <= r["top5"] <= 1
        assert len(r["confusion"]) == 10 and sum(map(sum, r["confusion"])) == 464
    for png in ("confusion-ce-all.png", "confusion-text-all.png", "tsne.png"):
        assert (ucla_run / "evaluation" / "test-clips2" / png).stat().st_size > 1000
    out = tmp_path / "features"
    result = runner.invoke(app, ["extract", str(ucla_run), "--split", "test", "--out", str(out),
                                 "--root", str(shared_data / "nw_ucla" / "all_sqe")])
    assert result.exit_code == 0, result.output
    store = FeatureStore(out)
    assert len(store) == 464 and store.dim == 128
    tokens, label, name = store[5]
    assert tokens.shape == (4, 128) and 0 <= label < 10 and name.startswith("a")
    assert Path(store.index["encoder_run"]) == Path(ucla_run).resolve()
    assert store.index["encoder_sha256"] == encoder_digest(ucla_run)
    # the stored tokens are the public encoder's output on the deterministic test view
    bundle = load_encoder(ucla_run)
    encoder = bundle.encoder
    test = bundle.data.open_split("test", root=str(shared_data / "nw_ucla" / "all_sqe"))
    x, y = bundle.processor.dataset(test, train=False)[5]
    with torch.no_grad():
        torch.testing.assert_close(encoder(x[None])[0], tokens, rtol=1e-4, atol=1e-5)
    assert y == label
