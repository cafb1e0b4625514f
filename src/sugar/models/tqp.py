"""Bridges from encoder tokens [N, T', d] to LLM input embeddings [N, K, D]: the Temporal Query Projection and
the paper's ablation alternatives.

TQP (the paper's bridge): the sequence is cut into chunks of `chunk_frames` tokens; a BLIP-2 Q-Former with L
learnable queries reads chunk 1; its L output tokens are the queries for chunk 2, and so on, with the same
weights for every chunk; a linear layer maps the final L tokens to the LLM width. Alternatives (BridgeConfig.kind):
"qformer" (one Q-Former pass over the whole sequence), "linear" (one token per encoder frame), "pool" (mean over
time, one token), "text" (one token through the stage-2 text head and a fixed map into the LLM's name
embeddings, fitted by sugar.models.text_map).

Every bridge takes an optional boolean `mask` [N, T'] (True = a real frame) for batches of sequences of
different lengths and returns (embeds [N, K, D], mask [N, K]).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from sugar.config import BridgeConfig
from sugar.errors import ConfigError

BRIDGE_KINDS = ("tqp", "qformer", "linear", "pool", "text")


def _full_mask(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if mask.shape != tokens.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match tokens {tuple(tokens.shape[:2])}")
    return mask.to(device=tokens.device, dtype=torch.bool)


class QFormerBridge(nn.Module):
    """Learnable queries + Q-Former over chunks (recurrent TQP) or over the whole sequence (chunk_frames=None)."""

    def __init__(self, cfg: BridgeConfig, in_dim: int, out_dim: int, recurrent: bool = True):
        super().__init__()
        if cfg.hidden_size % cfg.num_heads:
            raise ConfigError(f"bridge.hidden_size {cfg.hidden_size} is not divisible by bridge.num_heads "
                              f"{cfg.num_heads}")
        if recurrent and cfg.chunk_frames < 1:
            raise ConfigError(f"bridge.chunk_frames must be >= 1, got {cfg.chunk_frames}")
        qcfg = Blip2QFormerConfig(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                                  num_attention_heads=cfg.num_heads,
                                  intermediate_size=cfg.intermediate_size or 4 * cfg.hidden_size,
                                  hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                                  cross_attention_frequency=1, encoder_hidden_size=in_dim)
        self.recurrent = recurrent
        self.chunk_frames = cfg.chunk_frames
        self.qformer = Blip2QFormerModel(qcfg)
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.hidden_size) * 0.02)
        self.proj = nn.Linear(cfg.hidden_size, out_dim)

    def _read(self, queries: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.qformer(query_embeds=queries, encoder_hidden_states=frames,
                           encoder_attention_mask=mask.long()).last_hidden_state
        return out

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _full_mask(tokens, mask)
        n, t, _ = tokens.shape
        queries = self.query_tokens.expand(n, -1, -1)
        if not self.recurrent:
            queries = self._read(queries, tokens, mask)
        else:
            for start in range(0, t, self.chunk_frames):
                chunk_mask = mask[:, start:start + self.chunk_frames]
                has_frames = chunk_mask.any(1)
                if not has_frames.any():
                    break  # every sequence in the batch has ended
                new = self._read(queries, tokens[:, start:start + self.chunk_frames], chunk_mask | ~has_frames[:, None])
                # a sequence that has already ended keeps its summary (its chunk is padding only)
                queries = torch.where(has_frames[:, None, None], new, queries)
        embeds = self.proj(queries)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device)


class LinearBridge(nn.Module):
    """One LLM token per encoder frame (ablation "linear")."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(tokens), _full_mask(tokens, mask)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """[N, T', d] -> [N, d]: the mean over each sequence's real frames."""
    m = _full_mask(tokens, mask).to(tokens.dtype)[..., None]
    return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)


def _one_token(embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return embeds[:, None], torch.ones(embeds.shape[0], 1, dtype=torch.bool, device=embeds.device)


class PoolBridge(nn.Module):
    """Masked mean over time, then linear: a single action token (ablation "pool")."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return _one_token(self.proj(masked_mean(tokens, mask)))


class TextBridge(nn.Module):
    """Masked mean -> the frozen stage-2 text head (unit vector in the text space) -> a frozen map into the LLM's
    name embeddings, times a trained gain: one action token that reads like the name of the class it is near.

    Why: a freely trained bridge gives an unseen class a vector that means nothing to the LLM; the text head
    already places skeletons of unseen classes near their texts. Head and map are loaded by `sugar tune`
    (sugar.models.text_map.init_text_bridge) and saved with the bridge's state."""

    def __init__(self, in_dim: int, text_dim: int, out_dim: int):
        super().__init__()
        self.head = nn.Linear(in_dim, text_dim).requires_grad_(False)
        self.map = nn.Linear(text_dim, out_dim).requires_grad_(False)
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        text = nn.functional.normalize(self.head(masked_mean(tokens, mask)), dim=-1)
        return _one_token(self.gain * self.map(text))


def build_bridge(cfg: BridgeConfig, in_dim: int, out_dim: int) -> nn.Module:
    """The bridge named by cfg.kind, mapping encoder width `in_dim` to LLM width `out_dim`."""
    if cfg.kind == "tqp":
        return QFormerBridge(cfg, in_dim, out_dim, recurrent=True)
    if cfg.kind == "qformer":
        return QFormerBridge(cfg, in_dim, out_dim, recurrent=False)
    if cfg.kind == "linear":
        return LinearBridge(in_dim, out_dim)
    if cfg.kind == "pool":
        return PoolBridge(in_dim, out_dim)
    if cfg.kind == "text":
        return TextBridge(in_dim, cfg.text_dim, out_dim)
    raise ConfigError(f"bridge.kind {cfg.kind!r}: choose one of {', '.join(BRIDGE_KINDS)}")


def pad_tokens(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad [T_i, d] sequences to [N, max T, d] with a boolean mask of real frames."""
    if not sequences:
        raise ValueError("no sequences to pad")
    t = max(s.shape[0] for s in sequences)
    d = sequences[0].shape[1]
    out = sequences[0].new_zeros(len(sequences), t, d)
    mask = torch.zeros(len(sequences), t, dtype=torch.bool, device=out.device)
    for i, s in enumerate(sequences):
        out[i, :s.shape[0]] = s
        mask[i, :s.shape[0]] = True
    return out, mask
