"""`recoup demo` — a realistic synthetic portfolio."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    _ = app
