"""Diverse frames for visual knowledge (PAPER.md "Stage 1"): read a video with PyAV, embed its frames
with a CLIP image encoder, keep the k most mutually dissimilar ones (greedy farthest-point selection on
cosine similarity).

When no CLIP model can be loaded offline, `FallbackEmbedder` is used instead and says so: an 8x8x8 RGB
colour histogram plus a 16x16 grayscale thumbnail, each L2-normalised, concatenated and normalised again.
It separates scenes by colour and layout, not by meaning, which is enough to avoid near-duplicate frames.

PyAV, Pillow, torch and transformers are imported where they are used, on purpose: only visual knowledge
needs them, and `sugar knowledge motion` imports this package without them.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sugar.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
FALLBACK_NAME = "fallback:rgb-hist-8x8x8+gray-16x16"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


def read_frames(path: str | Path, max_frames: int = 64) -> list[np.ndarray]:
    """Up to max_frames RGB frames (uint8 [H,W,3]) spread evenly over the video."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DataError(path, f"cannot decode video ({exc})") from None
    if not frames:
        raise DataError(path, "video has no frames")
    if len(frames) > max_frames:
        keep = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
        frames = [frames[i] for i in keep]
    return frames


def _l2(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class FallbackEmbedder:
    """Colour histogram + grayscale thumbnail; used (and announced) when no CLIP model is available."""

    name = FALLBACK_NAME
    is_fallback = True

    def embed(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        from PIL import Image

        out = []
        for frame in frames:
            img = Image.fromarray(frame).convert("RGB")
            small = np.asarray(img.resize((64, 64), Image.BILINEAR), dtype=np.int64)
            bins = (small // 32).reshape(-1, 3)
            hist = np.bincount(bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2], minlength=512).astype(np.float64)
            thumb = np.asarray(img.convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float64).ravel() / 255.0
            thumb = thumb - thumb.mean()  # layout, independent of brightness (which the histogram carries)
            out.append(np.concatenate([_l2(np.sqrt(hist)), _l2(thumb) if thumb.any() else thumb]))
        return _l2(np.stack(out)).astype(np.float32)


class ClipEmbedder:
    """A transformers CLIPModel's image features, loaded from local files only."""

    is_fallback = False

    def __init__(self, name: str = DEFAULT_CLIP, device: str = "cpu"):
        from transformers import CLIPImageProcessor, CLIPModel

        self.name = name
        self.device = device
        self.model = CLIPModel.from_pretrained(name, local_files_only=True).to(device).eval()
        self.processor = CLIPImageProcessor.from_pretrained(name, local_files_only=True)

    def embed(self, frames: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        import torch

        feats = []
        for start in range(0, len(frames), batch_size):
            batch = self.processor(images=list(frames[start:start + batch_size]), return_tensors="pt")
            with torch.no_grad():
                out = self.model.get_image_features(pixel_values=batch["pixel_values"].to(self.device))
            if not isinstance(out, torch.Tensor):  # newer transformers may return a model output
                out = out.pooler_output if getattr(out, "pooler_output", None) is not None else out[0]
            feats.append(out.float().cpu().numpy())
        return _l2(np.concatenate(feats)).astype(np.float32)


def get_frame_embedder(clip_model: str | None = None, device: str = "cpu") -> Any:
    """CLIP by name or path. clip_model=None tries the default CLIP and falls back (with a warning) when it is
    not available offline; "fallback" asks for the fallback; an explicitly named model that fails is an error."""
    if clip_model == "fallback":
        return FallbackEmbedder()
    try:
        return ClipEmbedder(clip_model or DEFAULT_CLIP, device=device)
    except (OSError, ValueError) as exc:
        if clip_model is not None:
            raise ConfigError(f"cannot load CLIP model {clip_model!r} from local files: {exc}") from None
        log.warning("CLIP model %s is not available offline; using the fallback frame embedding %s",
                    DEFAULT_CLIP, FALLBACK_NAME)
        return FallbackEmbedder()


def select_diverse(embeddings: np.ndarray, k: int) -> list[int]:
    """Indices of k mutually dissimilar rows: start from the row farthest from the mean, then repeatedly add
    the row whose largest cosine similarity to the chosen set is smallest (ties: earliest row)."""
    emb = _l2(np.asarray(embeddings, dtype=np.float64))
    n = len(emb)
    if n == 0:
        return []
    k = min(k, n)
    mean = emb.mean(axis=0)
    first = int(np.argmin(emb @ mean)) if np.linalg.norm(mean) > 1e-12 else 0
    chosen = [first]
    max_sim = emb @ emb[first]
    while len(chosen) < k:
        score = max_sim.copy()
        score[chosen] = np.inf
        nxt = int(np.argmin(score))
        chosen.append(nxt)
        max_sim = np.maximum(max_sim, emb @ emb[nxt])
    return chosen


def to_jpeg_data_url(frame: np.ndarray, max_side: int = 512, quality: int = 85) -> str:
    """A frame as a base64 JPEG data URL (the image content of an OpenAI-compatible chat message)."""
    from PIL import Image

    img = Image.fromarray(frame).convert("RGB")
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def find_videos(root: str | Path) -> list[Path]:
    """Video files under root (recursively), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "videos folder not found")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
