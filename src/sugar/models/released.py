"""Released models: finished runs shipped inside the package (fp16 safetensors, a few MB each), so
`sugar predict FILE --run nw-ucla`, `sugar serve --run nw-ucla` and `sugar evaluate nw-ucla-joint` work from a clean
checkout without training.

Two kinds: a recogniser (`sugar tune` run: bridge, LoRA adapters, the skeleton encoder; the frozen LLM comes from
the registry package named in recognizer.json, as for any run) and a stage-2 encoder (`sugar pretrain` run: its
config, encoder, processor and the selected checkpoint with both heads, so `sugar evaluate`, `sugar extract`,
`sugar fuse` and `sugar tune --encoder` take it like a run directory). `released/index.json` records per model
the kind, dataset, protocol, stream, the run's test metrics, the command that made it and a check: top-1 on a
fixed seeded subset (recognisers) or the whole test split (encoders), which tests/test_released.py recomputes
from the shared data.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from sugar.errors import SugarError
from sugar.fileio import atomic_save_safetensors, atomic_write_text, read_json_object
from sugar.runs import RunDir

RELEASED_DIR = Path(__file__).resolve().parents[1] / "released"
INDEX_FILE = "index.json"
# what a recogniser folder needs (recognizer_io's format); checkpoints, logs and pictures stay behind
_SHIPPED_DIRS = ("", "adapter", "encoder")
_SHIPPED_SUFFIXES = (".json", ".safetensors")
_RUN_BOOKKEEPING = frozenset({"report.json"})
# what evaluating a stage-2 run needs (evaluation.encoder.load_run), besides the selected checkpoint (RunDir's best)
_ENCODER_FILES = ("config.yaml", "encoder.json", "processor.json", "encoder.safetensors")
_BEST = ("checkpoints/best.safetensors", "checkpoints/best.json")
RECOGNIZER, ENCODER = "recognizer", "encoder"


@dataclass(frozen=True)
class ReleasedModel:
    """One entry of released/index.json."""

    name: str
    folder: Path
    dataset: str
    protocol: str
    stream: str
    command: str
    metrics: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    kind: str = RECOGNIZER


def released_models(root: Path | None = None) -> dict[str, ReleasedModel]:
    """name -> released model, from the index (empty when nothing is released)."""
    root = root or RELEASED_DIR
    index = root / INDEX_FILE
    if not index.is_file():
        return {}
    entries = read_json_object(index, "the released-model index")
    try:
        return {name: ReleasedModel(name, root / e["folder"], e["dataset"], e["protocol"], e["stream"], e["command"],
                                    e.get("metrics", {}), e.get("check", {}), e.get("kind", RECOGNIZER))
                for name, e in entries.items()}
    except (KeyError, TypeError) as exc:
        raise SugarError(f"{index}: unreadable entry ({exc})") from None


def resolve_run(run: str | Path) -> Path:
    """A run directory as given, or the folder of the released model of that name when no such path exists."""
    path = Path(run)
    if path.exists():
        return path
    released = released_models()
    if str(run) in released:
        return released[str(run)].folder
    return path


def released_name(folder: str | Path) -> str | None:
    """The released name of a folder inside the package (None for a user's own run)."""
    folder = Path(folder).resolve()
    for name, model in released_models().items():
        if model.folder.resolve() == folder:
            return name
    return None


def evaluation_dir(run: str | Path) -> Path:
    """Where evaluations of `run` go: RUN/evaluation, or ./runs/released/NAME/evaluation for a released model
    (the package folder stays read-only)."""
    name = released_name(run)
    return (Path("runs") / "released" / name if name else Path(run)) / "evaluation"


def unknown_run_hint() -> str:
    """The released names, for an error about a run that does not exist."""
    names = sorted(released_models())
    return f"; released models: {', '.join(names)}" if names else ""


def run_kind(run: str | Path) -> str:
    """RECOGNIZER for a finished `sugar tune` run, ENCODER for a finished `sugar pretrain` run."""
    src = Path(run)
    if (src / "recognizer.json").is_file():
        return RECOGNIZER
    missing = [f for f in (*_ENCODER_FILES, *_BEST) if not (src / f).is_file()]
    if missing:
        raise SugarError(f"{src}: neither a finished recogniser (recognizer.json) nor a finished encoder run "
                         f"(missing {', '.join(missing)})")
    return ENCODER


def _shipped_files(src: Path, kind: str) -> list[Path]:
    """The files of `src` a release copies, relative to it."""
    if kind == ENCODER:
        return [Path(f) for f in _ENCODER_FILES]
    found = []
    for sub in _SHIPPED_DIRS:
        folder = src / sub if sub else src
        if folder.is_dir():
            found += [f.relative_to(src) for f in sorted(folder.iterdir())
                      if f.is_file() and f.suffix in _SHIPPED_SUFFIXES and f.name not in _RUN_BOOKKEEPING]
    return found


def release_run(run: str | Path, name: str, *, dataset: str, protocol: str, stream: str, command: str,
                metrics: dict[str, Any], check: dict[str, Any], root: Path | None = None) -> Path:
    """Copy a finished recogniser or encoder run into root/name in fp16 and record it in the index (replacing
    an entry of the same name). Float tensors are halved: loading casts them back into the fp32 modules."""
    src, root = Path(run), root or RELEASED_DIR
    kind = run_kind(src)
    out = root / name
    staging = root / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for rel in _shipped_files(src, kind):
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix == ".safetensors":
            atomic_save_safetensors(_half(load_file(str(src / rel))), target)
        else:
            shutil.copyfile(src / rel, target)
    if kind == ENCODER:  # the selected checkpoint, read and written by RunDir (its digest is the fp16 file's)
        best = RunDir(src).load_best()
        assert best is not None  # run_kind checked best.json
        weights, info = best
        (staging / "checkpoints").mkdir(parents=True, exist_ok=True)
        RunDir(staging).save_best(_half(weights), info)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    record_release(name, kind=kind, dataset=dataset, protocol=protocol, stream=stream, command=command,
                   metrics=metrics, check=check, root=root)
    return out


def record_release(name: str, *, root: Path | None = None, **fields: Any) -> None:
    """Write (or update) the index entry of a released folder; `fields` replace the entry's values."""
    root = root or RELEASED_DIR
    index_path = root / INDEX_FILE
    index = read_json_object(index_path, "the released-model index") if index_path.is_file() else {}
    index[name] = {**index.get(name, {"folder": name}), **fields}
    atomic_write_text(index_path, json.dumps(index, indent=1, sort_keys=True) + "\n")


FP16_SAFE_MAX = 2.0**15  # fp16's largest finite value is 65504


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp16 copies of the float tensors, except BatchNorm statistics and anything fp16 cannot hold: the first
    graph layer's running variance of the NW-UCLA encoder reaches 2.7e6, which fp16 stores as inf (and then that
    channel outputs zeros: the text head fell from 85 to 72 % on the check subset)."""
    def keep_fp32(name: str, t: torch.Tensor) -> bool:
        return name.endswith(("running_mean", "running_var")) or bool(t.abs().max() >= FP16_SAFE_MAX)

    return {k: v if not v.is_floating_point() or not v.numel() or keep_fp32(k, v) else v.half()
            for k, v in state.items()}
