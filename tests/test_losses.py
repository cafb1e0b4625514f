import math

import pytest
import torch

from sugar.errors import ConfigError
from sugar.models.losses import MILNCELoss, milnce, text_bank
from sugar.models.text import KnowledgeEmbeddings


def unit(*shape, seed=0):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def slow_milnce(features, labels, texts, owners, tau):
    total = 0.0
    for i in range(len(features)):
        sims = [math.exp(float(features[i] @ texts[n]) / tau) for n in range(len(texts))]
        pos = sum(s for s, o in zip(sims, owners, strict=True) if int(o) == int(labels[i]))
        total += -math.log(pos / sum(sims))
    return total / len(features)


def test_matches_slow_reference():
    features, texts = unit(6, 8), unit(9, 8, seed=1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    owners = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    loss = milnce(features, labels, texts, owners, torch.tensor(1 / 0.07)).mean()
    assert loss.item() == pytest.approx(slow_milnce(features, labels, texts, owners, 0.07), rel=1e-5)


def test_gradient_pulls_towards_positives_and_away_from_negatives():
    texts = unit(2, 16, seed=3)
    features = unit(1, 16, seed=4).requires_grad_(True)
    loss = milnce(features, torch.tensor([0]), texts, torch.tensor([0, 1]), torch.tensor(10.0)).sum()
    loss.backward()
    step = -features.grad[0]  # gradient descent direction
    assert step @ texts[0] > 0 and step @ texts[1] < 0


def test_random_features_give_about_log_num_classes():
    classes, per_class = 10, 5
    texts = unit(classes * per_class, 512, seed=5)
    owners = torch.arange(classes).repeat_interleave(per_class)
    features, labels = unit(400, 512, seed=6), torch.arange(400) % classes
    loss = milnce(features, labels, texts, owners, torch.tensor(1.0)).mean().item()
    assert loss == pytest.approx(math.log(classes), abs=0.05)


def test_perfect_features_give_low_loss():
    texts = unit(3, 32, seed=7)
    loss = milnce(texts.clone(), torch.arange(3), texts, torch.arange(3), torch.tensor(1 / 0.07)).mean()
    assert loss.item() < 0.01


def test_temperature_is_learnable_and_clamped():
    loss_fn = MILNCELoss(0.07)
    assert loss_fn.temperature == pytest.approx(0.07)
    with torch.no_grad():
        loss_fn.logit_scale.fill_(20.0)
    assert loss_fn.temperature == pytest.approx(0.01)
    features, texts = unit(4, 8).requires_grad_(True), unit(4, 8, seed=1)
    loss_fn = MILNCELoss(0.07)
    loss_fn(features, torch.arange(4), texts, torch.arange(4)).mean().backward()
    assert loss_fn.logit_scale.grad is not None and features.grad is not None
    assert "logit_scale" not in dict(MILNCELoss(0.07, learn_temperature=False).named_parameters())


def knowledge(classes=3, visual=2):
    return KnowledgeEmbeddings([f"c{i}" for i in range(classes)], unit(classes, 8), unit(classes * visual, 8, seed=2),
                               torch.arange(classes).repeat_interleave(visual))


def test_text_bank_flags_and_mixing():
    emb = knowledge()
    classes = torch.tensor([0, 2])
    texts, owners = text_bank(emb, classes, mix="none")
    assert owners.tolist() == [0, 0, 0, 2, 2, 2]
    torch.testing.assert_close(texts[0], emb.motion[0])
    torch.testing.assert_close(texts[1:3], emb.visual[0:2])
    texts, owners = text_bank(emb, classes, use_visual=False)
    assert owners.tolist() == [0, 2]
    texts, owners = text_bank(emb, classes, use_motion=False)
    torch.testing.assert_close(texts, emb.visual[[0, 1, 4, 5]])
    mixed, owners = text_bank(emb, classes, generator=torch.Generator().manual_seed(0))
    again, _ = text_bank(emb, classes, generator=torch.Generator().manual_seed(0))
    other, _ = text_bank(emb, classes, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mixed, again)
    assert not torch.allclose(mixed, other)
    torch.testing.assert_close(mixed.norm(dim=-1), torch.ones(len(mixed)))
    # a convex mix lies between its motion and visual embedding
    assert (mixed[1] @ emb.motion[0]) >= min(emb.visual[0] @ emb.motion[0], 1.0) - 1e-6
    with pytest.raises(ConfigError):
        text_bank(emb, classes, use_motion=False, use_visual=False)


def test_prototypes_and_subset():
    emb = knowledge(4)
    sub = emb.subset(["c3", "c1"])
    torch.testing.assert_close(sub.motion, emb.motion[[3, 1]])
    assert sub.visual_owner.tolist() == [1, 1, 0, 0]  # visual rows keep file order, owners re-indexed
    torch.testing.assert_close(sub.visual, emb.visual[[2, 3, 6, 7]])
    protos = sub.prototypes()
    torch.testing.assert_close(protos.norm(dim=-1), torch.ones(2))
    expected = torch.nn.functional.normalize(emb.motion[3] + emb.visual[6] + emb.visual[7], dim=0)
    torch.testing.assert_close(protos[0], expected)


def with_labels(classes=3, visual=2):
    emb = knowledge(classes, visual)
    emb.label = unit(classes, 8, seed=9)
    return emb


def test_label_text_is_one_more_positive_per_class():
    emb = with_labels()
    classes = torch.tensor([0, 2])
    texts, owners = text_bank(emb, classes, mix="none")
    assert owners.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]  # motion, label, two visual texts
    torch.testing.assert_close(texts[1], emb.label[0])
    torch.testing.assert_close(texts[5], emb.label[2])
    texts, owners = text_bank(emb, classes, use_label=False, mix="none")
    assert owners.tolist() == [0, 0, 0, 2, 2, 2]
    # label-only: the bank that any knowledge is compared against
    texts, owners = text_bank(emb, classes, use_motion=False, use_visual=False)
    assert owners.tolist() == [0, 2]
    torch.testing.assert_close(texts, emb.label[[0, 2]])
    with pytest.raises(ConfigError):
        text_bank(emb, classes, use_motion=False, use_visual=False, use_label=False)


def test_label_text_in_prototypes_subset_and_device_copy():
    emb = with_labels(4)
    expected = torch.nn.functional.normalize(emb.motion[1] + emb.visual[2] + emb.visual[3] + emb.label[1], dim=0)
    torch.testing.assert_close(emb.prototypes()[1], expected)
    torch.testing.assert_close(emb.prototypes(False, False)[1], emb.label[1])
    torch.testing.assert_close(emb.prototypes(use_label=False)[1],
                               torch.nn.functional.normalize(emb.motion[1] + emb.visual[2] + emb.visual[3], dim=0))
    sub = emb.subset(["c3", "c1"])
    torch.testing.assert_close(sub.label, emb.label[[3, 1]])
    moved = emb.to("cpu")
    assert moved.label is not None and moved.label.data_ptr() == emb.label.data_ptr()
    with pytest.raises(ConfigError):
        knowledge().prototypes(False, False)  # no label texts to fall back on


def test_all_class_negatives_push_away_from_classes_missing_from_the_batch():
    """A batch of one class has no negatives under text_negatives=batch (loss 0); with all, the other training
    classes' texts are candidates, so the loss sees them."""
    from dataclasses import replace

    from sugar.config import EncoderConfig, PretrainConfig
    from sugar.models.encoder import build_encoder
    from sugar.models.heads import EncoderWithHeads
    from sugar.skeleton.layouts import get_layout
    from sugar.training.pretrain import _loss

    emb = KnowledgeEmbeddings(["a", "b", "c"], unit(3, 8, seed=1), unit(0, 8), torch.zeros(0, dtype=torch.long))
    cfg = PretrainConfig(use_visual=False, text_mix="none")
    model = EncoderWithHeads(build_encoder(EncoderConfig(preset="cpu"), get_layout("ntu25"), 3), cfg, 3, 8)
    out, y = {"features": emb.motion[1:2].repeat(4, 1)}, torch.zeros(4, dtype=torch.long)  # looks like class b
    batch_only = _loss(model, out, y, y, cfg, emb, 0, [0, 1, 2])
    every_class = _loss(model, out, y, y, replace(cfg, text_negatives="all"), emb, 0, [0, 1, 2])
    assert torch.allclose(batch_only, torch.zeros(4)) and (every_class > 0.5).all()
    with pytest.raises(ConfigError, match="text_negatives"):
        EncoderWithHeads(model.encoder, replace(cfg, text_negatives="most"), 3, 8)


def test_heads_and_losses_stay_fp32_under_bf16_autocast() -> None:
    """bf16 rounds cosines near 0.9 in steps of 0.004, noise of ~0.1 in logits at tau 0.03: heads and losses are
    computed in fp32 while the encoder runs in bf16."""
    from sugar.config import EncoderConfig, PretrainConfig
    from sugar.models.encoder import build_encoder
    from sugar.models.heads import EncoderWithHeads
    from sugar.skeleton.layouts import get_layout
    from sugar.training.pretrain import _loss

    torch.manual_seed(0)
    emb = KnowledgeEmbeddings(["a", "b", "c"], unit(3, 8, seed=1), unit(0, 8), torch.zeros(0, dtype=torch.long))
    cfg = PretrainConfig(loss="milnce+ce", use_visual=False, text_mix="none", text_negatives="all", temperature=0.03)
    model = EncoderWithHeads(build_encoder(EncoderConfig(preset="cpu"), get_layout("ntu25"), 3), cfg, 3, 8).eval()
    x, y = torch.randn(4, 3, 16, 25, 1), torch.tensor([0, 1, 2, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = _loss(model, out, y, y, cfg, emb, 0, [0, 1, 2])
    assert out["features"].dtype == out["logits"].dtype == loss.dtype == torch.float32
    assert torch.allclose(loss, _loss(model, out, y, y, cfg, emb, 0, [0, 1, 2]))  # the same as outside autocast
