"""Atomic file writes: a killed process leaves either the old file or the new one, never half of one.

Every artefact a run keeps (checkpoints, metrics, knowledge files, caches, model folders) is written through
here, and the JSON objects they describe themselves with are read back through `read_json_object`. This is
the ground floor: it imports only the project's errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sugar.errors import SugarError

if TYPE_CHECKING:
    import torch


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask can only be read by setting it, which races threads


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call write(temp_path) on a temp file beside `path`, fsync it, then os.replace it onto `path`.

    The file gets the permissions a plain open() would give it (mkstemp's temp files are private, 0600,
    which would make a shared knowledge file or model unreadable to the rest of a team)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path,
                            metadata: dict[str, str] | None = None) -> None:
    """Weights as safetensors (CPU, contiguous), written atomically."""
    from safetensors.torch import save_file  # deferred: text-only users of this module never load torch

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Optimizer/RNG state (plain tensors and containers only: it is read back with weights_only=True)."""
    import torch  # deferred, as above

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes: recorded beside checkpoints so a truncated or damaged file is recognised."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json_object(path: str | Path, what: str = "JSON", error: type[SugarError] = SugarError) -> dict[str, Any]:
    """One JSON object from a file, or `error` naming the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be one JSON object")
    return data
