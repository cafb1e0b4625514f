"""`sugar` subcommands for the data area (filled in by the data work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
