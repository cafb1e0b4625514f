"""A recogniser folder on disk: what `sugar tune` writes and `sugar predict`, `sugar serve` and the demo load.

The folder describes itself: bridge.safetensors, adapter/ (PEFT LoRA), recognizer.json (config, base LLM name,
action list, descriptions) and encoder/ (the frozen skeleton encoder with its processor, a few MB, so the folder
works without the encoder's training run). Only the frozen LLM is loaded from where it lives. Folders saved
before encoder/ was written load their encoder from the recorded `encoder_run`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from sugar.config import TuneConfig, from_dict, to_dict
from sugar.errors import SugarError
from sugar.fileio import atomic_save_safetensors, atomic_write_text, read_json_object
from sugar.models.encoder import load_encoder, save_pretrained
from sugar.models.evidence import ClassifierEvidence, TextEvidence
from sugar.models.inference import merge_lora as fold_lora
from sugar.models.list_prior import FILE as LIST_PRIOR_FILE
from sugar.models.list_prior import ListPrior
from sugar.models.llm import load_causal_lm, load_lora
from sugar.models.recognizer import Recognizer
from sugar.models.released import resolve_run, unknown_run_hint
from sugar.models.tqp import build_bridge

FORMAT = "sugar-recognizer/1"
META_FILE = "recognizer.json"
BRIDGE_FILE = "bridge.safetensors"
ADAPTER_DIR = "adapter"
ENCODER_DIR = "encoder"
TEXT_HEAD_FILE = "text_head.safetensors"  # the encoder's stage-2 text head (sugar.models.evidence), optional
CLASSIFIER_FILE = "classifier.safetensors"  # the encoder's stage-2 CE classifier (sugar.models.evidence), optional


def save_recognizer(rec: Recognizer, folder: str | Path) -> None:
    """Write bridge.safetensors, adapter/ (PEFT format), encoder/ and recognizer.json into `folder`."""
    if rec.int8 or rec.bf16:
        raise SugarError("an int8 or bf16 inference recogniser cannot be saved; save the float one it was made from")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(rec.bridge.state_dict(), folder / BRIDGE_FILE)
    rec.llm.save_pretrained(str(folder / ADAPTER_DIR))
    meta = {"format": FORMAT, "llm": rec.cfg.llm, "encoder_run": rec.cfg.encoder_run,
            "encoder_dim": rec.encoder_dim, "config": to_dict(rec.cfg), "actions": rec.actions,
            "descriptions": rec.descriptions}
    if rec.evidence is not None:
        atomic_save_safetensors({k: v.contiguous().cpu() for k, v in rec.evidence.tensors().items()},
                                folder / TEXT_HEAD_FILE)
        meta["evidence"] = {**rec.evidence.describe(), "weight": rec.fusion_weight,
                            "calibration": rec.fusion_calibration}
    if rec.classifier is not None:
        atomic_save_safetensors({k: v.contiguous().cpu() for k, v in rec.classifier.tensors().items()},
                                folder / CLASSIFIER_FILE)
        meta["classifier"] = {**rec.classifier.describe(), "weight": rec.ce_weight}
        if rec.evidence is None:  # a classifier-only fusion (loss: ce encoder) keeps its calibration here
            meta["classifier"]["calibration"] = rec.fusion_calibration
    if rec.new_class_bias:
        meta["new_class_bias"] = {"bias": rec.new_class_bias, "calibration": rec.new_class_calibration}
    if rec.list_prior is not None:
        meta["list_prior"] = _save_list_prior(rec.list_prior, folder)
    if rec.encoder is not None and rec.processor is not None:
        save_pretrained(rec.encoder, folder / ENCODER_DIR, rec.processor, rec.data)
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=1))  # last: its presence means complete


def load_recognizer(folder: str | Path, device: str | torch.device = "cpu", with_encoder: bool = True,
                    llm: nn.Module | None = None, tokenizer: Any = None, merge_lora: bool = True) -> Recognizer:
    """Rebuild a saved recogniser: base LLM from its name, adapters, bridge and encoder from `folder`.

    with_encoder=False skips the encoder (then only precomputed token sequences can be recognised).
    A folder with text_head.safetensors also gets the encoder's text head and the fusion weight it was saved with;
    one with classifier.safetensors, the encoder's CE classifier and its weight; one with list_prior.safetensors,
    the reference samples of the LLM's list prior.
    merge_lora folds the adapters into the base weights for inference (undone by `.train()`).
    A released model's name (`nw-ucla`, see models/released.py) stands for its folder.
    """
    folder = resolve_run(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise SugarError(f"{folder}: not a recogniser run (missing {META_FILE}); run `sugar tune` first"
                         f"{unknown_run_hint()}")
    meta = read_json_object(meta_path, "recogniser description", SugarError)
    if meta.get("format") != FORMAT:
        raise SugarError(f"{meta_path}: unknown format {meta.get('format')!r}, expected {FORMAT}")
    cfg = from_dict(TuneConfig, meta["config"])
    if llm is None:
        llm, tokenizer = load_causal_lm(meta["llm"])
    model = load_lora(llm, folder / ADAPTER_DIR)
    bridge = build_bridge(cfg.bridge, int(meta["encoder_dim"]), llm.config.hidden_size)
    bridge.load_state_dict(load_file(str(folder / BRIDGE_FILE)))
    bundle = None
    if with_encoder:
        encoder_folder = folder / ENCODER_DIR if (folder / ENCODER_DIR).is_dir() else meta.get("encoder_run")
        bundle = load_encoder(encoder_folder, device) if encoder_folder else None
    rec = Recognizer(model, tokenizer, bridge, cfg, int(meta["encoder_dim"]), meta["actions"],
                     meta.get("descriptions") or {}, bundle.encoder if bundle else None,
                     bundle.processor if bundle else None, bundle.data if bundle else None)
    rec = rec.to(device).eval()
    evidence = meta.get("evidence")
    if evidence and (folder / TEXT_HEAD_FILE).is_file():
        rec.attach_evidence(TextEvidence.from_saved(evidence, load_file(str(folder / TEXT_HEAD_FILE))),
                            float(evidence.get("weight", 0.0)))
        rec.fusion_calibration = evidence.get("calibration") or {}
    classifier = meta.get("classifier")
    if classifier and (folder / CLASSIFIER_FILE).is_file():
        rec.attach_classifier(ClassifierEvidence.from_saved(classifier, load_file(str(folder / CLASSIFIER_FILE))),
                              float(classifier.get("weight", 0.0)))
        if rec.evidence is None:
            rec.fusion_calibration = classifier.get("calibration") or {}
    stacking = meta.get("new_class_bias") or {}
    rec.new_class_bias = float(stacking.get("bias", 0.0))
    rec.new_class_calibration = stacking.get("calibration") or {}
    if meta.get("list_prior") and (folder / LIST_PRIOR_FILE).is_file():
        rec.list_prior = ListPrior.from_tensors(load_file(str(folder / LIST_PRIOR_FILE)))
    if merge_lora:
        fold_lora(rec)
    return rec


def _save_list_prior(prior: ListPrior, folder: Path) -> dict[str, Any]:
    """Write the reference samples; return their entry in recognizer.json."""
    atomic_save_safetensors(prior.tensors(), folder / LIST_PRIOR_FILE)
    return {"file": LIST_PRIOR_FILE, "samples": len(prior)}


def record_list_prior(folder: str | Path, prior: ListPrior) -> Path:
    """Store the reference samples of the LLM's list prior in a saved recogniser (nothing else changes): for
    released folders and runs tuned before `sugar tune` stored them."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    meta = read_json_object(meta_path, "recogniser description", SugarError)
    meta["list_prior"] = _save_list_prior(prior, folder)
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return meta_path


def record_new_class_bias(folder: str | Path, bias: float, calibration: dict[str, Any]) -> Path:
    """Store a never-seen-class bias in a saved recogniser's recognizer.json (nothing else changes)."""
    meta_path = Path(folder) / META_FILE
    meta = read_json_object(meta_path, "recogniser description", SugarError)
    meta["new_class_bias"] = {"bias": float(bias), "calibration": calibration}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return meta_path
