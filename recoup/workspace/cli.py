"""`recoup assign run --as-of DATE`: case assignment (分案) by the rules."""

from __future__ import annotations

import datetime as dt
import time

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from recoup.core.clock import business_today
from recoup.core.db import get_engine
from recoup.core.errors import DomainError
from recoup.workspace import service

app = typer.Typer(help="Case assignment (分案).", no_args_is_help=True)
console = Console()


@app.callback()
def assign() -> None:
    """Case assignment (分案): `recoup assign run`."""


LABELS = {
    "assigned": "Assigned / 分配",
    "stage_changed": "Moved on a stage change / 换阶段重分",
    "team_only": "To a team only / 仅分至小组",
    "unassigned": "Unassigned (settled, written off) / 结清撤案",
    "unmatched": "Matching no rule / 无匹配规则",
}


@app.command("run")
def run(
    as_of: str = typer.Option(None, "--as-of", help="Business date, e.g. 2026-11-23 (today)."),
) -> None:
    """Assign the worked accounts to collectors by the assignment rules. 按规则分案。"""
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        raise typer.BadParameter(f"{as_of!r} is not a date like 2026-11-23") from exc
    engine = get_engine()
    t0 = time.perf_counter()
    try:
        with Session(engine) as session, session.begin():
            day = day or business_today(dt.datetime.now(dt.UTC))
            counts = service.run_assignment(session, day, by="cli")
    except DomainError as exc:
        console.print(f"[red]{exc.title}[/red]: {exc.detail}")
        raise typer.Exit(2) from exc
    table = Table(title=f"Assignment {day.isoformat()} / 分案 {day.isoformat()}")
    table.add_column("count / 计数")
    table.add_column("accounts / 账户数", justify="right")
    for key, value in counts.items():
        table.add_row(LABELS.get(key, key), f"{value:,}")
    console.print(table)
    console.print(f"{time.perf_counter() - t0:.2f}s")
