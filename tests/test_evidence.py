"""The encoder's text head as a second opinion beside the LLM (sugar.models.evidence): fusion arithmetic, the
weight chosen on validation, recognise with it, and save/load of the head and its weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stage3helpers import ACTIONS
from sugar.errors import ConfigError
from sugar.evaluation.recognizer import calibrate, evidence_scores
from sugar.models.evidence import (
    ClassifierEvidence,
    TextEvidence,
    TextHead,
    choose_weight,
    choose_weights,
    fuse,
    open_list_weights,
    without_classifier,
)
from sugar.models.recognizer_io import load_recognizer, save_recognizer


def _evidence(dim: int = 16, scale: float = 20.0) -> tuple[TextEvidence, torch.Tensor]:
    """A text head that maps class centre c (in token space) onto prototype c: it recognises the toy data."""
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(len(ACTIONS), dim, generator=g) * 2
    head = TextHead(dim, len(ACTIONS), scale)
    with torch.no_grad():  # features = normalize(W x): W = pseudo-inverse of the centres, prototypes = identity
        head.linear.weight.copy_(torch.linalg.pinv(centres).T)
        head.linear.bias.zero_()
    return TextEvidence(head, ACTIONS, torch.eye(len(ACTIONS)), "all-MiniLM-L6-v2"), centres


def _samples(centres: torch.Tensor, n: int, seed: int) -> tuple[list[torch.Tensor], np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    labels = np.arange(n) % len(centres)
    return [centres[y] + 0.05 * torch.randn(6, centres.shape[1], generator=g) for y in labels], labels


def test_fuse_ends_are_each_evidence_alone() -> None:
    llm = np.array([[0.0, 2.0, 1.0]])
    text = np.array([[3.0, 0.0, 1.0]])
    assert int(fuse(llm, text, 0.0).argmax()) == 1
    assert int(fuse(llm, text, 1.0).argmax()) == 0
    assert torch.allclose(fuse(llm, text, 0.4).exp().sum(-1), torch.ones(1, dtype=torch.float64))
    assert torch.allclose(fuse(llm, None, 0.7), torch.log_softmax(torch.tensor(llm, dtype=torch.float64), -1))
    with pytest.raises(ConfigError):
        fuse(llm, text, 1.5)


def test_fuse_takes_one_weight_per_entry() -> None:
    llm = np.array([[0.0, 2.0, 1.0], [1.0, 0.0, 3.0]])
    text = np.array([[3.0, 0.0, 1.0], [0.0, 2.0, 0.5]])
    per_entry = fuse(llm, text, [0.3, 0.3, 0.3])
    assert torch.allclose(per_entry, fuse(llm, text, 0.3))
    mixed = fuse(llm, text, [0.0, 0.0, 1.0])  # entry 2: the text head's log-probability, the others the LLM's
    expect = torch.log_softmax(torch.cat([torch.log_softmax(torch.tensor(llm), -1)[:, :2],
                                          torch.log_softmax(torch.tensor(text), -1)[:, 2:]], 1), -1)
    assert torch.allclose(mixed, expect)
    with pytest.raises(ConfigError):
        fuse(llm, text, [0.2, 1.2, 0.0])


def test_open_list_weights_give_untuned_entries_to_the_text_head() -> None:
    tuned = ["wave", "sit", "kick"]
    assert open_list_weights(0.4, ["kick", "wave"], tuned) == 0.4  # every entry tuned: one weight
    assert open_list_weights(0.4, ["wave", "juggle", "sit"], tuned) == [0.4, 1.0, 0.4]


def test_choose_weight_follows_the_evidence_that_is_right() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    right = np.eye(5)[y] * 3 + rng.normal(0, 1, (200, 5))
    noise = rng.normal(0, 1, (200, 5)) * 3
    w_text, table = choose_weight(noise, right, y)
    w_llm, _ = choose_weight(right, noise, y)
    assert w_text > 0.5 > w_llm
    assert len(table) == 21 and max(r["top1"] for r in table) == next(r for r in table if r["weight"] == w_text)["top1"]
    with pytest.raises(ConfigError):
        choose_weight(noise[:0], right[:0], y[:0])


def test_fuse_with_the_classifier_weighs_three_opinions() -> None:
    llm = np.array([[0.0, 2.0, 1.0]])
    text = np.array([[3.0, 0.0, 1.0]])
    ce = np.array([[0.0, 0.0, 4.0]])
    assert int(fuse(llm, text, 0.0, ce, 1.0).argmax()) == 2
    assert torch.allclose(fuse(llm, text, 0.4, ce, 0.0), fuse(llm, text, 0.4))
    logs = [torch.log_softmax(torch.tensor(x, dtype=torch.float64), -1) for x in (llm, text, ce)]
    expect = torch.log_softmax(0.5 * logs[0] + 0.2 * logs[1] + 0.3 * logs[2], -1)
    assert torch.allclose(fuse(llm, text, 0.2, ce, 0.3), expect)
    with pytest.raises(ConfigError):  # the weights share one unit
        fuse(llm, text, 0.6, ce, 0.6)
    assert without_classifier(0.2, 0.6) == pytest.approx(0.5)  # LLM : text stays 0.2 : 0.2
    assert without_classifier(0.0, 1.0) == 1.0 and without_classifier(0.3, 0.0) == 0.3


def test_choose_weights_gives_the_classifier_its_share_only_where_it_helps() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    right = np.eye(5)[y] * 3 + rng.normal(0, 1, (200, 5))
    noise = [rng.normal(0, 1, (200, 5)) * 3 for _ in range(3)]
    (w, v), table = choose_weights([(noise[0], noise[1], y, right)])
    assert v > 0.5 and w + v <= 1.0 + 1e-9 and len(table) == 231
    (w, v), _ = choose_weights([(noise[0], right, y, noise[2])])
    assert v < 0.2 < 0.5 < w  # noise gets at most a sliver (a tie on top-1 broken by the log-loss)
    (w, v), table = choose_weights([(noise[0], right, y, None)])  # no classifier scores: the two-way grid
    assert v == 0.0 and len(table) == 21 and "ce_weight" not in table[0]
    assert w == choose_weight(noise[0], right, y)[0]
    (w, v), table = choose_weights([(noise[0], None, y, right)])  # a loss: ce encoder: the classifier's weight only
    assert w == 0.0 and v > 0.5 and len(table) == 21 and {r["weight"] for r in table} == {0.0}
    with pytest.raises(ConfigError, match="text head or its classifier"):
        choose_weights([(noise[0], None, y, None)])


def test_classifier_evidence_keeps_the_trained_rows_and_ranks_any_order_of_them(tmp_path) -> None:
    linear = torch.nn.Linear(4, 3)
    classifier = ClassifierEvidence.from_linear(linear, ["wave", "sit", "kick"], trained=["wave", "kick"])
    assert classifier.labels == ["wave", "kick"] and classifier.covers(["kick", "wave"])
    assert not classifier.covers(["wave", "sit"])
    tokens = [torch.randn(5, 4), torch.randn(7, 4)]
    pooled = torch.stack([t.mean(0) for t in tokens])
    full = linear(pooled).detach()
    assert torch.allclose(classifier.logits(tokens, ["kick", "wave"]), full[:, [2, 0]])
    with pytest.raises(ConfigError, match="sit"):
        classifier.logits(tokens, ["sit"])
    back = ClassifierEvidence.from_saved(classifier.describe(), classifier.tensors())
    assert torch.allclose(back.logits(tokens, ["wave"]), full[:, [0]])


def test_recognise_fuses_the_classifier_on_its_lists_and_saves_it(rec, tmp_path) -> None:
    evidence, centres = _evidence()
    tokens, labels = _samples(centres, 20, 4)
    classifier = ClassifierEvidence(centres.shape[1], ACTIONS)
    with torch.no_grad():  # nearest class centre wins
        classifier.linear.weight.copy_(centres * 3)
        classifier.linear.bias.copy_(-1.5 * (centres**2).sum(1))
    rec.attach_evidence(evidence, 0.0)
    try:
        info = calibrate(rec, tokens, labels, ACTIONS, evidence, classifier=classifier)
        assert "ce_weight" in info and rec.classifier is classifier and rec.ce_weight == info["ce_weight"]
        by_kind = evidence_scores(rec, tokens, ACTIONS)
        assert set(by_kind) == {"llm", "text", "ce", "fused"}
        expect = fuse(by_kind["llm"], by_kind["text"], rec.fusion_weight, by_kind["ce"], rec.ce_weight)
        assert np.allclose(by_kind["fused"], expect.numpy())
        rec.attach_classifier(classifier, 1.0 - rec.fusion_weight)  # make the classifier's share visible
        results = rec.recognize(tokens, describe=False)
        assert [ACTIONS.index(r["label"]) for r in results] == labels.tolist()
        assert all(r["fusion_ce"] == rec.ce_weight for r in results)
        save_recognizer(rec, tmp_path / "rec")
        back = load_recognizer(tmp_path / "rec", with_encoder=False)
        assert back.classifier is not None and back.classifier.labels == ACTIONS
        assert back.ce_weight == pytest.approx(rec.ce_weight)
        assert [r["label"] for r in back.recognize(tokens, describe=False)] == [r["label"] for r in results]
    finally:
        rec.attach_evidence(None)
        rec.attach_classifier(None)


def test_fused_recognise_uses_the_text_head_and_saves_its_weight(rec, tmp_path) -> None:
    evidence, centres = _evidence()
    tokens, labels = _samples(centres, 20, 1)
    alone = rec.recognize(tokens, describe=False, top_k=len(ACTIONS))
    with pytest.raises(ConfigError):  # no head attached yet
        rec.recognize(tokens[:1], fusion=0.5)
    rec.attach_evidence(evidence, 1.0)
    try:
        text_only = rec.recognize(tokens, describe=False)
        assert [ACTIONS.index(r["label"]) for r in text_only] == labels.tolist()
        assert all(r["fusion"] == 1.0 for r in text_only)
        # fusion=0 is the LLM alone, whatever the recogniser's weight
        llm_again = rec.recognize(tokens, describe=False, top_k=len(ACTIONS), fusion=0.0)
        assert [r["label"] for r in llm_again] == [r["label"] for r in alone]
        # one LLM pass gives every kind of evidence; the calibrated weight is the best on these samples
        info = calibrate(rec, tokens, labels, ACTIONS, evidence)
        by_kind = evidence_scores(rec, tokens, ACTIONS)
        assert set(by_kind) == {"llm", "text", "fused"}
        fused_top1 = float((by_kind["fused"].argmax(-1) == labels).mean())
        assert fused_top1 == max(r["top1"] for r in info["table"]) == 1.0
        assert 0 < rec.fusion_weight <= 1
        save_recognizer(rec, tmp_path / "rec")
        back = load_recognizer(tmp_path / "rec", with_encoder=False)
        assert back.fusion_weight == pytest.approx(rec.fusion_weight)
        assert back.evidence is not None and back.evidence.labels == ACTIONS
        assert back.fusion_calibration["samples"] == 20
        again = back.recognize(tokens, describe=False)
        assert [r["label"] for r in again] == [ACTIONS[y] for y in labels]
        # a shorter list re-uses the stored prototypes of its classes
        sub = back.recognize(tokens[:2], actions=[ACTIONS[1], ACTIONS[0]], describe=False, fusion=1.0)
        assert [r["label"] for r in sub] == [ACTIONS[0], ACTIONS[1]]
    finally:
        rec.attach_evidence(None)


def test_evaluation_reports_open_list_fusion_beside_the_default(rec) -> None:
    """A list with entries the LLM was not tuned on: "fused" (the default, what recognize() answers) keeps one
    weight for every entry; "fused_open_list" scores the new entries by the text head alone."""
    evidence, centres = _evidence()
    tokens, _ = _samples(centres, 12, 2)
    tuned, new = ACTIONS[:3], ACTIONS[3:]
    saved_actions = rec.actions
    rec.attach_evidence(evidence, 0.3)
    try:
        rec.actions = list(tuned)
        by_kind = evidence_scores(rec, tokens, ACTIONS)
        assert set(by_kind) == {"llm", "text", "fused", "fused_open_list", "llm_batch", "text_batch", "fused_batch"}
        weights = [0.3] * 3 + [1.0] * len(new)
        assert np.allclose(by_kind["fused_open_list"], fuse(by_kind["llm"], by_kind["text"], weights).numpy())
        assert np.allclose(by_kind["fused"], fuse(by_kind["llm"], by_kind["text"], 0.3).numpy())
        results = rec.recognize(tokens, actions=ACTIONS, describe=False, top_k=len(ACTIONS))
        assert [r["label"] for r in results] == [ACTIONS[j] for j in by_kind["fused"].argmax(1)]
        assert set(evidence_scores(rec, tokens, tuned)) == {"llm", "text", "fused"}  # a tuned list: one weight
    finally:
        rec.actions = saved_actions
        rec.attach_evidence(None)


def test_a_never_seen_class_bias_lifts_only_the_new_entries_and_is_saved(rec, tmp_path) -> None:
    """Calibrated stacking in the recogniser: the bias is added to the fused log-probability of entries outside
    the tuning list (the default ranking); an explicit --fusion ranks without it; save/load keep it."""
    evidence, centres = _evidence()
    tokens, _ = _samples(centres, 8, 3)
    saved_actions = rec.actions
    rec.attach_evidence(evidence, 0.3)
    try:
        rec.actions = ACTIONS[:3]
        rec.new_class_bias = 2.0
        by_kind = evidence_scores(rec, tokens, ACTIONS)
        bonus = np.array([0.0] * 3 + [2.0] * (len(ACTIONS) - 3))
        expect = torch.log_softmax(torch.tensor(by_kind["fused"] + bonus), -1).exp().numpy()
        assert np.allclose(np.exp(by_kind["fused_stacked"]), expect)
        results = rec.recognize(tokens, actions=ACTIONS, describe=False, top_k=len(ACTIONS))
        got = np.array([[dict(r["top5"])[a] for a in ACTIONS] for r in results])
        assert np.allclose(got, expect, atol=1e-5) and all(r["new_class_bias"] == 2.0 for r in results)
        plain = rec.recognize(tokens, actions=ACTIONS, describe=False, fusion=0.3)
        assert all("new_class_bias" not in r for r in plain)
        assert "fused_stacked" not in evidence_scores(rec, tokens, ACTIONS[:3])  # a tuned list: nothing to lift
        save_recognizer(rec, tmp_path / "rec")
        back = load_recognizer(tmp_path / "rec", with_encoder=False)
        assert back.new_class_bias == 2.0
    finally:
        rec.actions = saved_actions
        rec.new_class_bias = 0.0
        rec.attach_evidence(None)


def test_mil_evidence_scores_each_class_by_its_texts_and_survives_save_load() -> None:
    """text_score "mil": log-mean-exp over a class's own texts (the rule the encoder chose), not their mean."""
    from sugar.models.text_scoring import TextScorer

    dim, k = 8, len(ACTIONS)
    g = torch.Generator().manual_seed(5)
    texts = torch.nn.functional.normalize(torch.randn(2 * k, dim, generator=g), dim=-1)  # two texts per class
    owners = torch.arange(k).repeat_interleave(2)
    head = TextHead(dim, dim, 10.0)
    mil = TextEvidence(head, ACTIONS, texts, "all-MiniLM-L6-v2", text_score="mil", owners=owners)
    tokens = [torch.randn(5, dim, generator=g) for _ in range(4)]
    features = head(tokens).detach().numpy()
    expected = 10.0 * TextScorer(texts.numpy(), owners.numpy(), k, "mil", 10.0)(features)
    assert np.allclose(mil.logits(tokens, ACTIONS).numpy(), expected, atol=1e-5)
    # a sub-list in another order scores the same classes the same way
    sub = [ACTIONS[3], ACTIONS[0]]
    assert np.allclose(mil.logits(tokens, sub).numpy(), expected[:, [3, 0]], atol=1e-5)
    protos = torch.nn.functional.normalize(texts.view(k, 2, dim).mean(1), dim=-1)
    proto = TextEvidence(head, ACTIONS, protos, "all-MiniLM-L6-v2")
    assert not np.allclose(proto.logits(tokens, ACTIONS).numpy(), expected, atol=1e-3)
    again = TextEvidence.from_saved(mil.describe(), mil.tensors())
    assert again.text_score == "mil" and np.allclose(again.logits(tokens, ACTIONS).numpy(), expected, atol=1e-5)
    # recognisers saved before text_score: one prototype per class under "prototypes"
    old = {**{k2: v for k2, v in proto.tensors().items() if k2 not in ("texts", "owners")}, "prototypes": protos}
    meta = {k2: v for k2, v in proto.describe().items() if k2 != "text_score"}
    assert np.allclose(TextEvidence.from_saved(meta, old).logits(tokens, ACTIONS).numpy(),
                       proto.logits(tokens, ACTIONS).numpy())
    with pytest.raises(ConfigError, match="owner"):
        TextEvidence(head, ACTIONS, texts, "all-MiniLM-L6-v2", text_score="mil")
