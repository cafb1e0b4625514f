"""Training rows with their own action lists (TuneConfig.vary_list): the lists drawn, and a batch of rows with
lists of different lengths giving each row the loss it has alone (left-padded prefixes take no position)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from stage3helpers import ACTIONS
from sugar.errors import SugarError
from sugar.models.prompt import sample_list
from sugar.training.instruct import TuneModel


def test_sample_list_keeps_the_label_and_varies() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        label = int(rng.integers(len(ACTIONS)))
        row = sample_list(ACTIONS, label, rng, min_size=3)
        assert ACTIONS[label] in row and len(set(row)) == len(row) and 3 <= len(row) <= len(ACTIONS)
        seen.add((len(row), row.index(ACTIONS[label])))
    assert len({n for n, _ in seen}) > 4 and len({i for _, i in seen}) > 4  # sizes and positions both vary


@torch.no_grad()
def test_rows_with_own_lists_get_the_loss_they_have_alone(rec) -> None:
    g = torch.Generator().manual_seed(0)
    tokens = [torch.randn(7, 16, generator=g), torch.randn(7, 16, generator=g)]
    short, full = [ACTIONS[3], ACTIONS[0]], list(ACTIONS)
    together = rec.loss(tokens, [0, 0], lists=[short, full])
    alone = [rec.loss(tokens[:1], [0], lists=[short]), rec.loss(tokens[1:], [0], lists=[full])]
    assert together == pytest.approx(float(sum(alone)) / 2, abs=1e-4)
    # the same list on every row is the plain batch
    assert rec.loss(tokens, [0, 2], lists=[full, full]) == pytest.approx(float(rec.loss(tokens, [0, 2])), abs=1e-5)
    with pytest.raises(SugarError):
        rec.loss(tokens[:1], [0], lists=[[ACTIONS[1]]])


def test_tune_model_draws_lists_per_row_reproducibly(rec, monkeypatch) -> None:
    seen: list = []
    monkeypatch.setattr(rec, "loss", lambda x, y, lists=None: seen.append(lists) or torch.zeros(()))
    old = rec.cfg
    rec.cfg = replace(old, vary_list=True, min_list=2)
    try:
        model = TuneModel(rec)
        x = [torch.randn(5, 16) for _ in range(6)]
        y = torch.tensor([0, 1, 2, 3, 4, 5])
        model(x, y)
        model(x, y)
    finally:
        rec.cfg = old
    first, second = seen
    assert first == second  # the same rows draw the same lists (a resumed run repeats them)
    assert all(ACTIONS[i] in row for i, row in enumerate(first))
    assert len({tuple(r) for r in first}) > 1
