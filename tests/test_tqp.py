"""Bridges: shapes, masking, and the recurrence of the Temporal Query Projection."""

from __future__ import annotations

import pytest
import torch

from sugar.config import BridgeConfig
from sugar.errors import ConfigError
from sugar.models.tqp import QFormerBridge, build_bridge, pad_tokens

CFG = BridgeConfig(num_queries=5, chunk_frames=4, hidden_size=32, num_layers=2, num_heads=4, dropout=0.0)


@pytest.mark.parametrize(("kind", "k"), [("tqp", 5), ("qformer", 5), ("linear", 11), ("pool", 1)])
def test_bridge_shapes(kind: str, k: int) -> None:
    torch.manual_seed(0)
    bridge = build_bridge(BridgeConfig(**{**CFG.__dict__, "kind": kind}), 12, 48).eval()
    out, mask = bridge(torch.randn(3, 11, 12))
    assert out.shape == (3, k, 48)
    assert mask.shape == (3, k) and mask.dtype == torch.bool and mask.all()


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match=r"bridge\.kind"):
        build_bridge(BridgeConfig(kind="mlp"), 4, 4)


def test_tqp_is_recurrent_with_shared_weights() -> None:
    """Output == Q-Former(Q-Former(Q-Former(queries, chunk1), chunk2), chunk3) with ONE set of weights."""
    torch.manual_seed(0)
    bridge = build_bridge(CFG, 12, 48).eval()
    assert isinstance(bridge, QFormerBridge)
    x = torch.randn(2, 10, 12)  # chunks of 4, 4, 2 frames
    with torch.no_grad():
        out, _ = bridge(x)
        q = bridge.query_tokens.expand(2, -1, -1)
        for s in (0, 4, 8):
            q = bridge.qformer(query_embeds=q, encoder_hidden_states=x[:, s:s + 4]).last_hidden_state
        assert torch.allclose(out, bridge.proj(q), atol=1e-5)
    # the parameter count does not grow with the sequence: one Q-Former for every chunk
    assert sum(1 for m in bridge.modules() if type(m).__name__ == "Blip2QFormerModel") == 1


def test_tqp_later_chunk_matters_and_padding_does_not() -> None:
    torch.manual_seed(0)
    bridge = build_bridge(CFG, 12, 48).eval()
    x = torch.randn(1, 12, 12)
    with torch.no_grad():
        base, _ = bridge(x)
        y = x.clone()
        y[:, 9] += 1.0  # last chunk
        assert not torch.allclose(bridge(y)[0], base, atol=1e-4)
        # a shorter sequence padded with garbage equals the same sequence alone
        short = x[:, :6]
        padded, mask = pad_tokens([short[0], x[0]])
        padded[0, 6:] = 100.0
        out, _ = bridge(padded, mask)
        alone, _ = bridge(short)
        assert torch.allclose(out[0], alone[0], atol=1e-5)
        assert torch.allclose(out[1], base[0], atol=1e-5)


@pytest.mark.parametrize("kind", ["qformer", "pool"])
def test_masked_frames_are_ignored(kind: str) -> None:
    torch.manual_seed(0)
    bridge = build_bridge(BridgeConfig(**{**CFG.__dict__, "kind": kind}), 12, 48).eval()
    x = torch.randn(1, 9, 12)
    mask = torch.ones(1, 9, dtype=torch.bool)
    mask[:, 6:] = False
    y = x.clone()
    y[:, 6:] = -50.0
    with torch.no_grad():
        assert torch.allclose(bridge(x, mask)[0], bridge(y, mask)[0], atol=1e-5)
        assert torch.allclose(bridge(x, mask)[0], bridge(x[:, :6])[0], atol=1e-5)


def test_bridge_is_trainable() -> None:
    bridge = build_bridge(CFG, 12, 48)
    out, _ = bridge(torch.randn(2, 9, 12))
    out.square().mean().backward()
    assert bridge.query_tokens.grad is not None and bridge.query_tokens.grad.abs().sum() > 0
