"""A closed-set fusion weight chosen on proxy runs' held-out groups (sugar.evaluation.proxy_weight): the pooled
samples of every proxy decide, and a proxy that ranks other classes is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from stage3helpers import proxy_run
from sugar.cli import app
from sugar.errors import ConfigError
from sugar.evaluation.proxy_weight import choose_on_proxies
from sugar.models.evidence import choose_weight

CLASSES = ["wave", "sit", "throw"]


def test_the_weight_is_chosen_on_every_proxys_samples_pooled(tmp_path) -> None:
    a = proxy_run(tmp_path, "a", 0.3, 0.9, 1, CLASSES)  # on held-out groups the text head is the one to trust
    b = proxy_run(tmp_path, "b", 0.4, 0.9, 2, CLASSES)
    chosen = choose_on_proxies([a, b], ["sit", "throw", "wave"])
    assert chosen["weight"] > 0.5 and chosen["samples"] == 120 and chosen["split"] == "test"
    assert chosen["proxies"] == [str(a), str(b)]
    pooled = [np.concatenate([np.load(r / "evaluation/test" / f"scores-{k}-all.npz")[key] for r in (a, b)])
              for k, key in (("llm", "logits"), ("text", "logits"), ("llm", "labels"))]
    assert chosen["weight"] == choose_weight(*pooled)[0]


def test_a_proxy_with_another_action_list_is_refused_by_name(tmp_path) -> None:
    a = proxy_run(tmp_path, "a", 0.3, 0.9, 1, CLASSES)
    other = proxy_run(tmp_path, "other", 0.3, 0.9, 2, classes=["kick", "sit", "throw"])
    with pytest.raises(ConfigError, match="other"):
        choose_on_proxies([a, other], CLASSES)
    with pytest.raises(ConfigError, match="at least one"):
        choose_on_proxies([], CLASSES)


def test_calibrate_names_a_proxy_without_saved_scores(tmp_path) -> None:
    run = tmp_path / "rec"
    run.mkdir()
    (run / "recognizer.json").write_text('{"actions": ["wave", "sit", "throw"]}')
    result = CliRunner().invoke(app, ["calibrate", str(run), "--on", str(tmp_path / "missing")])
    assert result.exit_code != 0
    assert "scores-llm-all.npz" in (result.output + str(result.exception))
