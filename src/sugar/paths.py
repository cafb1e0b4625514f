"""Where the project keeps caches and where the shared datasets live."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """Per-user cache root (SUGAR_CACHE, else XDG cache); created on demand."""
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = Path(os.environ.get("SUGAR_CACHE") or xdg / "sugar")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """The real datasets beside the checkout (../shared/data), overridable with SUGAR_SHARED_DATA."""
    env = os.environ.get("SUGAR_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"
