"""Helpers shared by the readers: safe file reading and numeric parsing that only ever raise DataError."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.lib.format as npformat
import psutil

from sugar.errors import DataError

# Refuse absurd sizes before allocating: a corrupted count must not ask for terabytes.
MAX_FRAMES = 1_000_000
MAX_BODIES = 64
# Class indices beyond this are corruption, not data: folders.scan makes one class name per index up to the
# largest label, so a label of 1e20 would otherwise ask for 1e20 names.
MAX_LABEL = 100_000


@dataclass(frozen=True)
class ReadLimits:
    """What one file may ask of the reader.

    max_bytes: decoded array bytes a compressed or binary file may declare (.npz members, .npy headers,
    arrays rebuilt from a pickle); None = the memory available now, so a file that cannot fit is refused
    before it is decompressed rather than after the machine starts swapping. The service passes a tight bound.
    alone: read this one file and never look beside it (an upload sits in a temporary folder whose
    neighbours are not the client's to choose): PKU-MMD then reads the whole video without its label file.
    """

    max_bytes: int | None = None
    alone: bool = False

    def allowed_bytes(self) -> int:
        return self.max_bytes if self.max_bytes is not None else int(psutil.virtual_memory().available)


NO_LIMITS = ReadLimits()


def show_number(value: Any) -> str:
    """A number for an error message, short even when it has hundreds of digits (1e308, 10**40)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, int | np.integer) and abs(int(value)) >= 10**15:
        try:
            return f"{float(value):.3g}"
        except OverflowError:
            return f"a {abs(int(value)).bit_length()}-bit integer"
    if isinstance(value, float | np.floating) and np.isfinite(value) and abs(value) >= 1e15:
        return f"{float(value):.3g}"
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_bytes(nbytes: int, path: Path, what: str, limits: ReadLimits) -> None:
    """DataError when `what` would decode to more than the limits allow (checked before allocating)."""
    allowed = limits.allowed_bytes()
    if nbytes > allowed:
        raise DataError(path, f"{what} would decode to {nbytes / 2**20:,.1f} MiB, more than the "
                              f"{allowed / 2**20:,.1f} MiB allowed")


def npy_declared_bytes(fileobj: IO[bytes], path: Path, what: str) -> int:
    """Bytes of array data an .npy stream's header declares (reads only the header), so an array can be
    refused before numpy allocates it; a header numpy cannot parse is a DataError."""
    try:
        version = npformat.read_magic(fileobj)
        read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, _, dtype = read_header(fileobj)
    except Exception as exc:  # numpy raises ValueError, SyntaxError, UnicodeError, ... on damaged headers
        raise DataError(path, f"{what}: not a readable .npy header ({type(exc).__name__}: {str(exc)[:100]})") from None
    if dtype.hasobject:
        raise DataError(path, f"{what}: holds Python objects, not numbers")
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def label_index(value: Any, path: Path, what: str, first: int = 0) -> int | None:
    """A class index from a file (`first` = the file's first label, 0 or 1) as 0-based, or None for a negative
    "unknown"; anything that is not a whole number in [first, MAX_LABEL] is a DataError."""
    if value is None:
        return None
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(path, f"{what} must be an integer, got {show_number(value)}")
    if value < 0:
        return None
    if not first <= value <= MAX_LABEL + first:
        raise DataError(path, f"{what} = {show_number(value)} is out of range [{first}, {MAX_LABEL + first}]")
    return value - first


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
    except ValueError as exc:  # an integer of more than 4300 digits (Python's int/str conversion limit)
        raise DataError(path, f"malformed JSON ({str(exc)[:80]})") from None
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
        raise DataError(path, f"{what} must be a whole number, got {show_number(value)}")
    n = int(value)
    if n < low or (high is not None and n > high):
        top = high if high is not None else "..."
        raise DataError(path, f"{what} = {show_number(n)} is out of range [{low}, {top}]")
    return n


def name_ids(pattern: str, name: str) -> dict[str, int]:
    """Integer ids parsed from a file name (empty when the name does not follow the scheme)."""
    m = re.search(pattern, name)
    return {k: int(v) for k, v in m.groupdict().items()} if m else {}
