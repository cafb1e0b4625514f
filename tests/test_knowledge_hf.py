"""The local Hugging Face provider with the offline SmolLM2-135M: loader (GGUF conversion cached) and a
parseable knowledge file written for two classes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sugar import llm_loading
from sugar.cli import app
from sugar.errors import ConfigError
from sugar.knowledge.schema import BODY_PARTS, load_knowledge
from sugar.llm_loading import load_causal_lm, resolve_llm_source, smollm2_gguf_path
from sugar.paths import cache_dir


def test_resolve_llm_source(tmp_path: Path) -> None:
    gguf = smollm2_gguf_path()
    assert resolve_llm_source("smollm2-135m") == (str(gguf.parent), gguf.name)
    assert resolve_llm_source(str(gguf)) == (str(gguf.parent), gguf.name)
    assert resolve_llm_source("meta-llama/Llama-2-7b-hf") == ("meta-llama/Llama-2-7b-hf", None)
    assert resolve_llm_source(tmp_path) == (str(tmp_path), None)
    with pytest.raises(ConfigError, match="GGUF file not found"):
        resolve_llm_source(tmp_path / "model.gguf")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a model folder"):
        resolve_llm_source(tmp_path / "weights.bin")
    with pytest.raises(ConfigError, match="cannot load the language model"):
        load_causal_lm(tmp_path)  # an empty folder


@pytest.mark.slow
def test_smollm2_loads_once_and_writes_knowledge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = load_causal_lm("smollm2-135m")
    assert type(model).__name__ == "LlamaForCausalLM" and tok.pad_token is not None
    converted = [p for p in cache_dir("llm").iterdir() if (p / "config.json").is_file()]
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(llm_loading, "_convert_gguf", no_conversion)
    load_causal_lm(smollm2_gguf_path())  # the .gguf path reuses the converted copy

    actions = tmp_path / "actions.txt"
    actions.write_text("wave\njump up\n")
    out = tmp_path / "k.json"
    result = CliRunner().invoke(app, ["knowledge", "motion", "--actions", str(actions), "--out", str(out),
                                      "--provider", "hf", "--attempts", "4", "--concurrency", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    know = load_knowledge(out)
    assert know.labels == ["wave", "jump up"]
    for cls in know.classes:
        assert all(getattr(cls.motion, p) for p in BODY_PARTS)
        assert cls.description[0].isupper() and cls.description.endswith((".", "!", "?"))
    assert "hf:smollm2-135m" in know.source
