"""`sugar tune` loop on a tiny random LLaMA and synthetic encoder tokens: run directory, selection, resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from stage3helpers import ACTIONS, proxy_run, session_tokenizer, tiny_config, tiny_llm_dir
from sugar.models.recognizer_io import load_recognizer
from sugar.training.instruct import TuneData, tune

CLASSES = ACTIONS[:4]


class _Tokens(torch.utils.data.Dataset):
    """Class-dependent token sequences (a learnable signal) of varying length."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.labels = np.arange(n) % len(CLASSES)
        centres = torch.randn(len(CLASSES), 16, generator=torch.Generator().manual_seed(0)) * 2
        self.items = [centres[y] + 0.3 * torch.randn(int(6 + i % 5), 16, generator=g)
                      for i, y in enumerate(self.labels)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i], int(self.labels[i])


def _data() -> TuneData:
    splits = {"train": _Tokens(24, 1), "val": _Tokens(8, 2), "test": _Tokens(8, 3)}
    return TuneData("toy", list(CLASSES), splits, {k: v.labels for k, v in splits.items()}, 16)


@pytest.fixture(scope="module")
def llm_cfg(tmp_path_factory):
    tok = session_tokenizer(tmp_path_factory)
    folder = tiny_llm_dir(tmp_path_factory.getbasetemp(), tok)
    cfg = replace(tiny_config(str(folder)), knowledge="none", epochs=2, batch_size=4, lr=3e-3, warmup_steps=2,
                  log_every=2, encoder_run=None)
    return cfg


def test_tune_writes_a_loadable_run_and_the_loss_falls(llm_cfg, tmp_path) -> None:
    report = tune(llm_cfg, tmp_path / "run", progress=False, data=_data())
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "report.json", "recognizer.json", "bridge.safetensors",
                 "adapter/adapter_model.safetensors", "checkpoints/last.json", "checkpoints/best.json"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert metrics[1]["loss"] < metrics[0]["loss"]
    assert {"val_top1", "val_top5"} <= set(metrics[0])
    assert report["test"]["samples"] == 8 and 0 <= report["test"]["top1"] <= 1
    # checkpoints hold only what was trained
    weights = load_file(str(run / "checkpoints" / "best.safetensors"))
    assert all(k.startswith(("bridge.", "lora.")) for k in weights)
    rec = load_recognizer(run, with_encoder=False)
    out = rec.recognize([_Tokens(2, 9)[0][0]])
    assert out[0]["label"] in CLASSES
    # the list prior's reference samples: training samples' action tokens, stored with the recogniser
    assert rec.list_prior is not None and 0 < len(rec.list_prior) <= 64
    assert rec.list_prior.embeds.shape[-1] == rec.llm.config.hidden_size


@pytest.mark.parametrize("ema_decay", [0.0, 0.8], ids=["raw", "weight-average"])
def test_resume_after_kill_matches_an_uninterrupted_run(llm_cfg, tmp_path, ema_decay) -> None:
    cfg = replace(llm_cfg, epochs=1, checkpoint_every=2, ema_decay=ema_decay)
    tune(cfg, tmp_path / "full", progress=False, data=_data())
    first = tune(cfg, tmp_path / "killed", progress=False, data=_data(), stop_after_steps=3)
    assert first == {"stopped_at_step": 3}
    assert json.loads((tmp_path / "killed" / "checkpoints" / "last.json").read_text())["step"] == 3
    tune(cfg, tmp_path / "killed", progress=False, data=_data())
    a = load_file(str(tmp_path / "full" / "bridge.safetensors"))
    b = load_file(str(tmp_path / "killed" / "bridge.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_weight_average_keeps_only_trained_weights_and_changes_what_is_kept(llm_cfg, tmp_path) -> None:
    """Stage 3's average covers the bridge and LoRA (never the frozen LLM) and is what the recogniser keeps."""
    cfg = replace(llm_cfg, epochs=1)
    tune(cfg, tmp_path / "raw", progress=False, data=_data())
    tune(replace(cfg, ema_decay=0.8), tmp_path / "ema", progress=False, data=_data())
    raw, ema = (load_file(str(tmp_path / r / "checkpoints" / "best.safetensors")) for r in ("raw", "ema"))
    assert raw.keys() == ema.keys() and all(k.startswith(("bridge.", "lora.")) for k in ema)
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    state = torch.load(next((tmp_path / "ema" / "checkpoints").glob("ckpt-*.state.pt")), weights_only=True)
    averaged = sum(t.numel() for t in state["ema"]["average"])
    assert averaged < 2 * sum(v.numel() for v in ema.values()), "the frozen LLM is not averaged"


def test_keep_last_reselects_a_finished_run_without_training(llm_cfg, tmp_path) -> None:
    """Rerunning a finished recogniser with `keep: last` keeps its last epoch: the final checkpoint's weights."""
    run = tmp_path / "run"
    tune(llm_cfg, run, progress=False, data=_data())
    metrics = (run / "metrics.jsonl").read_text()
    assert json.loads((run / "checkpoints" / "best.json").read_text())["epoch"] < llm_cfg.epochs, \
        "the tiny run's validation must keep an earlier epoch for this test to show anything"
    tune(replace(llm_cfg, keep="last"), run, progress=False, data=_data())
    assert (run / "metrics.jsonl").read_text() == metrics, "nothing was trained again"
    assert json.loads((run / "checkpoints" / "best.json").read_text())["epoch"] == llm_cfg.epochs
    last = json.loads((run / "checkpoints" / "last.json").read_text())["stem"]
    final = load_file(str(run / "checkpoints" / f"{last}.safetensors"))
    kept = load_file(str(run / "checkpoints" / "best.safetensors"))
    assert kept.keys() == final.keys() and all(torch.equal(kept[k], final[k]) for k in kept)


def test_resume_refuses_a_different_config(llm_cfg, tmp_path) -> None:
    from sugar.errors import ConfigError

    cfg = replace(llm_cfg, epochs=1)
    tune(cfg, tmp_path / "run", progress=False, data=_data(), stop_after_steps=1)
    with pytest.raises(ConfigError, match="different settings"):
        tune(replace(cfg, lr=1.0), tmp_path / "run", progress=False, data=_data())


def test_zero_shot_holdout(llm_cfg, tmp_path) -> None:
    cfg = replace(llm_cfg, epochs=1, exclude_classes=(CLASSES[3],))
    report = tune(cfg, tmp_path / "run", progress=False, data=_data())
    assert report["actions"] == CLASSES[:3] and report["excluded"] == [CLASSES[3]]
    assert report["test_unseen"]["samples"] == 2 and report["test_unseen"]["top1"] == 1.0  # a 1-entry list
    assert json.loads((tmp_path / "run" / "recognizer.json").read_text())["actions"] == CLASSES[:3]


def test_zero_shot_with_a_glossed_list_reads_the_held_out_descriptions(llm_cfg, tmp_path) -> None:
    cfg = replace(llm_cfg, epochs=1, exclude_classes=tuple(CLASSES[2:]), knowledge="nw-ucla", list_gloss_words=5)
    report = tune(cfg, tmp_path / "run", progress=False, data=_data())
    assert report["excluded"] == CLASSES[2:] and report["test_unseen"]["samples"] == 4
    saved = json.loads((tmp_path / "run" / "recognizer.json").read_text())
    assert saved["config"]["list_gloss_words"] == 5 and saved["actions"] == CLASSES[:2]


def test_no_progress_hides_the_model_loading_bar(llm_cfg, capfd) -> None:
    from sugar.commands.library_bars import show_library_progress
    from sugar.models.llm import load_causal_lm

    try:
        show_library_progress(False)
        load_causal_lm(llm_cfg.llm)
        assert "Loading weights" not in capfd.readouterr().err
        show_library_progress(True)
        load_causal_lm(llm_cfg.llm)
        assert "Loading weights" in capfd.readouterr().err
    finally:
        show_library_progress(True)


def test_lora_wrap_keeps_peft_deprecation_noise_out_of_logs(llm_cfg) -> None:
    import warnings

    from sugar.config import LoraConfig
    from sugar.models.llm import add_lora, load_causal_lm

    model, _ = load_causal_lm(llm_cfg.llm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        add_lora(model, LoraConfig(r=2))
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def _with_text_head(monkeypatch) -> None:
    """Stand a text head that separates _Tokens' classes in for the encoder run's heads (no classifier; no stage-2
    run on disk)."""
    from sugar.models.evidence import TextEvidence, TextHead
    from sugar.training import instruct

    centres = torch.randn(len(CLASSES), 16, generator=torch.Generator().manual_seed(0)) * 2  # as _Tokens
    head = TextHead(16, len(CLASSES), 30.0)
    with torch.no_grad():
        head.linear.weight.copy_(torch.linalg.pinv(centres).T)
        head.linear.bias.zero_()
    evidence = TextEvidence(head, CLASSES, torch.eye(len(CLASSES)), "all-MiniLM-L6-v2")
    monkeypatch.setattr(instruct, "text_evidence", lambda run, device="cpu": evidence)
    monkeypatch.setattr(instruct, "encoder_evidence", lambda run, device="cpu": (evidence, None))
    monkeypatch.setattr(instruct, "require_pretrain_run", lambda run: run)


def _classifier():
    """A CE classifier over CLASSES that reads _Tokens' class centres (the nearest centre wins)."""
    from sugar.models.evidence import ClassifierEvidence

    centres = torch.randn(len(CLASSES), 16, generator=torch.Generator().manual_seed(0)) * 2  # as _Tokens
    out = ClassifierEvidence(16, CLASSES)
    with torch.no_grad():
        out.linear.weight.copy_(centres * 3)
        out.linear.bias.copy_(-1.5 * (centres**2).sum(1))
    return out


def test_tune_fuses_the_encoders_text_head_chosen_on_val(llm_cfg, tmp_path, monkeypatch) -> None:
    """With an encoder run, `sugar tune` attaches its text head, picks the fusion weight on val, saves both and
    reports the LLM alone, the text head and the fused ranking on test."""
    _with_text_head(monkeypatch)
    cfg = replace(llm_cfg, encoder_run="stage2-run", epochs=1)
    report = tune(cfg, tmp_path / "run", progress=False, data=_data())
    assert report["fusion"]["split"] == "val" and report["fusion"]["samples"] == 8
    assert report["test_text"]["top1"] == 1.0 and report["test_fused"]["top1"] == 1.0
    assert report["fusion"]["weight"] > 0
    rec = load_recognizer(tmp_path / "run", with_encoder=False)
    assert rec.fusion_weight == report["fusion"]["weight"] and rec.evidence is not None
    assert (tmp_path / "run" / "text_head.safetensors").is_file()


def test_tune_fuses_the_encoders_classifier_too_and_saves_its_weight(llm_cfg, tmp_path, monkeypatch) -> None:
    """With an encoder whose CE classifier separates the classes and a text head that does not, the val-chosen
    weights give the classifier a share; the recogniser saves it, reports it on test, and a list with a class the
    classifier never learnt ranks without it. fuse_classifier: false leaves it out."""
    from sugar.models.evidence import TextEvidence, TextHead
    from sugar.training import instruct

    _with_text_head(monkeypatch)
    blind = TextEvidence(TextHead(16, len(CLASSES), 1.0), CLASSES, torch.eye(len(CLASSES)), "all-MiniLM-L6-v2")
    monkeypatch.setattr(instruct, "encoder_evidence", lambda run, device="cpu": (blind, _classifier()))
    cfg = replace(llm_cfg, encoder_run="stage2-run", epochs=1)
    report = tune(cfg, tmp_path / "run", progress=False, data=_data())
    assert report["fusion"]["ce_weight"] > 0 and report["test_ce"]["top1"] == 1.0
    assert report["test_fused"]["top1"] == 1.0
    rec = load_recognizer(tmp_path / "run", with_encoder=False)
    assert rec.ce_weight == report["fusion"]["ce_weight"] and rec.classifier is not None
    assert (tmp_path / "run" / "classifier.safetensors").is_file()
    tokens = [torch.randn(6, 16) for _ in range(3)]
    assert all(r["fusion_ce"] == rec.ce_weight for r in rec.recognize(tokens, describe=False))
    w, v = rec.fusion_weight, rec.ce_weight  # "juggle": the classifier is left out, not guessed
    assert rec.fusion_weights([*CLASSES[:2], "juggle"]) == (pytest.approx(w / (1 - v) if v < 1 else 1.0), 0.0)
    assert all("fusion_ce" not in r for r in rec.recognize(tokens, describe=False, fusion=0.5))  # the user's weight

    off = tune(replace(cfg, fuse_classifier=False), tmp_path / "off", progress=False, data=_data())
    assert "ce_weight" not in off["fusion"] and "test_ce" not in off
    assert load_recognizer(tmp_path / "off", with_encoder=False).classifier is None


def test_tune_on_an_encoder_with_only_a_classifier_fuses_it(llm_cfg, tmp_path, monkeypatch) -> None:
    """An encoder trained with loss: ce (CTR-GCN's own objective) has no text head: the recogniser still fuses its
    classifier, at a weight chosen on val, saved with its calibration and reloaded; `sugar calibrate` redoes it."""
    from sugar.training import instruct
    from sugar.training.instruct import refinish

    _with_text_head(monkeypatch)
    monkeypatch.setattr(instruct, "encoder_evidence", lambda run, device="cpu": (None, _classifier()))
    cfg = replace(llm_cfg, encoder_run="stage2-run", epochs=1, features="feats")
    report = tune(cfg, tmp_path / "run", progress=False, data=_data())
    assert report["fusion"]["weight"] == 0.0 and report["fusion"]["ce_weight"] > 0
    assert report["test_ce"]["top1"] == 1.0 and report["test_fused"]["top1"] == 1.0 and "test_text" not in report
    rec = load_recognizer(tmp_path / "run", with_encoder=False)
    assert rec.evidence is None and rec.ce_weight == report["fusion"]["ce_weight"]
    assert rec.fusion_calibration["samples"] == 8 and len(rec.fusion_calibration["table"]) == 21
    tokens = [torch.randn(6, 16) for _ in range(3)]
    assert all(r["fusion_ce"] == rec.ce_weight for r in rec.recognize(tokens, describe=False))
    assert rec.fusion_weights([*CLASSES[:2], "juggle"]) == (0.0, 0.0)  # a list it cannot score: the LLM alone
    monkeypatch.setattr(instruct, "features_data", lambda cfg: _data())
    monkeypatch.setattr(instruct, "load_recognizer", lambda folder: load_recognizer(folder, with_encoder=False))
    again = refinish(tmp_path / "run")
    assert again["fusion"]["ce_weight"] == report["fusion"]["ce_weight"]


def test_calibrate_on_proxies_saves_their_weight_and_rescores_test(llm_cfg, tmp_path, monkeypatch) -> None:
    """`sugar calibrate RUN --on PROXY...`: the weight chosen on the proxies' saved scores replaces the val-chosen
    one in the saved recogniser, test is scored again at it, and the report keeps the val choice it replaced."""
    from typer.testing import CliRunner

    from sugar.cli import app
    from sugar.training import instruct

    _with_text_head(monkeypatch)
    run = tmp_path / "run"
    tune(replace(llm_cfg, encoder_run="stage2-run", epochs=1, features="feats"), run, progress=False, data=_data())
    monkeypatch.setattr(instruct, "features_data", lambda cfg: _data())
    monkeypatch.setattr(instruct, "load_recognizer", lambda folder: load_recognizer(folder, with_encoder=False))
    proxies = [proxy_run(tmp_path, f"px{i}", 0.9, 0.2, i, classes=list(CLASSES)) for i in (1, 2)]  # trust the LLM
    result = CliRunner().invoke(app, ["calibrate", str(run), "--on", str(proxies[0]), "--on", str(proxies[1])])
    assert result.exit_code == 0, result.output + str(result.exception)
    report = json.loads((run / "report.json").read_text())
    assert report["fusion"]["proxies"] == [str(p) for p in proxies] and report["fusion"]["samples"] == 120
    assert report["fusion"]["weight"] < 0.5
    assert report["fusion_before"]["split"] == "val" and report["test_fused"]["samples"] == 8
    rec = load_recognizer(run, with_encoder=False)
    assert rec.fusion_weight == report["fusion"]["weight"] and rec.fusion_calibration["split"] == "test"


def test_tune_under_cpu_bf16_trains_on_held_bf16_weights_and_ends_in_fp32(llm_cfg, tmp_path, monkeypatch) -> None:
    """cpu_bf16 holds the frozen LLM weights in bf16 during training steps only: validation and the finished run
    see the fp32 model (a saved run's LLM is never bf16)."""
    from sugar.training import frozen_bf16, instruct, loop

    monkeypatch.setattr(instruct, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(loop, "cpu_supports_bf16", lambda: True)  # autocast also where bf16 is emulated
    seen: list[torch.dtype] = []
    lower = frozen_bf16.FrozenLinearsInBf16.lower

    def spy(self) -> None:
        lower(self)
        seen.append(self.linears[0].weight.dtype)

    monkeypatch.setattr(frozen_bf16.FrozenLinearsInBf16, "lower", spy)
    report = tune(replace(llm_cfg, epochs=1, cpu_bf16=True), tmp_path / "run", progress=False, data=_data())
    assert seen and set(seen) == {torch.bfloat16}
    assert report["test"]["samples"] == 8
    rec = load_recognizer(tmp_path / "run", with_encoder=False)
    assert {p.dtype for p in rec.llm.parameters()} == {torch.float32}


def test_tune_refuses_an_encoder_folder_that_is_not_a_stage2_run_before_training(llm_cfg, tmp_path) -> None:
    """The encoder's text head is fused when training ends; an encoder folder copied out of a recogniser has no
    stage-2 config, which used to fail only after the whole training."""
    from sugar.errors import SugarError

    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "encoder.json").write_text("{}")
    with pytest.raises(SugarError, match=r"config\.yaml missing"):
        tune(replace(llm_cfg, encoder_run=str(folder)), tmp_path / "run", progress=False, data=_data())
    assert not (tmp_path / "run").exists()  # refused before the run directory is made (or locked)
