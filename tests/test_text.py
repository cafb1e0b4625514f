"""The frozen text encoder (offline all-MiniLM-L6-v2) and the knowledge-embedding cache."""

from types import SimpleNamespace

import pytest
import torch

from sugar.models import text


def knowledge(labels, tag=""):
    classes = [SimpleNamespace(label=lab, motion_text=f"head still; hand moves; arm {lab}{tag}",
                               visual=[f"A person doing {lab}.", f"Someone {lab}, side view."]) for lab in labels]
    return SimpleNamespace(classes=classes, content_hash=lambda: "h-" + "|".join(labels) + tag)


def test_embeddings_are_cached_by_model_and_content(monkeypatch):
    k = knowledge(["drink water", "kick something"])
    first = text.embed_knowledge(k)
    assert first.motion.shape == (2, 384) and first.visual.shape == (4, 384)
    assert first.visual_owner.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(first.motion.norm(dim=-1), torch.ones(2))

    def no_model(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(text, "get_text_encoder", no_model)
    again = text.embed_knowledge(k)
    torch.testing.assert_close(again.visual, first.visual)
    with pytest.raises(AssertionError, match="cache"):  # changed content -> new key -> needs the model
        text.embed_knowledge(knowledge(["drink water", "kick something"], tag="!"))


def test_similar_texts_are_closer():
    enc = text.get_text_encoder("all-MiniLM-L6-v2")
    e = torch.from_numpy(enc.encode(["a person drinks water", "someone drinking from a cup", "a person kicks a ball"]))
    assert e[0] @ e[1] > e[0] @ e[2]


def test_unknown_model_is_a_clear_error():
    from sugar.errors import ConfigError

    with pytest.raises(ConfigError, match="text_model"):
        text.TextEncoder("/nonexistent/model-folder")
