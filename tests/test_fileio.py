"""Atomic writes leave a complete file with the permissions a plain write would give it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sugar.fileio import atomic_write_text


def test_atomic_files_are_as_readable_as_plain_ones(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    atomic = tmp_path / "atomic.json"
    atomic_write_text(atomic, "{}")
    assert stat.S_IMODE(os.stat(atomic).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
    assert not list(tmp_path.glob(".*.tmp"))
