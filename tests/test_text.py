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


def test_label_embeddings_are_computed_and_cached(monkeypatch):
    k = knowledge(["wave", "sit down"])
    emb = text.embed_knowledge(k)
    enc = text.get_text_encoder("all-MiniLM-L6-v2")
    torch.testing.assert_close(emb.label, torch.from_numpy(enc.encode(["wave", "sit down"])))
    monkeypatch.setattr(text, "get_text_encoder", lambda *a, **kw: (_ for _ in ()).throw(AssertionError("cache")))
    torch.testing.assert_close(text.embed_knowledge(k).label, emb.label)  # from the cache, labels included
    # the label template is part of the key: another template cannot reuse these embeddings
    monkeypatch.setattr(text, "LABEL_TEXT", "a person doing {label}")
    with pytest.raises(AssertionError, match="cache"):
        text.embed_knowledge(k)


def test_cache_entry_without_labels_is_recomputed(monkeypatch):
    from safetensors.torch import load_file, save_file

    k = knowledge(["clap", "bow"], tag="#old")
    text.embed_knowledge(k)
    path = text.embedding_cache_path(k, "all-MiniLM-L6-v2")
    save_file({key: v for key, v in load_file(str(path)).items() if key != "label"}, str(path))  # as older code
    again = text.embed_knowledge(k)
    assert again.label is not None and again.label.shape == (2, 384)
    assert "label" in load_file(str(path))


def test_a_file_of_mostly_generator_templates_is_embedded_as_names():
    """When most motions are the offline generator's fallback template, every class's motion text is its name
    (label-only supervision); a file with real motion for most classes is embedded as written."""
    from sugar.knowledge.checks import template_motion
    from sugar.knowledge.schema import Motion

    real = Motion(head="looks at the cup", hand="grips the cup", arm="lifts the cup to the mouth",
                  hip="stays still", leg="stays still", foot="stays planted")

    def cls(label, motion):
        return SimpleNamespace(label=label, motion=motion, motion_text=motion.text(), visual=[f"{label} seen"])

    mostly = SimpleNamespace(classes=[cls("wave", template_motion("wave")), cls("clap", template_motion("clap")),
                                      cls("drink", real)])
    labels, motion, visual = text.knowledge_texts(mostly)
    assert text.names_only(mostly) and motion == text.label_texts(labels)
    assert visual == [["wave seen"], ["clap seen"], ["drink seen"]]
    few = SimpleNamespace(classes=[cls("wave", template_motion("wave")), cls("drink", real), cls("sip", real)])
    _, motion, _ = text.knowledge_texts(few)
    assert not text.names_only(few) and motion == [template_motion("wave").text(), real.text(), real.text()]
