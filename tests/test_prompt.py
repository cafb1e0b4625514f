"""Prompt construction: chat template, splice positions of the action tokens, loss masking."""

from __future__ import annotations

import pytest
import torch

from stage3helpers import ACTIONS, DESCRIPTIONS
from sugar.models.prompt import (
    IGNORE_INDEX,
    answer_ids,
    build_batch,
    build_prompt,
    candidate_ids,
    gloss,
    instruction_text,
)


def test_prompt_uses_chat_template_and_puts_the_list_before_the_actions(tok) -> None:
    parts = build_prompt(tok, ACTIONS)
    prefix = tok.decode(list(parts.prefix_ids))
    suffix = tok.decode(list(parts.suffix_ids))
    assert prefix.startswith("<|im_start|>system")
    assert "Please choose the most compatible action from: [pick up with one hand, pick up with two hands" in prefix
    assert prefix.endswith("Given a sequence of action tokens: ")
    assert suffix == "<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(list(parts.end_ids)) == "<|im_end|>"
    assert "top five" in instruction_text(ACTIONS, zero_shot=True)


def test_candidate_is_a_prefix_of_the_trained_answer(tok) -> None:
    parts = build_prompt(tok, ACTIONS)
    for a in ACTIONS:
        ans = answer_ids(tok, parts, a, DESCRIPTIONS[a])
        cand = candidate_ids(tok, a)
        assert ans[:len(cand)] == cand
        assert tok.decode(ans) == f"{a}. {DESCRIPTIONS[a]}<|im_end|>"


def test_splice_positions_and_label_mask(tok) -> None:
    torch.manual_seed(0)
    parts = build_prompt(tok, ACTIONS)
    embed = torch.nn.Embedding(len(tok), 8)
    k = 5
    actions = torch.randn(2, k, 8)
    answers = [answer_ids(tok, parts, ACTIONS[0], "Short."),
               answer_ids(tok, parts, ACTIONS[3], DESCRIPTIONS[ACTIONS[3]])]
    batch = build_batch(embed, parts, actions, torch.ones(2, k, dtype=torch.bool), answers, tok.pad_token_id)
    p, s = len(parts.prefix_ids), len(parts.suffix_ids)
    emb, labels, attn = batch["inputs_embeds"], batch["labels"], batch["attention_mask"]
    assert batch["action_start"].tolist() == [p, p]
    with torch.no_grad():
        # action embeddings sit exactly where <action> was; the text around them is the prompt's
        assert torch.equal(emb[:, p:p + k], actions)
        assert torch.equal(emb[0, :p], embed(torch.tensor(parts.prefix_ids)))
        assert torch.equal(emb[0, p + k:p + k + s], embed(torch.tensor(parts.suffix_ids)))
    for i, a in enumerate(answers):
        start = p + k + s
        # labels: -100 everywhere except the answer (+ end of turn), which carries the answer ids
        assert (labels[i, :start] == IGNORE_INDEX).all()
        assert labels[i, start:start + len(a)].tolist() == a
        assert (labels[i, start + len(a):] == IGNORE_INDEX).all()
        assert attn[i].sum() == start + len(a)
    assert tok.decode(labels[0][labels[0] != IGNORE_INDEX].tolist()) == f"{ACTIONS[0]}. Short.<|im_end|>"


def test_answer_is_cut_but_keeps_the_end_of_turn(tok) -> None:
    parts = build_prompt(tok, ACTIONS)
    ids = answer_ids(tok, parts, ACTIONS[0], "word " * 100, max_tokens=10)
    assert len(ids) == 10 + len(parts.end_ids) and ids[-len(parts.end_ids):] == list(parts.end_ids)


def test_long_answer_is_cut_after_its_last_whole_sentence(tok) -> None:
    """A description longer than the budget loses whole sentences, so the end of turn follows a full stop."""
    parts = build_prompt(tok, ACTIONS)
    description = "The arm goes up. Then it comes down slowly with the hand open. " + "word " * 40
    full = answer_ids(tok, parts, ACTIONS[0], description)
    two_sentences = "The arm goes up. Then it comes down slowly with the hand open."
    budget = len(answer_ids(tok, parts, ACTIONS[0], two_sentences)) - len(parts.end_ids)
    ids = answer_ids(tok, parts, ACTIONS[0], description, max_tokens=budget)
    assert len(ids) < len(full)
    text = tok.decode(ids[:-len(parts.end_ids)])
    assert text == f"{ACTIONS[0]}. The arm goes up. Then it comes down slowly with the hand open."
    one = answer_ids(tok, parts, ACTIONS[0], description, max_tokens=budget - 1)
    assert tok.decode(one[:-len(parts.end_ids)]) == f"{ACTIONS[0]}. The arm goes up."
    assert candidate_ids(tok, ACTIONS[0], description, budget - 1) == one[:-len(parts.end_ids)]


def test_answer_whose_first_sentence_is_too_long_ends_on_a_whole_word(tok) -> None:
    parts = build_prompt(tok, ACTIONS)
    description = "A person jumps, crouching with the arms swung back and then springing up before landing."
    ids = answer_ids(tok, parts, ACTIONS[0], description, max_tokens=14)
    text = tok.decode(ids[:-len(parts.end_ids)])
    assert len(ids) - len(parts.end_ids) <= 14 and text.endswith(".") and not text.endswith(" .")
    words = text[len(f"{ACTIONS[0]}. "):-1].split(" ")
    assert words and description.split(" ")[:len(words)] == words  # whole words of the description, in order
    assert words[-1] not in ("and", "the", "with")


def test_loss_equals_the_plain_causal_lm_loss(tmp_path_factory, tok) -> None:
    """Recognizer.loss (logits at answer positions only) == the LLM's own loss over the full labels."""
    from stage3helpers import build_tiny

    rec = build_tiny(tmp_path_factory, tok)
    tokens = [torch.randn(7, 16), torch.randn(9, 16)]
    parts = rec.prompt(ACTIONS)
    embeds, amask = rec.action_tokens(tokens)
    answers = [answer_ids(tok, parts, ACTIONS[i], DESCRIPTIONS[ACTIONS[i]], 24) for i in (2, 5)]
    batch = build_batch(rec.llm.get_input_embeddings(), parts, embeds, amask, answers, tok.pad_token_id)
    with torch.no_grad():
        plain = rec.llm(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"],
                        labels=batch["labels"]).loss
        assert rec.loss(tokens, [2, 5]).item() == pytest.approx(plain.item(), rel=1e-5)


def test_gloss_is_the_first_sentence_without_the_person_cut_to_words() -> None:
    text = "A person sits down on a chair, bending the knees and hips. Then rests."
    assert gloss(text, 5) == "sits down on a chair"  # the cut's trailing comma goes
    assert gloss(text, 40) == "sits down on a chair, bending the knees and hips"
    assert gloss("", 6) == ""


def test_glossed_list_names_each_entry_with_its_gloss(tok) -> None:
    names_only = build_prompt(tok, ACTIONS[:2])
    glossed = build_prompt(tok, ACTIONS[:2], glosses=["bends to the floor", ""])
    text = tok.decode(list(glossed.prefix_ids))
    assert "from: [pick up with one hand (bends to the floor); pick up with two hands], and" in text
    assert glossed.suffix_ids == names_only.suffix_ids and glossed.end_ids == names_only.end_ids
    with pytest.raises(ValueError, match="1 glosses for 2 actions"):
        instruction_text(ACTIONS[:2], glosses=["x"])


def test_recogniser_glosses_its_list_and_asks_for_new_entries_knowledge(tmp_path_factory, tok) -> None:
    from stage3helpers import build_tiny, random_tokens
    from sugar.errors import ConfigError

    rec = build_tiny(tmp_path_factory, tok)
    with torch.no_grad():
        plain_loss = rec.loss(random_tokens(2), [4, 5]).item()
    rec.cfg.list_gloss_words = 4
    with torch.no_grad():  # training reads the glossed list too
        assert rec.loss(random_tokens(2), [4, 5]).item() != pytest.approx(plain_loss)
    assert "(performs sit down with); stand up" in tok.decode(list(rec.prompt(["sit down", "stand up"]).prefix_ids))
    with pytest.raises(ConfigError, match="no description for \\['jump'\\]"):
        rec.recognize(random_tokens(2), ["sit down", "jump"], describe=False)
    knowledge = {"jump": "A person jumps up with both feet."}
    out = rec.recognize(random_tokens(2), ["sit down", "jump"], knowledge=knowledge, describe=False)
    assert [r["label"] in ("sit down", "jump") for r in out] == [True, True]
    other = rec.recognize(random_tokens(2), ["sit down", "jump"], knowledge={"jump": "A person hops on one foot."},
                          describe=False)  # another gloss is another prompt: not the first one's cached prefix
    assert [r["score"] for r in out] != [r["score"] for r in other]
