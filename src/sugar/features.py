"""Pre-computed encoder token sequences for stage 3 (`sugar extract`), so the frozen encoder runs only once.

Layout of an output folder:
  index.json            {"format": "sugar-features/1", "encoder_run", "encoder_sha256", "dataset", "protocol",
                         "split", "dim", "dtype", "classes": [...],
                         "samples": [{"name", "label", "length", "shard", "key"}]}
  shard-00000.safetensors  one tensor per sample, key = "000123" (its position in "samples"), shape [length, dim]
Shards hold up to `shard_size` samples each and are written atomically; index.json is written last, so a
folder with an index is complete. A folder that already holds another encoder's features is never replaced
silently (overwrite=True / `--overwrite` does), and features are never read for an encoder whose weights differ
from the ones that made them (`encoder_sha256`; folders written before it was recorded are taken as they are).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch.utils.data import DataLoader
from tqdm import tqdm

from sugar.errors import DataError
from sugar.fileio import atomic_save_safetensors, atomic_write_text
from sugar.models.encoder import encoder_digest, load_encoder
from sugar.models.released import resolve_run

FORMAT = "sugar-features/1"


@torch.no_grad()
def extract_features(run_dir: str | Path, out_dir: str | Path, dataset: str | None = None,
                     protocol: str | None = None, split: str = "train", root: str | None = None,
                     batch_size: int = 32, shard_size: int = 1024, dtype: str = "float32",
                     progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run the run's encoder over a split (deterministic test-time transform) and write shards + index.json."""
    run_dir = resolve_run(run_dir)
    out = Path(out_dir)
    _check_target(out, Path(run_dir), overwrite)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bundle = load_encoder(run_dir, device)
    encoder, source = bundle.encoder, bundle.data
    if source is None:
        raise DataError(run_dir, "this encoder does not record the data it was trained on; pass --dataset")
    ds = source.open_split(split, dataset=dataset, protocol=protocol, root=root, layout=encoder.layout)
    if len(ds) == 0:
        raise DataError(root or dataset or source.dataset, f"the {split} split is empty")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("shard-*.safetensors"):  # an earlier, interrupted or replaced extraction
        stale.unlink()
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    loader = DataLoader(bundle.processor.dataset(ds, train=False), batch_size=batch_size, shuffle=False)
    if progress:
        loader = tqdm(loader, desc=f"extract {split}")
    samples: list[dict[str, Any]] = []
    pending: dict[str, torch.Tensor] = {}
    shard = 0

    def flush() -> None:
        nonlocal shard, pending
        if pending:
            atomic_save_safetensors(pending, out / f"shard-{shard:05d}.safetensors")
            shard, pending = shard + 1, {}

    for x, _ in loader:
        tokens = encoder(x.to(device).float()).to(torch_dtype).cpu()
        for row in tokens:
            i = len(samples)
            key = f"{i:06d}"
            pending[key] = row.contiguous()
            samples.append({"name": ds.names[i], "label": int(ds.labels[i]), "length": int(row.shape[0]),
                            "shard": f"shard-{shard:05d}.safetensors", "key": key})
            if len(pending) >= shard_size:
                flush()
    flush()
    index = {"format": FORMAT, "encoder_run": str(Path(run_dir).resolve()), "encoder_sha256": encoder_digest(run_dir),
             "dataset": ds.name, "protocol": ds.protocol,
             "split": split, "dim": encoder.dim, "dtype": dtype, "classes": list(ds.classes), "samples": samples}
    atomic_write_text(out / "index.json", json.dumps(index, indent=1))
    return {k: v for k, v in index.items() if k != "samples"} | {"count": len(samples), "out": str(out)}


def _check_target(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse to replace features of another encoder (or a folder that is not a feature folder) silently."""
    if overwrite or not out.exists():
        return
    if not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    index = out / "index.json"
    if index.is_file():
        try:
            previous = json.loads(index.read_text()).get("encoder_run")
        except (OSError, json.JSONDecodeError, AttributeError):
            previous = None
        if previous is None or Path(previous).resolve() != run_dir.resolve():
            raise DataError(out, f"holds features of another encoder ({previous}); choose another --out or pass "
                                 "--overwrite")
    elif any(p for p in out.iterdir() if not p.name.startswith("shard-")):
        raise DataError(out, "is not empty and holds no extracted features; choose another --out or pass --overwrite")


class FeatureStore(Sequence):
    """Read a `sugar extract` folder: store[i] -> (tokens [length, dim] float32, label, name)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / "index.json"
        try:
            self.index = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(path, f"not a feature folder written by `sugar extract` ({exc})") from None
        if self.index.get("format") != FORMAT:
            raise DataError(path, f"unknown format {self.index.get('format')!r}; expected {FORMAT}")
        self.samples: list[dict[str, Any]] = self.index["samples"]
        self.classes: list[str] = self.index["classes"]
        self.dim: int = int(self.index["dim"])
        self._open: dict[str, Any] = {}

    def check_encoder(self, encoder_run: str | Path, digest: str | None = None) -> None:
        """Refuse features made by other weights than `encoder_run`'s (`digest`: its encoder_digest, when the
        caller checks several folders): a recogniser trained on them would carry an encoder that never produced
        its inputs."""
        made_by = self.index.get("encoder_sha256")
        if made_by is not None and made_by != (digest or encoder_digest(encoder_run)):
            raise DataError(self.folder / "index.json",
                            f"extracted by other encoder weights ({self.index.get('encoder_run')}) than "
                            f"{encoder_run}'s; "
                            f"re-extract: sugar extract {encoder_run} --split {self.index.get('split')} "
                            f"--out {self.folder} --overwrite")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | None, str]:  # type: ignore[override]
        entry = self.samples[i]
        handle = self._open.get(entry["shard"])
        if handle is None:
            path = self.folder / entry["shard"]
            if not path.is_file():
                raise DataError(path, "feature shard listed in index.json is missing")
            handle = self._open[entry["shard"]] = safe_open(str(path), framework="pt")
        return handle.get_tensor(entry["key"]).float(), entry["label"], entry["name"]
