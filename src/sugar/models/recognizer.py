"""The stage-3 recogniser: frozen skeleton encoder -> bridge (TQP) -> frozen LLM with LoRA -> "label. description".

`Recognizer.recognize(samples, actions, knowledge, mode)` answers for a batch of skeletons (or of precomputed
encoder token sequences). The action list is an input, so a different list can be given at inference
(zero-shot). Two decoding modes:

- rank (default): every list entry is scored by the LLM's length-normalised log-likelihood of "{label}." as
  the answer, for all entries in one batched pass (sugar.models.decoding); gives top-k, never answers off list.
- generate (the paper): greedy answer, label parsed out of it and matched to the list
  (sugar.models.matching); label None with "match": "none" when no entry fits.

The prompt prefix (chat preamble + instruction + action list) is identical for every sample of one list; its
KV cache is computed once per list and broadcast to each batch (`use_prefix_cache`).

A saved recogniser folder describes itself: bridge.safetensors, adapter/ (PEFT LoRA), recognizer.json (config,
base LLM name, action list, descriptions) and encoder/ (the frozen skeleton encoder with its processor, a few
MB, so the folder works without the encoder's training run). Only the frozen LLM is loaded from where it lives.
Folders saved before encoder/ was written load their encoder from the recorded `encoder_run`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn
from torch.ao.quantization import quantize_dynamic

from sugar.config import TuneConfig, from_dict, to_dict
from sugar.errors import ConfigError, SugarError
from sugar.fileio import atomic_save_safetensors, atomic_write_text
from sugar.models import decoding
from sugar.models.encoder import load_encoder, save_pretrained
from sugar.models.llm import add_lora, load_causal_lm, load_lora
from sugar.models.matching import match_label
from sugar.models.prompt import IGNORE_INDEX, PromptParts, answer_ids, build_batch, build_prompt, candidate_ids
from sugar.models.tqp import build_bridge, pad_tokens
from sugar.skeleton.datasets import DataSource
from sugar.skeleton.processor import Processor
from sugar.skeleton.sample import Sample

FORMAT = "sugar-recognizer/1"
META_FILE = "recognizer.json"
BRIDGE_FILE = "bridge.safetensors"
ADAPTER_DIR = "adapter"
ENCODER_DIR = "encoder"
RANK_BY = ("label", "answer")


def check_rank_by(value: str | None, name: str = "rank_by") -> str | None:
    """`value` if it is a known rank_by (or None); else a ConfigError naming the option."""
    if value is not None and value not in RANK_BY:
        raise ConfigError(f"{name} {value!r}: choose one of {', '.join(RANK_BY)}")
    return value


def descriptions_from(knowledge: Any) -> dict[str, str]:
    """label -> description from a Knowledge object, a {label: description} mapping, or None."""
    if knowledge is None:
        return {}
    if isinstance(knowledge, Mapping):
        return {str(k): str(v) for k, v in knowledge.items()}
    classes = getattr(knowledge, "classes", None)
    if classes is None:
        raise ConfigError(f"knowledge must be a Knowledge object or a label->description mapping, got "
                          f"{type(knowledge).__name__}")
    return {c.label: c.description for c in classes}


class Recognizer(nn.Module):
    """Encoder (frozen, optional) + bridge + LLM with LoRA adapters."""

    def __init__(self, llm: nn.Module, tokenizer: Any, bridge: nn.Module, cfg: TuneConfig, encoder_dim: int,
                 actions: Sequence[str], descriptions: Mapping[str, str] | None = None,
                 encoder: nn.Module | None = None, processor: Processor | None = None,
                 data: DataSource | None = None):
        super().__init__()
        self.llm = llm
        self.tokenizer = tokenizer
        self.bridge = bridge
        self.cfg = cfg
        self.encoder_dim = encoder_dim
        self.actions: list[str] = list(actions)
        self.descriptions: dict[str, str] = dict(descriptions or {})
        self.encoder = encoder
        if encoder is not None:
            encoder.eval()
            for p in encoder.parameters():
                p.requires_grad_(False)
        self.processor = processor  # how samples become the encoder's input
        self.data = data  # what the encoder was trained on (saved with it)
        self.use_prefix_cache = True
        self._merged = False  # LoRA folded into the base weights (inference only; see merge_lora)
        self.int8 = False  # quantize_int8 was applied (inference only, for good)
        self._prefix: dict[tuple[tuple[str, ...], bool], tuple[PromptParts, Any]] = {}

    # ------------------------------------------------------------------ construction and persistence
    @classmethod
    def build(cls, cfg: TuneConfig, encoder_dim: int, actions: Sequence[str],
              descriptions: Mapping[str, str] | None = None, encoder: nn.Module | None = None,
              processor: Processor | None = None, data: DataSource | None = None,
              llm: nn.Module | None = None, tokenizer: Any = None) -> Recognizer:
        """A fresh recogniser: LLM loaded (or given) and frozen, new LoRA adapters, new bridge."""
        if llm is None:
            llm, tokenizer = load_causal_lm(cfg.llm)
        model = add_lora(llm, cfg.lora)
        bridge = build_bridge(cfg.bridge, encoder_dim, llm.config.hidden_size)
        return cls(model, tokenizer, bridge, cfg, encoder_dim, actions, descriptions, encoder, processor, data)

    @property
    def layout(self) -> Any:
        return getattr(self.encoder, "layout", None)

    @property
    def device(self) -> torch.device:
        return next(self.bridge.parameters()).device

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Bridge weights and LoRA weights (what training changes), for checkpoints."""
        state = {f"bridge.{k}": v for k, v in self.bridge.state_dict().items()}
        state.update({f"lora.{k}": v for k, v in get_peft_model_state_dict(self.llm).items()})
        return state

    def merge_lora(self, merge: bool = True) -> None:
        """Fold the LoRA weights into the base weights (faster inference) or take them out again.

        Training never merges: repeated merge/unmerge would let rounding drift into the frozen base weights.
        `Recognizer.load` merges, and `.train()` unmerges.
        """
        if self.int8:
            return  # LoRA is already folded into the quantised weights for good
        if merge and not self._merged:
            self.llm.merge_adapter()
        elif not merge and self._merged:
            self.llm.unmerge_adapter()
        self._merged = merge
        self.clear_cache()

    def quantize_int8(self) -> Recognizer:
        """Inference on CPU with the LLM's linear layers in int8 (PyTorch dynamic quantisation, fbgemm kernels):
        LoRA is folded into the base weights for good, then every nn.Linear of the LLM is quantised per tensor.
        The bridge and the embeddings stay float32. Training, saving and merging are refused afterwards."""
        if self.device.type != "cpu":
            raise SugarError("int8 dynamic quantisation runs on CPU only; use bf16/fp16 on a GPU")
        if self.int8:
            return self
        self.merge_lora(False)
        plain = self.llm.merge_and_unload()
        with warnings.catch_warnings():  # torch marks quantised tensor creation deprecated (torchao replaces it)
            warnings.simplefilter("ignore", UserWarning)
            self.llm = quantize_dynamic(plain, {nn.Linear}, dtype=torch.qint8)
        self.int8, self._merged = True, True
        self.clear_cache()
        return self

    def load_trainable_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.merge_lora(False)
        self.bridge.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("bridge.")})
        set_peft_model_state_dict(self.llm, {k[5:]: v for k, v in state.items() if k.startswith("lora.")})
        self.clear_cache()

    def save(self, run_dir: str | Path) -> None:
        """Write bridge.safetensors, adapter/ (PEFT format) and recognizer.json into run_dir."""
        if self.int8:
            raise SugarError("an int8-quantised recogniser cannot be saved; save the float one it was made from")

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors(self.bridge.state_dict(), run_dir / BRIDGE_FILE)
        self.llm.save_pretrained(str(run_dir / ADAPTER_DIR))
        meta = {"format": FORMAT, "llm": self.cfg.llm, "encoder_run": self.cfg.encoder_run,
                "encoder_dim": self.encoder_dim, "config": to_dict(self.cfg), "actions": self.actions,
                "descriptions": self.descriptions}
        if self.encoder is not None and self.processor is not None:
            save_pretrained(self.encoder, run_dir / ENCODER_DIR, self.processor, self.data)
        atomic_write_text(run_dir / META_FILE, json.dumps(meta, indent=1))

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu", with_encoder: bool = True,
             llm: nn.Module | None = None, tokenizer: Any = None, merge_lora: bool = True) -> Recognizer:
        """Rebuild a saved recogniser: base LLM from its name, adapters and bridge from run_dir, encoder from its run.

        with_encoder=False skips the encoder (then only precomputed token sequences can be recognised).
        merge_lora folds the adapters into the base weights for inference (undone by `.train()`).
        """
        run_dir = Path(run_dir)
        meta_path = run_dir / META_FILE
        if not meta_path.is_file():
            raise SugarError(f"{run_dir}: not a recogniser run (missing {META_FILE}); run `sugar tune` first")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise SugarError(f"{meta_path}: unreadable ({exc})") from None
        if meta.get("format") != FORMAT:
            raise SugarError(f"{meta_path}: unknown format {meta.get('format')!r}, expected {FORMAT}")
        cfg = from_dict(TuneConfig, meta["config"])
        if llm is None:
            llm, tokenizer = load_causal_lm(meta["llm"])
        model = load_lora(llm, run_dir / ADAPTER_DIR)
        bridge = build_bridge(cfg.bridge, int(meta["encoder_dim"]), llm.config.hidden_size)
        bridge.load_state_dict(load_file(str(run_dir / BRIDGE_FILE)))
        bundle = None
        if with_encoder:
            folder = run_dir / ENCODER_DIR if (run_dir / ENCODER_DIR).is_dir() else meta.get("encoder_run")
            bundle = load_encoder(folder, device) if folder else None
        rec = cls(model, tokenizer, bridge, cfg, int(meta["encoder_dim"]), meta["actions"],
                  meta.get("descriptions") or {}, bundle.encoder if bundle else None,
                  bundle.processor if bundle else None, bundle.data if bundle else None)
        rec = rec.to(device).eval()
        if merge_lora:
            rec.merge_lora()
        return rec

    # ------------------------------------------------------------------ pieces of the forward pass
    def train(self, mode: bool = True) -> Recognizer:
        if mode and self.int8:
            raise SugarError("an int8-quantised recogniser is for inference only")
        if mode:
            self.merge_lora(False)
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()  # frozen: BatchNorm statistics stay as trained
        self.clear_cache()
        return self

    def clear_cache(self) -> None:
        """Forget cached prompt prefixes (they depend on the LoRA weights)."""
        self._prefix.clear()

    def prompt(self, actions: Sequence[str], zero_shot: bool | None = None) -> PromptParts:
        return build_prompt(self.tokenizer, actions, self.cfg.zero_shot_prompt if zero_shot is None else zero_shot)

    @torch.no_grad()
    def encode(self, samples: Sequence[Sample]) -> list[torch.Tensor]:
        """Run the frozen encoder on samples (test-time transform): one [T', d] token sequence each."""
        if self.encoder is None or self.processor is None:
            raise SugarError("this recogniser has no encoder loaded; pass precomputed token sequences instead")
        return list(self.encoder(self.processor.batch(samples).to(self.device)).float())

    def action_tokens(self, tokens: Sequence[torch.Tensor] | torch.Tensor, mask: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder tokens (list of [T_i, d], or [N, T', d] + mask) -> action embeddings [N, K, D] and mask [N, K]."""
        if isinstance(tokens, torch.Tensor) and tokens.dim() == 3:
            x = tokens.to(self.device, torch.float32)
            m = mask.to(self.device) if mask is not None else None
        else:
            x, m = pad_tokens([t.to(self.device, torch.float32) for t in tokens])
        if x.shape[-1] != self.encoder_dim:
            raise SugarError(f"encoder tokens have width {x.shape[-1]}, the bridge expects {self.encoder_dim}")
        return self.bridge(x, m)

    def loss(self, tokens: Sequence[torch.Tensor] | torch.Tensor, labels: Sequence[int],
             mask: torch.Tensor | None = None, actions: Sequence[str] | None = None) -> torch.Tensor:
        """Next-token cross-entropy on "{label}. {description}" given the instruction and the action tokens."""
        actions = list(actions or self.actions)
        parts = self.prompt(actions)
        embeds, amask = self.action_tokens(tokens, mask)
        answers = [answer_ids(self.tokenizer, parts, actions[y], self.descriptions.get(actions[y]),
                              self.cfg.max_answer_tokens) for y in labels]
        batch = build_batch(self.llm.get_input_embeddings(), parts, embeds, amask, answers,
                            self.tokenizer.pad_token_id)
        # logits only where an answer token is predicted: the prompt part of the sequence needs no vocabulary
        # projection (the answer starts at the same column in every row)
        start = len(parts.prefix_ids) + embeds.shape[1] + len(parts.suffix_ids)
        total = batch["labels"].shape[1]
        keep = torch.arange(start - 1, total - 1, device=self.device)
        out = self.llm(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"], logits_to_keep=keep)
        return nn.functional.cross_entropy(out.logits.flatten(0, 1).float(), batch["labels"][:, start:].flatten(),
                                           ignore_index=IGNORE_INDEX)

    def _prefix_cache(self, parts: PromptParts, zero_shot: bool) -> Any:
        key = (parts.actions, zero_shot)
        if key not in self._prefix:
            if len(self._prefix) >= 8:
                self._prefix.pop(next(iter(self._prefix)))
            ids = torch.tensor([parts.prefix_ids], device=self.device)
            _, cache = decoding.run_cached(self.llm, None, input_ids=ids, logits_to_keep=1)
            self._prefix[key] = (parts, cache)
        return self._prefix[key][1]

    @torch.no_grad()
    def context(self, embeds: torch.Tensor, amask: torch.Tensor, parts: PromptParts, zero_shot: bool = False
                ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Run [prefix][action tokens][suffix] for a batch: (cache, 2-D mask, logits of the last position)."""
        n = embeds.shape[0]
        embed = self.llm.get_input_embeddings()
        suffix = embed(torch.tensor(parts.suffix_ids, device=self.device))[None].expand(n, -1, -1)
        x = torch.cat([embeds.to(suffix.dtype), suffix], 1)
        p = len(parts.prefix_ids)
        mask = torch.cat([torch.ones(n, p, dtype=torch.long, device=self.device), amask.long(),
                          torch.ones(n, len(parts.suffix_ids), dtype=torch.long, device=self.device)], 1)
        positions = mask.cumsum(1) - 1  # padded action tokens take no position
        if self.use_prefix_cache:
            cache = decoding.expand_cache(self._prefix_cache(parts, zero_shot), n)
            out, cache = decoding.run_cached(self.llm, cache, inputs_embeds=x, attention_mask=mask,
                                             position_ids=positions[:, p:], logits_to_keep=1)
        else:
            prefix = embed(torch.tensor(parts.prefix_ids, device=self.device))[None].expand(n, -1, -1)
            out, cache = decoding.run_cached(self.llm, None, inputs_embeds=torch.cat([prefix, x], 1),
                                             attention_mask=mask, position_ids=positions, logits_to_keep=1)
        return cache, mask, out.logits[:, -1]

    def _stop_ids(self, parts: PromptParts) -> list[int]:
        stops = list(parts.end_ids[:1])
        if self.tokenizer.eos_token_id is not None:
            stops.append(self.tokenizer.eos_token_id)
        return stops

    # ------------------------------------------------------------------ recognition
    @torch.no_grad()
    def recognize(self, samples: Sequence[Sample | torch.Tensor], actions: Sequence[str] | None = None,
                  knowledge: Any = None, mode: str | None = None, batch_size: int | None = None,
                  describe: bool = True, top_k: int = 5, zero_shot_prompt: bool | None = None,
                  rank_by: str | None = None) -> list[dict[str, Any]]:
        """One result per sample: {label, score, top5, description, knowledge, match, answer}.

        samples: Sample objects (run through the encoder) or precomputed encoder token sequences [T', d].
        actions: the candidate list (default: the training list). knowledge: a Knowledge object or a
        {label: description} mapping, reported as "knowledge" beside the generated description.
        rank: score = softmax over the list of the length-normalised log-likelihoods; top5 from the same.
        rank_by (default cfg.rank_by): "label" scores "{label}."; "answer" scores "{label}. {description}" for
        entries with a description (from `knowledge` or the training knowledge), "{label}." for the others.
        generate: score = geometric-mean probability of the generated answer tokens.
        """
        mode = mode or self.cfg.decode
        if mode not in ("rank", "generate"):
            raise ConfigError(f"mode {mode!r}: choose rank or generate")
        rank_by = check_rank_by(rank_by or self.cfg.rank_by)
        actions = list(actions) if actions is not None else list(self.actions)
        if len(actions) < 1 or len(set(actions)) != len(actions):
            raise ConfigError("the action list must be non-empty and without duplicates")
        refs = {**self.descriptions, **descriptions_from(knowledge)}
        zero_shot = self.cfg.zero_shot_prompt if zero_shot_prompt is None else zero_shot_prompt
        parts = self.prompt(actions, zero_shot)
        tree = decoding.CandidateTree.build([
            candidate_ids(self.tokenizer, a, refs.get(a) if rank_by == "answer" else None, self.cfg.max_answer_tokens)
            for a in actions])
        was_training = self.training
        self.eval()
        results: list[dict[str, Any]] = []
        step = batch_size or self.cfg.eval_batch_size
        try:
            for start in range(0, len(samples), step):
                chunk = samples[start:start + step]
                if all(isinstance(s, Sample) for s in chunk):
                    tokens = self.encode(chunk)  # type: ignore[arg-type]
                elif all(isinstance(s, torch.Tensor) for s in chunk):
                    tokens = list(chunk)
                else:
                    raise SugarError("recognize() takes Sample objects or token tensors [T', d], not a mix")
                embeds, amask = self.action_tokens(tokens)
                ctx = self.context(embeds, amask, parts, zero_shot)
                if mode == "rank":
                    results += self._rank(ctx, parts, tree, actions, describe, top_k)
                else:
                    results += self._generate(ctx, parts, actions)
        finally:
            self.train(was_training)
        for r in results:
            r["knowledge"] = refs.get(r["label"]) if r["label"] is not None else None
        return results

    def _rank(self, ctx: tuple, parts: PromptParts, tree: decoding.CandidateTree, actions: list[str],
              describe: bool, top_k: int) -> list[dict[str, Any]]:
        cache, mask, last = ctx
        scores = decoding.rank_candidates(self.llm, cache, mask, last, tree)  # [N, C]
        probs = torch.softmax(scores, -1)
        order = probs.argsort(-1, descending=True)[:, :top_k]
        best = order[:, 0].tolist()
        descriptions: list[str | None] = [None] * len(best)
        if describe:
            forced = [candidate_ids(self.tokenizer, actions[b]) for b in best]
            ids, _ = decoding.greedy_continue(self.llm, cache, mask, last, self.cfg.max_description_tokens,
                                              self._stop_ids(parts), forced=forced)
            descriptions = [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in ids]
        out = []
        for i, b in enumerate(best):
            top = [(actions[j], float(probs[i, j])) for j in order[i].tolist()]
            out.append({"label": actions[b], "score": float(probs[i, b]), "top5": top,
                        "description": descriptions[i], "match": "rank",
                        "loglik": float(scores[i, b])})
        return out

    def _generate(self, ctx: tuple, parts: PromptParts, actions: list[str]) -> list[dict[str, Any]]:
        cache, mask, last = ctx
        budget = self.cfg.max_answer_tokens + self.cfg.max_description_tokens
        ids, mean_lp = decoding.greedy_continue(self.llm, cache, mask, last, budget, self._stop_ids(parts))
        out = []
        for t, lp in zip(ids, mean_lp, strict=True):
            answer = self.tokenizer.decode(t, skip_special_tokens=True).strip()
            m = match_label(answer, actions)
            score = math.exp(lp) if m.label is not None else 0.0
            out.append({"label": m.label, "score": score, "top5": [(m.label, score)] if m.label else [],
                        "description": m.description, "match": m.match, "similarity": m.similarity,
                        "answer": answer})
        return out
