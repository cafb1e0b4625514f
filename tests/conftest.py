"""Shared fixtures: where the real datasets are, skipping cleanly when they are absent."""

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
