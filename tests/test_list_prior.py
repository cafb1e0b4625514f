"""The LLM's list prior (sugar.models.list_prior): divided out of lists with untuned entries, exactly as the mean
answer of the reference samples, kept on the tuning list, saved with the recogniser, computed once per list."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stage3helpers import ACTIONS, build_tiny_with_encoder, random_tokens, session_tokenizer
from sugar.cli import app
from sugar.errors import ConfigError, DataError
from sugar.evaluation.recognizer import evidence_scores
from sugar.models import list_prior
from sugar.models.list_prior import ListPrior, applies, batch_corrected, corrected
from sugar.models.recognizer_io import load_recognizer, save_recognizer
from sugar.skeleton.datasets import DataSource
from sugar.training.instruct import list_prior_from_source

NEW_LIST = ["juggle", "pick up with one hand", "cartwheel", "drop trash"]  # two entries the LLM was never tuned on


def _probs(results: list[dict], actions: list[str]) -> np.ndarray:
    out = np.zeros((len(results), len(actions)))
    for row, r in enumerate(results):
        for label, p in r["top5"]:
            out[row, actions.index(label)] = p
    return out


@pytest.fixture()
def with_prior(rec):
    """`rec` with 6 reference samples; the prior is taken off again afterwards (the fixture is per module)."""
    reference = random_tokens(6, seed=11)
    with torch.no_grad():
        embeds, mask = rec.action_tokens(reference)
    rec.list_prior = ListPrior(embeds, mask)
    rec.clear_cache()
    yield rec, reference
    rec.list_prior = None
    rec.clear_cache()


def test_new_lists_get_the_reference_mean_divided_out(with_prior) -> None:
    rec, reference = with_prior
    tokens = random_tokens(3, seed=12)
    raw = rec.recognize(tokens, NEW_LIST, describe=False, top_k=len(NEW_LIST), list_prior=False)
    ref = _probs(rec.recognize(reference, NEW_LIST, describe=False, top_k=len(NEW_LIST), list_prior=False),
                 NEW_LIST)
    expected = torch.softmax(corrected(np.log(_probs(raw, NEW_LIST)), np.log(ref.mean(0))), -1).numpy()
    got = rec.recognize(tokens, NEW_LIST, describe=False, top_k=len(NEW_LIST), list_prior=True)
    assert all(r["list_prior"] for r in got)
    np.testing.assert_allclose(_probs(got, NEW_LIST), expected, atol=1e-5)
    assert not np.allclose(_probs(got, NEW_LIST), _probs(raw, NEW_LIST), atol=1e-3)  # the prior is not flat


def test_asking_for_it_without_reference_samples_says_how_to_get_them(rec) -> None:
    assert rec.list_prior is None
    with pytest.raises(ConfigError, match="sugar list-prior"):
        rec.recognize(random_tokens(1), NEW_LIST, describe=False, list_prior=True)


def test_the_default_leaves_lists_as_the_llm_learnt_them(with_prior) -> None:
    """Not the default on new lists (rules R3, docs/RESULTS.md (20)), and never on the tuning list."""
    rec, _ = with_prior
    tokens = random_tokens(3, seed=19)
    on_new = rec.recognize(tokens, NEW_LIST, describe=False, top_k=4)
    assert [r["top5"] for r in on_new] == [r["top5"] for r in
                                           rec.recognize(tokens, NEW_LIST, describe=False, top_k=4, list_prior=False)]
    assert "list_prior" not in on_new[0]


def test_the_tuning_list_is_left_as_the_llm_learnt_it(with_prior) -> None:
    rec, _ = with_prior
    tokens = random_tokens(3, seed=13)
    default = rec.recognize(tokens, describe=False, top_k=len(ACTIONS))
    raw = rec.recognize(tokens, describe=False, top_k=len(ACTIONS), list_prior=False)
    assert [r["top5"] for r in default] == [r["top5"] for r in raw]
    assert "list_prior" not in default[0]
    forced = rec.recognize(tokens, describe=False, top_k=len(ACTIONS), list_prior=True)  # asked for by name
    assert forced[0]["list_prior"]
    assert applies(ACTIONS, ACTIONS, None) is False
    assert applies(ACTIONS, NEW_LIST, None) is list_prior.APPLY_TO_NEW_LISTS


def test_the_prior_of_a_list_is_computed_once(with_prior, monkeypatch) -> None:
    rec, _ = with_prior
    calls = []
    real = list_prior.mean_log_prior
    monkeypatch.setattr("sugar.models.answering.mean_log_prior", lambda s: calls.append(1) or real(s))
    for seed in (14, 15):
        rec.recognize(random_tokens(2, seed=seed), NEW_LIST, describe=False, list_prior=True)
    assert len(calls) == 1
    rec.recognize(random_tokens(2, seed=16), NEW_LIST[:3], describe=False, list_prior=True)  # another list
    assert len(calls) == 2


def test_evaluation_reports_the_llm_with_and_without_its_prior(with_prior) -> None:
    rec, _ = with_prior
    tokens = random_tokens(4, seed=17)
    out = evidence_scores(rec, tokens, NEW_LIST)
    raw = _probs(rec.recognize(tokens, NEW_LIST, describe=False, top_k=len(NEW_LIST), list_prior=False), NEW_LIST)
    np.testing.assert_allclose(np.exp(out["llm"]), raw, atol=1e-6)
    fixed = _probs(rec.recognize(tokens, NEW_LIST, describe=False, top_k=len(NEW_LIST), list_prior=True), NEW_LIST)
    np.testing.assert_allclose(np.exp(out["llm_prior"]), fixed, atol=1e-6)
    assert "llm_prior" not in evidence_scores(rec, tokens, ACTIONS[:4])  # a tuned list: nothing to divide out


def test_the_batch_prior_is_the_scored_samples_own_mean_answer() -> None:
    """A scorer that answers class 0 for everything, with a faint signal in class 1's rows, is turned into one
    whose mean answer is flat, and that signal decides."""
    logp = np.log(np.array([[0.90, 0.10], [0.80, 0.20], [0.85, 0.15], [0.75, 0.25]]))
    fixed = torch.exp(batch_corrected(logp)).numpy()
    np.testing.assert_allclose(fixed.sum(1), 1.0, atol=1e-12)
    mean = np.exp(logp).mean(0)
    expected = np.exp(logp) / mean
    np.testing.assert_allclose(fixed, expected / expected.sum(1, keepdims=True), atol=1e-12)
    assert fixed.argmax(1).tolist() == [0, 1, 0, 1]
    assert np.exp(logp).argmax(1).tolist() == [0, 0, 0, 0]


def test_evaluation_reports_each_kind_with_the_batch_prior_on_new_lists_only(rec) -> None:
    tokens = random_tokens(5, seed=21)
    out = evidence_scores(rec, tokens, NEW_LIST)
    np.testing.assert_allclose(out["llm_batch"], batch_corrected(out["llm"]).numpy(), atol=1e-9)
    assert not any(k.endswith("_batch") for k in evidence_scores(rec, tokens, ACTIONS[:4]))  # the tuning list
    assert "llm_batch" not in evidence_scores(rec, tokens[:1], NEW_LIST)  # one sample: its mean is itself


def test_recognising_with_the_batch_prior_ranks_and_describes_by_the_corrected_answer(rec) -> None:
    tokens = random_tokens(5, seed=22)
    raw = _probs(rec.recognize(tokens, NEW_LIST, describe=False, top_k=len(NEW_LIST)), NEW_LIST)
    expected = torch.exp(batch_corrected(np.log(raw))).numpy()
    got = rec.recognize(tokens, NEW_LIST, describe=False, top_k=len(NEW_LIST), batch_prior=True)
    assert all(r["batch_prior"] for r in got)
    np.testing.assert_allclose(_probs(got, NEW_LIST), expected, atol=1e-5)
    described = rec.recognize(tokens, NEW_LIST, batch_prior=True)
    assert [r["label"] for r in described] == [NEW_LIST[j] for j in expected.argmax(1)]
    assert all(isinstance(r["description"], str) for r in described)
    with pytest.raises(ConfigError, match="at least 2"):
        rec.recognize(tokens[:1], NEW_LIST, batch_prior=True)
    with pytest.raises(ConfigError, match="mode rank"):
        rec.recognize(tokens, NEW_LIST, mode="generate", batch_prior=True)


def test_the_reference_samples_are_saved_with_the_recogniser(with_prior, tmp_path) -> None:
    rec, _ = with_prior
    save_recognizer(rec, tmp_path)
    again = load_recognizer(tmp_path, with_encoder=False, merge_lora=False)
    assert again.list_prior is not None and len(again.list_prior) == 6
    tokens = random_tokens(3, seed=18)
    a = _probs(rec.recognize(tokens, NEW_LIST, describe=False, top_k=4, list_prior=True), NEW_LIST)
    b = _probs(again.recognize(tokens, NEW_LIST, describe=False, top_k=4, list_prior=True), NEW_LIST)
    np.testing.assert_allclose(a, b, atol=2e-3)  # saved in float16


def test_a_folder_gets_reference_samples_from_its_encoders_training_data(tmp_path_factory, tmp_path,
                                                                         shared_data) -> None:
    """`sugar list-prior`: what a released folder (not a run `sugar calibrate` can finish) needs for --list-prior."""
    tiny = build_tiny_with_encoder(tmp_path_factory, session_tokenizer(tmp_path_factory)).eval()
    folder = tmp_path / "rec"
    save_recognizer(tiny, folder)  # an encoder that does not record its data
    no_data = CliRunner().invoke(app, ["list-prior", str(folder), "--out", str(tmp_path / "a")])
    assert no_data.exit_code != 0 and "does not record its data" in str(no_data.exception)

    tiny.data = DataSource("nw-ucla", "xview", seed=1)
    save_recognizer(tiny, folder)
    done = CliRunner().invoke(app, ["list-prior", str(folder), "--out", str(tmp_path / "copy")])
    assert done.exit_code == 0, done.output
    assert load_recognizer(folder, merge_lora=False).list_prior is None  # --out leaves the original alone
    copy = load_recognizer(tmp_path / "copy", merge_lora=False)
    assert copy.list_prior is not None and len(copy.list_prior) == list_prior.REFERENCE_SAMPLES
    again = list_prior_from_source(copy)  # seeded: the same samples every time
    torch.testing.assert_close(copy.list_prior.embeds, again.embeds, atol=2e-3, rtol=1e-2)  # stored in float16
    tokens = [torch.randn(6, copy.encoder_dim) for _ in range(2)]
    got = copy.recognize(tokens, NEW_LIST, describe=False, list_prior=True)
    assert all(r["list_prior"] for r in got)
    exists = CliRunner().invoke(app, ["list-prior", str(folder), "--out", str(tmp_path / "copy")])
    assert exists.exit_code != 0 and "exists" in exists.output

    tiny.actions = ["juggle", "cartwheel"]  # none of them in NW-UCLA: nothing to draw
    with pytest.raises(DataError, match="no sample of the recogniser's actions"):
        list_prior_from_source(tiny)
