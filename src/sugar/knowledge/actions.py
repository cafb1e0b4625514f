"""Official class names per dataset, in class-index order (files under knowledge/actions/)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from sugar.errors import KnowledgeError

DATASETS: tuple[str, ...] = ("ntu60", "ntu120", "pku-mmd", "toyota", "nw-ucla", "msr-action3d", "synthetic")


@cache
def load_action_list(dataset: str) -> tuple[str, ...]:
    """Class names of a named dataset. NTU-60's list is the first 60 entries of NTU-120's."""
    if dataset == "ntu60":
        return load_action_list("ntu120")[:60]
    if dataset not in DATASETS:
        raise KnowledgeError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    path = resources.files("sugar.knowledge") / "actions" / f"{dataset}.txt"
    if not path.is_file():
        raise KnowledgeError(f"no action list shipped for {dataset!r} ({path})")
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    if len(set(names)) != len(names):
        raise KnowledgeError(f"{path}: duplicate class names")
    return names
