"""Action lists given by users: the one parser every command uses for `--actions`.

A spec is a named dataset (its official class list, and its shipped knowledge when there is one), a dataset
folder of the user's own (its classes.txt, and its knowledge.json when there is one), a knowledge JSON file
(its labels, with the knowledge), or a text file with one action name per line (`#` starts a comment line).
Names must be unique and the list non-empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sugar.errors import KnowledgeError
from sugar.knowledge.schema import Knowledge, load_knowledge, shipped_datasets
from sugar.skeleton.datasets import DATASETS, class_names, dataset_label
from sugar.skeleton.own_data import KNOWLEDGE_FILE


@dataclass
class ActionList:
    """Candidate action names, where they came from, and their knowledge when the spec carries one."""

    names: list[str]
    source: str  # dataset name or file stem (names generated files and caches)
    knowledge: Knowledge | None = None


def parse_action_names(text: str, source: str) -> list[str]:
    """One name per line; blank lines and lines starting with # are skipped; duplicates are an error."""
    names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise KnowledgeError(f"{source}: no action names (one per line)")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise KnowledgeError(f"{source}: duplicate action names {dups}")
    return names


def read_action_list(spec: str | Path, with_knowledge: bool = True) -> ActionList:
    """A dataset name, a knowledge .json file or a text file of names (see the module docstring)."""
    spec = str(spec)
    if spec in DATASETS and not Path(spec).is_file():
        knowledge = load_knowledge(spec) if with_knowledge and spec in shipped_datasets() else None
        return ActionList(list(class_names(spec)), spec, knowledge)
    path = Path(spec)
    if path.is_dir():
        own = path / KNOWLEDGE_FILE
        knowledge = load_knowledge(own) if with_knowledge and own.is_file() else None
        return ActionList(list(class_names(spec)), dataset_label(spec), knowledge)
    if not path.is_file():
        raise KnowledgeError(f"{spec!r} is neither a dataset ({', '.join(DATASETS)}) nor an action-list file")
    if path.suffix.lower() == ".json":
        knowledge = load_knowledge(path)
        return ActionList(list(knowledge.labels), path.stem, knowledge)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeError(f"{path}: cannot read the action list ({exc})") from None
    return ActionList(parse_action_names(text, str(path)), path.stem)
