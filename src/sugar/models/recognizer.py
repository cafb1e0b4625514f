"""The stage-3 recogniser: frozen skeleton encoder -> bridge (TQP) -> frozen LLM with LoRA -> "label. description".

This module is the model: its parts, what training changes, preprocessing of skeletons into encoder tokens and
the training loss. Its jobs live beside it:
- sugar.models.answering: the prompt context with its cached prefix, rank and generate decoding;
- sugar.models.inference: inference-time transforms (LoRA merged into the base weights, int8);
- sugar.models.recognizer_io: the self-describing folder (save_recognizer / load_recognizer).

`Recognizer.recognize(samples, actions, knowledge, mode)` answers for a batch of skeletons (or of precomputed
encoder token sequences). The action list is an input, so a different list can be given at inference
(zero-shot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from sugar.config import TuneConfig
from sugar.errors import ConfigError, SugarError
from sugar.models import answering, decoding
from sugar.models.evidence import ClassifierEvidence, TextEvidence, without_classifier
from sugar.models.inference import merge_lora
from sugar.models.list_prior import ListPrior
from sugar.models.llm import add_lora, load_causal_lm
from sugar.models.prompt import IGNORE_INDEX, PromptParts, answer_ids, build_batch, build_prompt, build_row_batch, gloss
from sugar.models.tqp import build_bridge, pad_tokens
from sugar.skeleton.datasets import DataSource
from sugar.skeleton.processor import Processor
from sugar.skeleton.sample import Sample

_Head = TypeVar("_Head", bound=nn.Module | None)  # an encoder head, or none


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
        self.prefix_cache = decoding.PrefixCache()  # per action list; depends on the LoRA weights
        self.merged = False  # LoRA folded into the base weights (sugar.models.inference.merge_lora)
        self.int8 = False  # sugar.models.inference.quantize_int8 was applied (inference only, for good)
        self.bf16 = False  # sugar.models.inference.cast_bf16 was applied (inference only, for good)
        self.encoder_bf16 = False  # the encoder runs under bf16 autocast (sugar.models.inference.set_encoder_precision)
        self.share_prefix = True  # training runs the shared prompt prefix once per batch (see `loss`)
        self.rank_separating = False  # rank scores each entry only up to its first token no other entry shares
        self.evidence: TextEvidence | None = None  # the encoder's text head (sugar.models.evidence), if attached
        self.fusion_weight = 0.0  # weight of the text head in rank mode, chosen on validation; 0 = LLM alone
        self.fusion_calibration: dict[str, Any] = {}  # how the weight was chosen (split, samples, table)
        self.classifier: ClassifierEvidence | None = None  # the encoder's CE head, if attached (a third opinion)
        self.ce_weight = 0.0  # its weight in rank mode, chosen on validation with fusion_weight; 0 = not used
        # rank mode: added to the fused log-probability of list entries outside `actions` (calibrated stacking,
        # `sugar calibrate-unseen --whole-list --save`), so that new classes can win against the tuned ones
        self.new_class_bias = 0.0
        self.new_class_calibration: dict[str, Any] = {}  # how the bias was chosen (donor runs, split, table)
        # reference samples whose mean answer is divided out of lists with untuned entries (sugar.models.list_prior)
        self.list_prior: ListPrior | None = None
        self.prior_cache = decoding.PrefixCache()  # the log prior of each list; depends on the LoRA weights

    def attach_evidence(self, evidence: TextEvidence | None, weight: float = 0.0) -> None:
        """Use the encoder's text head as a second opinion in rank mode, with this weight (frozen, not trained)."""
        self.evidence = self._frozen(evidence)
        self.fusion_weight = float(weight) if evidence is not None else 0.0

    def attach_classifier(self, classifier: ClassifierEvidence | None, weight: float = 0.0) -> None:
        """Use the encoder's CE classifier as a third opinion in rank mode on lists of its classes (frozen)."""
        self.classifier = self._frozen(classifier)
        self.ce_weight = float(weight) if classifier is not None else 0.0

    def _frozen(self, module: _Head) -> _Head:
        """An encoder head on this recogniser's device, in eval mode and out of training's reach."""
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(False)
            module.to(self.device).eval()
        return module

    def fusion_weights(self, actions: Sequence[str], fusion: float | None = None) -> tuple[float, float]:
        """(text head, classifier) weights for ranking `actions`: the calibrated pair, the classifier's dropped on a
        list it cannot score; `fusion` given: that text weight and no classifier (the user's choice)."""
        if fusion is not None:
            return float(fusion), 0.0
        if self.classifier is None or self.ce_weight <= 0.0:
            return self.fusion_weight, 0.0
        if not self.classifier.covers(actions):
            return (without_classifier(self.fusion_weight, self.ce_weight) if self.evidence is not None else 0.0), 0.0
        return self.fusion_weight, self.ce_weight

    # ------------------------------------------------------------------ construction
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

    def load_trainable_state(self, state: Mapping[str, torch.Tensor]) -> None:
        merge_lora(self, False)
        self.bridge.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("bridge.")})
        set_peft_model_state_dict(self.llm, {k[5:]: v for k, v in state.items() if k.startswith("lora.")})
        self.clear_cache()

    # ------------------------------------------------------------------ pieces of the forward pass
    def train(self, mode: bool = True) -> Recognizer:
        if mode and (self.int8 or self.bf16):
            raise SugarError(f"an {'int8' if self.int8 else 'bf16'} recogniser is for inference only")
        if mode:
            merge_lora(self, False)
        if mode or self.training:  # weights change only in training mode: eval() after eval() keeps the prefixes
            self.clear_cache()
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()  # frozen: BatchNorm statistics stay as trained
        return self

    def clear_cache(self) -> None:
        """Forget cached prompt prefixes and list priors (they depend on the LoRA weights)."""
        self.prefix_cache.clear()
        self.prior_cache.clear()

    def prompt(self, actions: Sequence[str], zero_shot: bool | None = None,
               knowledge: Mapping[str, str] | None = None) -> PromptParts:
        """The instruction for `actions`; with cfg.list_gloss_words each entry carries a gloss of its description
        (`knowledge`, label -> description, over the training descriptions), which every entry must then have."""
        glosses = None
        if self.cfg.list_gloss_words > 0:
            table = {**self.descriptions, **(knowledge or {})}
            missing = [a for a in actions if not table.get(a)]
            if missing:
                raise ConfigError(f"this recogniser lists each action with its description (list_gloss_words="
                                  f"{self.cfg.list_gloss_words}); no description for {missing[:5]}: pass knowledge "
                                  "for the list")
            glosses = [gloss(table[a], self.cfg.list_gloss_words) for a in actions]
        return build_prompt(self.tokenizer, actions, self.cfg.zero_shot_prompt if zero_shot is None else zero_shot,
                            glosses)

    @torch.no_grad()
    def encode(self, samples: Sequence[Sample]) -> list[torch.Tensor]:
        """Run the frozen encoder on samples (test-time transform): one [T', d] token sequence each."""
        if self.encoder is None or self.processor is None:
            raise SugarError("this recogniser has no encoder loaded; pass precomputed token sequences instead")
        x = self.processor.batch(samples).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.encoder_bf16):
            return list(self.encoder(x).float())

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
             mask: torch.Tensor | None = None, actions: Sequence[str] | None = None,
             lists: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
        """Next-token cross-entropy on "{label}. {description}" given the instruction and the action tokens.

        lists: one action list per row for the instruction (each must contain the row's label); default: the
        same list, `actions`, for every row."""
        actions = list(actions or self.actions)
        embeds, amask = self.action_tokens(tokens, mask)
        embed = self.llm.get_input_embeddings()
        if lists is None:
            parts = self.prompt(actions)
            answers = [answer_ids(self.tokenizer, parts, actions[y], self.descriptions.get(actions[y]),
                                  self.cfg.max_answer_tokens) for y in labels]
            batch = build_batch(embed, parts, embeds, amask, answers, self.tokenizer.pad_token_id)
        else:
            row_parts = [self.prompt(row) for row in lists]
            if any(actions[y] not in row for y, row in zip(labels, lists, strict=True)):
                raise SugarError("every row's action list must contain the row's label")
            parts = row_parts[0]
            answers = [answer_ids(self.tokenizer, parts, actions[y], self.descriptions.get(actions[y]),
                                  self.cfg.max_answer_tokens) for y in labels]
            batch = build_row_batch(embed, row_parts, embeds, amask, answers, self.tokenizer.pad_token_id)
        # logits only where an answer token is predicted: the prompt part of the sequence needs no vocabulary
        # projection (the answer starts at the same column in every row)
        p = len(parts.prefix_ids)  # shared by every row when all rows have the same list
        start = int(batch["action_start"][0]) + embeds.shape[1] + len(parts.suffix_ids)
        total = batch["labels"].shape[1]
        if self.share_prefix and lists is None and p > 0:
            # the prompt prefix is the same in every row: run it once (with gradients: LoRA changes its keys
            # and values) and broadcast its cache to the batch; the same function, ~half the tokens at batch 8
            _, prefix = decoding.run_cached(self.llm, None, inputs_embeds=batch["inputs_embeds"][:1, :p],
                                            logits_to_keep=1)
            keep = torch.arange(start - 1 - p, total - 1 - p, device=self.device)
            out, _ = decoding.run_cached(self.llm, decoding.expand_cache(prefix, embeds.shape[0]),
                                         inputs_embeds=batch["inputs_embeds"][:, p:],
                                         attention_mask=batch["attention_mask"],
                                         position_ids=batch["position_ids"][:, p:], logits_to_keep=keep)
        else:
            keep = torch.arange(start - 1, total - 1, device=self.device)
            out = self.llm(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"], logits_to_keep=keep)
        return nn.functional.cross_entropy(out.logits.flatten(0, 1).float(), batch["labels"][:, start:].flatten(),
                                           ignore_index=IGNORE_INDEX, label_smoothing=self.cfg.label_smoothing)

    # ------------------------------------------------------------------ recognition
    @torch.no_grad()
    def recognize(self, samples: Sequence[Sample | torch.Tensor], actions: Sequence[str] | None = None,
                  knowledge: Any = None, mode: str | None = None, batch_size: int | None = None,
                  describe: bool = True, top_k: int = 5, zero_shot_prompt: bool | None = None,
                  rank_by: str | None = None, fusion: float | None = None, list_prior: bool | None = None,
                  batch_prior: bool = False) -> list[dict[str, Any]]:
        """One result per sample: {label, score, top5, description, knowledge, match, answer}.

        samples: Sample objects (run through the encoder) or precomputed encoder token sequences [T', d].
        actions: the candidate list (default: the training list). knowledge: a Knowledge object or a
        {label: description} mapping, reported as "knowledge" beside the generated description.
        rank: score = softmax over the list of the length-normalised log-likelihoods; top5 from the same.
        rank_by (default cfg.rank_by): "label" scores "{label}."; "answer" scores "{label}. {description}" for
        entries with a description (from `knowledge` or the training knowledge), "{label}." for the others.
        fusion (rank mode): weight of the encoder's text head beside the LLM (sugar.models.evidence); None = the
        weights calibrated on validation (text head, and the encoder's CE classifier on lists of its classes; 0 when
        the recogniser has neither), 0 = the LLM alone.
        list_prior (rank mode): divide the LLM's prior over the list out of its scores (sugar.models.list_prior;
        needs the reference samples `sugar tune` stores); None = on lists with entries the LLM was not tuned on.
        batch_prior (rank mode): divide the samples' own mean answer out of the ranking (sugar.models.list_prior,
        `batch_corrected`); for a set of at least 2 samples that covers the list roughly evenly.
        generate: score = geometric-mean probability of the generated answer tokens.
        """
        return answering.recognize(self, samples, actions, knowledge, mode, batch_size, describe, top_k,
                                   zero_shot_prompt, rank_by, fusion, list_prior, batch_prior)
