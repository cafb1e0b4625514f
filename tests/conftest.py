"""Shared fixtures: where the real datasets are (skipping cleanly when they are absent), the tiny stage-3 model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sugar.paths import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip with a reason when it is absent."""
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set SUGAR_SHARED_DATA)")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's caches inside pytest's temp dir, not the user's ~/.cache."""
    monkeypatch.setenv("SUGAR_CACHE", str(tmp_path_factory.getbasetemp() / "sugar-cache"))


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory):
    """The test tokenizer (built once per session, see stage3helpers)."""
    from stage3helpers import session_tokenizer

    return session_tokenizer(tmp_path_factory)


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory, tok):
    """A tiny untrained recogniser, one per test module (tests change its settings and weights)."""
    from stage3helpers import build_tiny

    return build_tiny(tmp_path_factory, tok)
