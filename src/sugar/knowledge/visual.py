"""Visual knowledge T_v (PAPER.md "Stage 1"): a vision-language model describes diverse frames of each
action's videos under the paper's three rules; per-video answers are pooled per class (deduplicated) and
merged into a knowledge file. Asked through the same client, cache and retries as the motion generator.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sugar.errors import DataError, KnowledgeError
from sugar.knowledge.chat import AnswerRejected, ChatClient, Message, ParseError, Sampling, run_bounded
from sugar.knowledge.frames import find_videos, read_frames, select_diverse, to_jpeg_data_url
from sugar.knowledge.schema import ClassKnowledge, Knowledge, load_knowledge

log = logging.getLogger(__name__)

VISUAL_RULES = (
    "You describe video frames of a human action. Follow three rules: "
    "1. describe the image so that it matches the action; "
    "2. describe only the scene related to the action; "
    "3. do not add anything unrelated to the action."
)


def visual_messages(action: str, image_urls: Sequence[str]) -> list[Message]:
    """One question per video: the action name and its k selected frames as data-URL images."""
    n = len(image_urls)
    text = (f"These {n} frames come from a video of a person performing the action '{action}'. "
            f"Write {n} different one-sentence descriptions of what the action looks like in these frames, "
            "one per line, each starting with 'A person' and no numbering.")
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return [{"role": "system", "content": VISUAL_RULES}, {"role": "user", "content": content}]


_BULLET = re.compile(r"^\s*(?:[-*•·]+|\d+[.):]|frame\s*\d+\s*[:.-])\s*", re.IGNORECASE)


def parse_visual(text: str, minimum: int = 1) -> list[str]:
    """Description lines (bullets/numbering removed, 4-60 words, deduplicated); at least `minimum`."""
    out: list[str] = []
    seen: set[str] = set()
    for line in text.replace("\r", "").split("\n"):
        line = _BULLET.sub("", line.replace("**", "")).strip().strip("\"'").strip()
        if not line or line.endswith(":"):
            continue
        words = line.split()
        if not 4 <= len(words) <= 60 or not re.search(r"[a-zA-Z]{3}", line):
            continue
        if not line.endswith((".", "!", "?")):
            line += "."
        key = _norm(line)
        if key not in seen:
            seen.add(key)
            out.append(line)
    if len(out) < minimum:
        raise ParseError(f"expected at least {minimum} description line(s), got {len(out)}")
    return out


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def label_key(name: str) -> str:
    """Folder names cannot hold '/', so labels match folders by lowercase alphanumerics joined by '_'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def assign_labels(videos_dir: Path, videos: Sequence[Path], labels: Sequence[str],
                  labels_csv: Path | None = None) -> tuple[dict[Path, str], dict[str, str]]:
    """Class of each video (parent folder name, or a CSV of path,label); (assigned, unassigned -> reason)."""
    by_key = {label_key(lab): lab for lab in labels}
    assigned: dict[Path, str] = {}
    problems: dict[str, str] = {}
    if labels_csv is not None:
        table: dict[str, str] = {}
        try:
            with open(labels_csv, newline="", encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    if len(row) < 2 or row[0].strip().lower() in ("path", "video", "file"):
                        continue
                    table[row[0].strip()] = row[1].strip()
        except OSError as exc:
            raise DataError(labels_csv, f"cannot read labels CSV ({exc})") from None
        for video in videos:
            rel = video.relative_to(videos_dir).as_posix()
            name = table.get(rel) or table.get(video.name)
            if name is None:
                problems[rel] = f"not listed in {labels_csv}"
            elif label_key(name) not in by_key:
                problems[rel] = f"label {name!r} is not a class of the knowledge file"
            else:
                assigned[video] = by_key[label_key(name)]
        return assigned, problems
    for video in videos:
        rel = video.relative_to(videos_dir).as_posix()
        folder = video.parent.name
        if video.parent == videos_dir:
            problems[rel] = "not inside a class folder (use --labels CSV)"
        elif label_key(folder) not in by_key:
            problems[rel] = f"folder {folder!r} is not a class of the knowledge file"
        else:
            assigned[video] = by_key[label_key(folder)]
    return assigned, problems


@dataclass
class VisualRun:
    knowledge: Knowledge | None
    failures: dict[str, str] = field(default_factory=dict)  # video -> reason
    per_class: dict[str, list[str]] = field(default_factory=dict)
    embedder: str = ""


def describe_video(video: Path, action: str, client: ChatClient, embedder: Any, *, k: int = 5,
                   max_frames: int = 64, attempts: int = 3, sampling: Sampling | None = None) -> list[str]:
    """Select k diverse frames of one video and ask the VLM for descriptions of them."""
    frames = read_frames(video, max_frames=max_frames)
    chosen = sorted(select_diverse(embedder.embed(frames), k))
    urls = [to_jpeg_data_url(frames[i]) for i in chosen]
    return client.ask_parsed(visual_messages(action, urls), parse_visual, attempts=attempts,
                             sampling=sampling or Sampling(temperature=0.0, seed=0, max_tokens=400),
                             what=f"visual of {video.name} ({action!r})")


def generate_visual_knowledge(videos_dir: str | Path, knowledge: Knowledge, client: ChatClient, embedder: Any, *,
                              k: int = 5, labels_csv: str | Path | None = None, replace: bool = False,
                              max_frames: int = 64, attempts: int = 3, concurrency: int = 4,
                              progress: bool = True) -> VisualRun:
    """Describe every video under videos_dir and merge the pooled descriptions into `knowledge`.

    replace=False appends new descriptions after the existing ones (deduplicated); replace=True replaces the
    visual list of every class that got new descriptions. Videos that fail are reported, not fatal.
    """
    videos_dir = Path(videos_dir)
    videos = find_videos(videos_dir)
    if not videos:
        raise DataError(videos_dir, "no video files found")
    assigned, failures = assign_labels(videos_dir, videos, knowledge.labels,
                                       Path(labels_csv) if labels_csv is not None else None)

    def one(video: Path) -> list[str]:
        try:
            return describe_video(video, assigned[video], client, embedder, k=k, max_frames=max_frames,
                                  attempts=attempts)
        except DataError as exc:
            raise AnswerRejected(str(exc), []) from None

    run = run_bounded(list(assigned), one, concurrency=concurrency, desc="visual knowledge", progress=progress)
    failures.update({v.relative_to(videos_dir).as_posix(): reason for v, reason in run.failures.items()})
    pools: dict[str, list[str]] = {}
    for video in sorted(run.results):
        pool = pools.setdefault(assigned[video], [])
        keys = {_norm(t) for t in pool}
        for text in run.results[video]:
            if _norm(text) not in keys:
                keys.add(_norm(text))
                pool.append(text)
    if not pools:
        return VisualRun(knowledge=None, failures=failures, embedder=embedder.name)
    classes = []
    for cls in knowledge.classes:
        new = pools.get(cls.label)
        if not new:
            classes.append(cls)
            continue
        merged = [] if replace else list(cls.visual)
        keys = {_norm(t) for t in merged}
        merged += [t for t in new if _norm(t) not in keys]
        classes.append(ClassKnowledge(label=cls.label, motion=cls.motion, visual=merged, description=cls.description))
    note = f"visual by {client.provider.identity} from video frames ({embedder.name}, k={k}; sugar knowledge visual)"
    source = knowledge.source if note in knowledge.source else "; ".join(s for s in (knowledge.source, note) if s)
    out = Knowledge(schema_version=knowledge.schema_version, dataset=knowledge.dataset, source=source, classes=classes)
    return VisualRun(knowledge=out, failures=failures, per_class=pools, embedder=embedder.name)


def require_knowledge_file(path: str | Path) -> Knowledge:
    """The visual generator adds to a knowledge file made by `sugar knowledge motion` (or a shipped one)."""
    path = Path(path)
    if not path.is_file():
        raise KnowledgeError(f"{path}: not found; create it first with `sugar knowledge motion --out {path}` "
                             "(visual knowledge is added to an existing knowledge file)")
    return load_knowledge(path)
