"""Knowledge files (stage 1): one JSON per dataset with, for every class, its six body-part motions,
a bag of visual descriptions and a short description. Validated with pydantic so that a broken file
reports every bad field at once, naming the file and the field path.

File format (schema_version 1)::

    {"schema_version": 1, "dataset": "nw-ucla", "source": "how this file was produced",
     "classes": [{"label": "...",
                  "motion": {"head": "...", "hand": "...", "arm": "...", "hip": "...", "leg": "...", "foot": "..."},
                  "visual": ["...", ...],
                  "description": "One or two sentences."}]}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sugar.errors import KnowledgeError
from sugar.fileio import atomic_write_text
from sugar.skeleton.datasets import DATASETS, class_names

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)
BODY_PARTS: tuple[str, ...] = ("head", "hand", "arm", "hip", "leg", "foot")


def _clean(text: str) -> str:
    text = " ".join(str(text).split())
    if not text:
        raise ValueError("must not be empty")
    return text


class Motion(BaseModel):
    """One phrase per body part, in the paper's order (head, hand, arm, hip, leg, foot)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    head: str
    hand: str
    arm: str
    hip: str
    leg: str
    foot: str

    @field_validator(*BODY_PARTS)
    @classmethod
    def _non_empty(cls, value: str) -> str:
        return _clean(value)

    def text(self) -> str:
        """The joined motion text T_m: "head ...; hand ...; arm ...; hip ...; leg ...; foot ..."."""
        return "; ".join(f"{part} {getattr(self, part).rstrip('.;')}" for part in BODY_PARTS)

    def parts(self) -> dict[str, str]:
        return {part: getattr(self, part) for part in BODY_PARTS}


class ClassKnowledge(BaseModel):
    """Everything stage 2 and stage 3 know about one action class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    motion: Motion
    visual: list[str] = Field(default_factory=list)  # may be empty until `sugar knowledge visual` fills it
    description: str

    @field_validator("label", "description")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        return _clean(value)

    @field_validator("visual")
    @classmethod
    def _visual_items(cls, value: list[str]) -> list[str]:
        cleaned = [_clean(v) for v in value]
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("visual descriptions must be distinct")
        return cleaned

    @property
    def motion_text(self) -> str:
        """The motion knowledge as one text (what the text encoder embeds)."""
        return self.motion.text()


class Knowledge(BaseModel):
    """A validated knowledge file; `classes` are in class-index order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    dataset: str
    source: str = ""
    classes: list[ClassKnowledge] = Field(min_length=1)

    @field_validator("schema_version", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> Any:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unsupported schema_version {value!r}; this version of sugar reads {list(SUPPORTED_VERSIONS)}"
            )
        return value

    @model_validator(mode="after")
    def _unique_labels(self) -> Knowledge:
        seen: set[str] = set()
        dups = [c.label for c in self.classes if c.label in seen or seen.add(c.label)]
        if dups:
            raise ValueError(f"duplicate class labels: {dups}")
        return self

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def motion_text(self, index: int) -> str:
        return self.classes[index].motion_text

    def get(self, label: str) -> ClassKnowledge:
        for cls in self.classes:
            if cls.label == label:
                return cls
        raise KnowledgeError(f"class {label!r} is not in the {self.dataset} knowledge")

    def subset(self, labels: Iterable[str], dataset: str | None = None) -> Knowledge:
        """The classes named in `labels`, in the order given (e.g. the unseen classes of a zero-shot split)."""
        labels = list(labels)
        index = {c.label: c for c in self.classes}
        missing = [lab for lab in labels if lab not in index]
        if missing:
            raise KnowledgeError(f"{self.dataset} knowledge has no class(es) {missing}")
        return Knowledge(schema_version=self.schema_version, dataset=dataset or self.dataset, source=self.source,
                         classes=[index[lab] for lab in labels])

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no whitespace); stage 2 keys its text-embedding cache on it."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the file atomically (temp file + rename), so a crash never leaves half a file."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")
        return path


def _format_errors(source: str, exc: ValidationError, data: Any) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        parts = []
        for item in loc:
            parts.append(f"[{item}]" if isinstance(item, int) else (f".{item}" if parts else str(item)))
        where = "".join(parts) or "(top level)"
        # name the class by label as well as index when we can
        if len(loc) >= 2 and loc[0] == "classes" and isinstance(loc[1], int):
            try:
                label = data["classes"][loc[1]].get("label")
                if label:
                    where += f" ({label!r})"
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {where}: {msg}")
    return f"{source}: {len(lines)} problem(s) in knowledge file:\n" + "\n".join(lines)


def parse_knowledge(data: Any, source: str = "<knowledge>") -> Knowledge:
    """Validate already-decoded JSON; every bad field is listed in one KnowledgeError."""
    if isinstance(data, dict) and "schema_version" not in data:
        raise KnowledgeError(f"{source}: missing schema_version (this version of sugar reads {SCHEMA_VERSION})")
    if isinstance(data, dict) and data.get("schema_version") not in SUPPORTED_VERSIONS:
        raise KnowledgeError(f"{source}: unsupported schema_version {data.get('schema_version')!r}; "
                             f"this version of sugar reads {list(SUPPORTED_VERSIONS)}")
    try:
        return Knowledge.model_validate(data)
    except ValidationError as exc:
        raise KnowledgeError(_format_errors(source, exc, data)) from None


def shipped_path(dataset: str) -> Path:
    """Path of the packaged knowledge file of a named dataset (ntu60 has none: it is derived from ntu120)."""
    return Path(str(resources.files("sugar.knowledge") / "shipped" / f"{dataset}.json"))


def shipped_datasets() -> list[str]:
    """Datasets that have knowledge (ntu60 whenever ntu120 is shipped)."""
    out = [d for d in DATASETS if d != "ntu60" and shipped_path(d).is_file()]
    if "ntu120" in out:
        out.insert(0, "ntu60")
    return out


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise KnowledgeError(f"{path}: knowledge file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KnowledgeError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise KnowledgeError(f"{path}: not UTF-8 text ({exc})") from None


def load_knowledge(dataset_or_path: str | Path) -> Knowledge:
    """A dataset name (ntu60, ntu120, nw-ucla, ...) loads the packaged file; anything else is a JSON path.

    ntu60 is ntu120's first 60 classes, checked against the ntu60 action list. Named datasets are
    checked against their action list (same labels, same order).
    """
    name = str(dataset_or_path)
    if name in DATASETS and not Path(name).suffix:
        if name == "ntu60":
            full = load_knowledge("ntu120")
            actions = class_names("ntu60")
            know = full.subset(full.labels[:60], dataset="ntu60")
            check_against_actions(know, actions, source="ntu60 (first 60 classes of ntu120)", strict=True)
            return know
        path = shipped_path(name)
        if not path.is_file():
            raise KnowledgeError(f"no knowledge shipped for {name!r} ({path}); generate one with "
                                 f"`sugar knowledge motion --actions {name} --out FILE`")
        know = parse_knowledge(_read_json(path), str(path))
        check_against_actions(know, class_names(name), source=str(path), strict=True)
        return know
    path = Path(name)
    if not path.exists() and not path.suffix:
        raise KnowledgeError(f"{name!r} is neither a dataset ({', '.join(DATASETS)}) nor an existing file")
    return parse_knowledge(_read_json(path), str(path))


@dataclass
class ActionCheck:
    """How a knowledge file's labels compare with an action list."""

    missing: list[str] = field(default_factory=list)  # in the action list, not in the knowledge
    extra: list[str] = field(default_factory=list)  # in the knowledge, not in the action list
    misordered: list[tuple[int, str, str]] = field(default_factory=list)  # (index, expected, found)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.misordered)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)} class(es): {self.missing[:10]}")
        if self.extra:
            parts.append(f"{len(self.extra)} class(es) not in the action list: {self.extra[:10]}")
        if self.misordered:
            shown = ", ".join(f"#{i}: expected {e!r}, found {f!r}" for i, e, f in self.misordered[:5])
            parts.append(f"{len(self.misordered)} class(es) out of order ({shown})")
        return "; ".join(parts) or "matches the action list"


def check_against_actions(knowledge: Knowledge, actions: Sequence[str], source: str | None = None,
                          strict: bool = False) -> ActionCheck:
    """Compare labels with an action list: missing, extra and misordered labels. strict=True raises."""
    labels = knowledge.labels
    action_set, label_set = set(actions), set(labels)
    check = ActionCheck(missing=[a for a in actions if a not in label_set],
                        extra=[lab for lab in labels if lab not in action_set])
    common_expected = [a for a in actions if a in label_set]
    common_found = [lab for lab in labels if lab in action_set]
    check.misordered = [(i, e, f) for i, (e, f) in enumerate(zip(common_expected, common_found, strict=True)) if e != f]
    if strict and not check.ok:
        raise KnowledgeError(f"{source or knowledge.dataset}: {check.describe()}")
    return check
