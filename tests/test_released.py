"""Released models: a recogniser copied into the package in fp16 answers as the fp32 run did, `--run NAME`
resolves it, and each model shipped in src/sugar/released still reaches its recorded accuracy on the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from stage3helpers import ACTIONS, build_tiny_with_encoder, session_tokenizer
from sugar.cli import app
from sugar.errors import SugarError
from sugar.evaluation.encoder import evaluate_run
from sugar.evaluation.metrics import load_scores
from sugar.evaluation.recognizer import evaluate_recognizer_run
from sugar.models import released
from sugar.models.recognizer_io import load_recognizer, save_recognizer
from sugar.skeleton.readers import read_file

runner = CliRunner()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    rec = build_tiny_with_encoder(tmp_path_factory, session_tokenizer(tmp_path_factory))
    folder = tmp_path_factory.mktemp("run")
    save_recognizer(rec.eval(), folder)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "ckpt-0000001.safetensors").write_bytes(b"not shipped")
    return folder


def test_a_released_copy_is_fp16_and_answers_like_the_run(run_folder, tmp_path, monkeypatch, shared_data) -> None:
    monkeypatch.setattr(released, "RELEASED_DIR", tmp_path)
    out = released.release_run(run_folder, "tiny-ucla", dataset="nw-ucla", protocol="xview", stream="joint",
                                      command="sugar tune ...", metrics={"top1": 0.5}, check={})
    assert not (out / "checkpoints").exists() and (out / "encoder" / "encoder.safetensors").is_file()
    assert all(t.dtype in (torch.float16, torch.int64) for t in load_file(str(out / "bridge.safetensors")).values())
    assert released.resolve_run("tiny-ucla") == out and released.released_name(out) == "tiny-ucla"
    assert json.loads((tmp_path / "index.json").read_text())["tiny-ucla"]["dataset"] == "nw-ucla"

    sample = read_file(shared_data / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json")
    original = load_recognizer(run_folder).recognize(sample, batch_size=2)
    again = load_recognizer("tiny-ucla").recognize(sample, batch_size=2)
    assert [r["label"] for r in again] == [r["label"] for r in original]
    assert [r["loglik"] for r in again] == pytest.approx([r["loglik"] for r in original], abs=0.05)

    result = runner.invoke(app, ["predict", str(shared_data / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json"),
                                 "--run", "tiny-ucla"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["label"] in ACTIONS
    result = runner.invoke(app, ["predict", str(shared_data / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json"),
                                 "--run", "tiny-ucla", "--encoder-precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["label"] in ACTIONS
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "tiny-ucla" in listed.stdout


def test_predict_divides_the_batch_prior_out_of_the_files_given_together(run_folder, shared_data) -> None:
    files = [str(shared_data / "nw_ucla" / "all_sqe" / f"a0{a}_s01_e00_v01.json") for a in (1, 2)]
    result = runner.invoke(app, ["predict", *files, "--run", str(run_folder), "--batch-prior"])
    assert result.exit_code == 0, result.output
    text, answers, decoder = result.stdout, [], json.JSONDecoder()
    while "{" in text:
        answer, end = decoder.raw_decode(text[text.index("{"):])
        answers.append(answer)
        text = text[text.index("{") + end:]
    assert len(answers) == 2 and all(a["batch_prior"] and a["label"] in ACTIONS for a in answers)
    alone = runner.invoke(app, ["predict", files[0], "--run", str(run_folder), "--batch-prior"])
    assert alone.exit_code != 0 and "at least 2" in str(alone.exception)  # `sugar` prints SugarErrors cleanly


def test_an_unknown_run_names_the_released_models(tmp_path, monkeypatch, run_folder) -> None:
    monkeypatch.setattr(released, "RELEASED_DIR", tmp_path)
    released.release_run(run_folder, "tiny-ucla", dataset="nw-ucla", protocol="xview", stream="joint",
                                command="c", metrics={}, check={})
    with pytest.raises(SugarError, match="released models: tiny-ucla"):
        load_recognizer(tmp_path / "no-such-run")


def test_a_released_encoder_evaluates_and_fuses_by_name(tmp_path, monkeypatch) -> None:
    """A stage-2 run released in fp16: `sugar evaluate NAME` writes under ./runs/released, `sugar fuse` takes names."""
    torch.set_num_threads(1)
    run = tmp_path / "joint"
    args = ["pretrain", "--config", "configs/pretrain/synthetic.yaml", "--run-dir", str(run), "--no-progress",
            "--set", "epochs=1", "--set", "max_train_samples=40", "--set", "data.frames=16",
            "--set", "loss=milnce+ce"]
    assert runner.invoke(app, args).exit_code == 0
    monkeypatch.setattr(released, "RELEASED_DIR", tmp_path / "released")
    monkeypatch.chdir(tmp_path)
    refused = runner.invoke(app, ["models", "release", str(run), "tiny-joint", "--command", "c"])
    assert refused.exit_code != 0 and "sugar evaluate" in str(refused.exception)  # not evaluated yet
    assert runner.invoke(app, ["evaluate", str(run), "--no-tsne"]).exit_code == 0
    result = runner.invoke(app, ["models", "release", str(run), "tiny-joint", "--command", "c"])
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "released" / "index.json").read_text())["tiny-joint"]
    ours = json.loads((run / "evaluation" / "test" / "results.json").read_text())["heads"]["text"]["all"]["top1"]
    assert entry["kind"] == "encoder" and entry["metrics"]["head"] == "text" and entry["metrics"]["top1"] == ours
    assert abs(entry["check"]["top1"] - ours) <= 1.5 / entry["check"]["samples"]
    shipped = tmp_path / "released" / "tiny-joint"
    assert not (shipped / "metrics.jsonl").exists() and not list(shipped.glob("checkpoints/ckpt-*"))
    best = load_file(str(shipped / "checkpoints" / "best.safetensors"))
    assert all(t.dtype == (torch.float32 if k.endswith(("running_mean", "running_var")) else torch.float16)
               for k, t in best.items() if t.is_floating_point())

    evaluated = runner.invoke(app, ["evaluate", "tiny-joint", "--no-tsne"])
    assert evaluated.exit_code == 0, evaluated.output
    assert (tmp_path / "runs" / "released" / "tiny-joint" / "evaluation" / "test" / "results.json").is_file()
    assert not (shipped / "evaluation").exists()  # the package folder stays read-only
    fused = runner.invoke(app, ["fuse", "tiny-joint", str(run), "--head", "ce"])
    assert fused.exit_code == 0, fused.output
    listed = runner.invoke(app, ["models", "list"])
    assert "tiny-joint" in listed.stdout and "encoder" in listed.stdout
    shown = runner.invoke(app, ["models", "show", "tiny-joint"])  # the command the list leaves out
    assert shown.exit_code == 0 and "made by" in shown.stdout and f"{100 * ours:.1f} %" in shown.stdout
    unknown = runner.invoke(app, ["models", "show", "no-such-model"])
    assert unknown.exit_code != 0 and "released: tiny-joint" in str(unknown.exception)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(released.released_models()))
def test_each_released_model_keeps_its_recorded_accuracy(name, tmp_path, shared_data) -> None:
    """The shipped fp16 model on the test samples recorded at release time: a seeded subset for recognisers (~1
    min each), the whole test split for encoders."""
    model = released.released_models()[name]
    check = model.check
    if model.kind == released.ENCODER:
        res = evaluate_run(name, check["split"], out_dir=tmp_path, tsne=False)
        assert res["samples"] == check["samples"]
        top1 = res["heads"][check["head"]]["all"]["top1"]
        assert abs(top1 - check["top1"]) <= 1.5 / check["samples"], (name, top1, check)
        assert model.metrics["top1"] > 0.5
        return
    report = evaluate_recognizer_run(name, split=check["split"], limit=check["samples"], out_dir=tmp_path,
                                     progress=False)
    top1 = report["views"]["all"]["top1"]
    assert abs(top1 - check["top1"]) <= 1.5 / check["samples"], (name, top1, check)  # one sample of rounding
    for kind, rep in report["evidence"]["all"].items():  # the per-sample scores behind each row are saved
        saved = load_scores(tmp_path / f"scores-{kind}-all.npz")
        assert saved["logits"].shape == (check["samples"], len(rep["classes"]))
        assert (saved["logits"].argmax(1) == saved["labels"]).mean() == pytest.approx(rep["top1"])
    assert model.metrics["top1"] > 0.5


def test_fp16_copies_keep_batchnorm_statistics_and_large_values_fp32() -> None:
    state = {"bn.running_var": torch.tensor([2.7e6, 1.0]), "bn.running_mean": torch.tensor([0.5]),
             "big.weight": torch.tensor([7e4, 1.0]), "conv.weight": torch.tensor([0.25, -1.5]),
             "bn.num_batches_tracked": torch.tensor(3), "empty": torch.zeros(0)}
    half = released._half(state)
    assert half["conv.weight"].dtype == torch.float16
    assert all(half[k].dtype == torch.float32 for k in ("bn.running_var", "bn.running_mean", "big.weight"))
    assert half["bn.num_batches_tracked"].dtype == torch.int64
    assert torch.isfinite(half["bn.running_var"]).all()


RECOGNISERS = sorted(n for n, m in released.released_models().items() if m.kind == released.RECOGNIZER)


@pytest.mark.parametrize("name", RECOGNISERS)
def test_each_released_recogniser_stores_its_list_prior(name) -> None:
    """`sugar predict --run NAME --actions NEW --list-prior` works from a clean checkout (`sugar list-prior NAME`)."""
    folder = released.released_models()[name].folder
    meta = json.loads((folder / "recognizer.json").read_text())
    tensors = load_file(str(folder / meta["list_prior"]["file"]))
    assert tensors["embeds"].shape[0] == tensors["mask"].shape[0] == meta["list_prior"]["samples"] == 64
