"""How the command line shows a domain error: its bilingual title, then every bad value
(field, value, why; the row for bulk imports) or the detail."""

from __future__ import annotations

from rich.console import Console

from recoup.core.errors import DomainError, Invalid


def print_error(console: Console, exc: DomainError) -> None:
    console.print(f"[red]{exc.title}[/red]")
    if isinstance(exc, Invalid) and exc.errors:
        for err in exc.errors:
            where = f"row {err.row} / 第{err.row}行, " if err.row is not None else ""
            console.print(f"  {where}{err.field} = {err.value!r}: {err.why}", markup=False)
    else:
        console.print(f"  {exc.detail}", markup=False)
