"""`sugar` subcommands for the knowledge area (filled in by the knowledge work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
