"""The project's own error types: every user-facing failure is one of these, with a clear message."""

from __future__ import annotations

from pathlib import Path


class SugarError(Exception):
    """Base class: the CLI prints these as one line (no traceback unless --debug)."""


class DataError(SugarError):
    """A skeleton file or dataset is unreadable or invalid; names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class LayoutError(SugarError):
    """An unknown layout name or a malformed layout description."""


class ConfigError(SugarError):
    """A config file or override that does not fit the config dataclasses."""


class KnowledgeError(SugarError):
    """A knowledge file that is missing fields or does not match its action list."""
