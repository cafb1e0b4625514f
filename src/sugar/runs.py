"""Run directories: what every training command writes, and what evaluation and resuming read back.

A run directory holds config.yaml, metrics.jsonl (one JSON object per epoch), TensorBoard events under tb/,
checkpoints/, and, once finished, the saved model and report.json. A checkpoint is a pair
STEM.safetensors (weights) + STEM.state.pt (optimizer, RNG and counters; read back with
torch.load(weights_only=True)); `checkpoints/last.json` names the newest complete pair with the sha256 of
both files, and is replaced atomically only after both files are on disk, so a run killed at any instant
(kill -9 included) resumes from a consistent point. The pair before it is kept too: a checkpoint that turns
out truncated or damaged (its digest differs) is reported in one line and the previous one is used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch.utils.tensorboard import SummaryWriter

from sugar.errors import SugarError
from sugar.fileio import atomic_save_safetensors, atomic_torch_save, atomic_write_text, file_digest

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"  # held (flock) by the process writing the run; the file itself may stay behind
LOCK_OWNER = ".lock.pid"  # that process's pid, for the message another process gets


class RunDir:
    """One training run's folder: config, metrics, TensorBoard events, checkpoints."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    def create(self) -> RunDir:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return self

    @contextmanager
    def exclusive(self, create: bool = True) -> Iterator[RunDir]:
        """Hold the folder for one writer while the block runs. Two trainings started into the same folder (a
        script run twice, a resumed run still alive) would interleave checkpoints and metrics and lose both.
        create=False: the folder must exist already (a finished run being rewritten)."""
        if not create and not self.path.is_dir():
            raise SugarError(f"{self.path}: no such run directory")
        self.path.mkdir(parents=True, exist_ok=True)
        owner, lock = self.path / LOCK_OWNER, FileLock(self.path / LOCK_FILE, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            holder = owner.read_text().strip() if owner.is_file() else "unknown"
            raise SugarError(f"{self.path}: another process (pid {holder}) is writing this run; wait for it to "
                             "finish, stop it, or choose another --run-dir") from None
        try:
            owner.write_text(f"{os.getpid()}\n")
            yield self
        finally:
            owner.unlink(missing_ok=True)
            lock.release()

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    # ---- checkpoints
    def _pointer(self) -> dict[str, Any] | None:
        path = self.checkpoints / "last.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SugarError(f"{path}: unreadable checkpoint pointer ({exc}); delete it to start the run over"
                             ) from None

    def save_checkpoint(self, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
                        epoch: int | None = None) -> None:
        """Write the pair for optimizer step `step` (after `epoch` complete epochs), point last.json at it with
        both files' digests, keep the previous pair as a fallback and drop older ones."""
        stem = f"ckpt-{step:07d}"
        files = {"weights": f"{stem}.safetensors", "state": f"{stem}.state.pt"}
        atomic_save_safetensors(weights, self.checkpoints / files["weights"], {"step": str(step)})
        atomic_torch_save(state, self.checkpoints / files["state"])
        entry = {"epoch": step if epoch is None else epoch, "step": step, "stem": stem,
                 "sha256": {k: file_digest(self.checkpoints / f) for k, f in files.items()}}
        old = self._pointer()
        previous = {k: old[k] for k in ("epoch", "step", "stem", "sha256") if k in old} \
            if old and old["stem"] != stem else None
        atomic_write_text(self.checkpoints / "last.json", json.dumps({**entry, "previous": previous}))
        keep = {stem} | ({previous["stem"]} if previous else set())
        for path in [*self.checkpoints.glob("ckpt-*"), *self.checkpoints.glob("epoch-*")]:  # epoch-*: older runs
            if path.name.split(".")[0] not in keep:
                path.unlink(missing_ok=True)

    def last_epoch(self) -> int | None:
        pointer = self._pointer()
        return None if pointer is None else int(pointer["epoch"])

    def _load_pair(self, entry: dict[str, Any], device: str | torch.device) -> tuple[int, dict, dict]:
        weights_path = self.checkpoints / f"{entry['stem']}.safetensors"
        state_path = self.checkpoints / f"{entry['stem']}.state.pt"
        digests = entry.get("sha256")  # absent in runs written before digests were recorded
        for key, path in (("weights", weights_path), ("state", state_path)):
            if not path.is_file():
                raise ValueError(f"{path.name} is missing")
            if digests and file_digest(path) != digests[key]:
                raise ValueError(f"{path.name} does not match its recorded sha256 (truncated or damaged)")
        try:
            weights = load_file(str(weights_path), device=str(device))
            state = torch.load(state_path, map_location=device, weights_only=True)
        except (SafetensorError, RuntimeError, EOFError, OSError) as exc:
            raise ValueError(f"{entry['stem']} is unreadable ({exc})") from None
        return int(entry["epoch"]), weights, state

    def load_checkpoint(self, device: str | torch.device = "cpu") -> tuple[int, dict[str, torch.Tensor], dict] | None:
        """(counter, weights, state) of the newest good checkpoint, or None when the run has none yet. A bad
        newest checkpoint falls back to the previous one, with one line saying so."""
        pointer = self._pointer()
        if pointer is None:
            return None
        try:
            return self._load_pair(pointer, device)
        except ValueError as exc:
            previous = pointer.get("previous")
            if not previous:
                raise SugarError(f"{self.checkpoints}: the last checkpoint is not usable ({exc}) and there is no "
                                 "earlier one; delete checkpoints/ to start the run over") from None
            log.warning("%s: %s; resuming from the previous checkpoint (%s)", self.checkpoints, exc,
                        previous["stem"])
            try:
                return self._load_pair(previous, device)
            except ValueError as exc2:
                raise SugarError(f"{self.checkpoints}: neither the last checkpoint ({exc}) nor the previous one "
                                 f"({exc2}) is usable; delete checkpoints/ to start the run over") from None

    def save_best(self, weights: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        atomic_save_safetensors(weights, self.checkpoints / "best.safetensors", {"epoch": str(info.get("epoch"))})
        atomic_write_text(self.checkpoints / "best.json",
                          json.dumps({**info, "sha256": file_digest(self.checkpoints / "best.safetensors")}))

    def load_best(self, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict] | None:
        path, info_path = self.checkpoints / "best.safetensors", self.checkpoints / "best.json"
        if not info_path.is_file():
            return None
        info = json.loads(info_path.read_text())
        digest = info.pop("sha256", None)
        if not path.is_file() or (digest and file_digest(path) != digest):
            raise SugarError(f"{path}: the selected weights are missing or damaged (sha256 differs); rerun the "
                             "training command to redo the last epoch")
        return load_file(str(path), device=str(device)), info

    # ---- metrics
    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, keep: str, last: int) -> None:
        """Drop metric lines written after the checkpoint we resume from (a kill between the two writes):
        lines whose `keep` counter (epoch or step) is beyond `last`."""
        kept = [m for m in self.read_metrics() if m.get(keep, 0) <= last]
        atomic_write_text(self.metrics_path, "".join(json.dumps(m) + "\n" for m in kept))


class MetricsWriter:
    """Appends one JSON line per epoch to metrics.jsonl and mirrors scalars to TensorBoard (tb/)."""

    def __init__(self, run: RunDir, purge_step: int | None = None):
        self.run = run
        self.tb = SummaryWriter(str(run.path / "tb"), purge_step=purge_step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.tb.add_scalar(tag, value, step)

    def epoch(self, record: dict[str, Any], step: int) -> None:
        with open(self.run.metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        for key, value in record.items():
            if key != "epoch" and isinstance(value, int | float) and value is not None:
                self.tb.add_scalar(f"epoch/{key}", value, step)
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()
