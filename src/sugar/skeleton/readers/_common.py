"""Helpers shared by the readers: safe file reading and numeric parsing that only ever raise DataError."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import DataError

# Refuse absurd sizes before allocating: a corrupted count must not ask for terabytes.
MAX_FRAMES = 1_000_000
MAX_BODIES = 64


def read_text(path: Path) -> str:
    """The file as text; unreadable or non-UTF-8 files become DataError."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not a text file (invalid UTF-8 at byte {exc.start})") from None


def read_json(path: Path) -> Any:
    """Parsed JSON; malformed JSON becomes DataError with the position of the error."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise DataError(path, "malformed JSON (nested too deeply)") from None


def numbers(tokens: list[str], path: Path, what: str = "values") -> np.ndarray:
    """float64 array of whitespace-separated tokens; a non-number names the offending token."""
    try:
        return np.asarray(tokens, dtype=np.float64) if tokens else np.zeros(0)
    except ValueError:
        for i, tok in enumerate(tokens):
            try:
                float(tok)
            except ValueError:
                raise DataError(path, f"{what}: {tok[:40]!r} (token {i + 1}) is not a number") from None
        raise DataError(path, f"{what}: not all numbers") from None


def float_array(value: Any, path: Path, what: str) -> np.ndarray:
    """A JSON list (of lists) of numbers as float64; ragged or non-numeric content is a DataError."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise DataError(path, f"{what} must be a regular array of numbers") from None
    return arr


def finite(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise DataError(path, f"{what} contains NaN or infinite values")
    return arr


def to_f32(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """float32 copy of finite coordinates; NaN/inf or values beyond float32's range are a DataError."""
    finite(arr, path, what)
    if arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
        raise DataError(path, f"{what} has values too large for float32")
    return arr.astype(np.float32)


def as_int(value: float, path: Path, what: str, low: int = 0, high: int | None = None) -> int:
    """A count that must be a whole number within bounds (counts read as floats from numeric text)."""
    if not np.isfinite(value) or value != int(value):
        raise DataError(path, f"{what} must be a whole number, got {value!r}")
    n = int(value)
    if n < low or (high is not None and n > high):
        raise DataError(path, f"{what} = {n} is out of range [{low}, {high if high is not None else '...'}]")
    return n


def name_ids(pattern: str, name: str) -> dict[str, int]:
    """Integer ids parsed from a file name (empty when the name does not follow the scheme)."""
    m = re.search(pattern, name)
    return {k: int(v) for k, v in m.groupdict().items()} if m else {}
