"""`recoup cycle run --as-of DATE` and `recoup cycle list`."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from recoup.core.db import get_engine
from recoup.core.errors import DomainError
from recoup.core.money import to_major
from recoup.cycle import service
from recoup.ledger import views  # noqa: F401  (registers the labels of the counts)
from recoup.web.pages import label_in


def bilingual(kind: str, code: str) -> str:
    """ "Penalty interest accrued / 计提罚息" for a stored code with a registered label."""
    english, chinese = label_in("en", kind, code), label_in("zh-CN", kind, code)
    return english if english == chinese else f"{english} / {chinese}"


cycle = typer.Typer(help="The daily cycle (日终批处理).", no_args_is_help=True)
console = Console()


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-23") from exc


@cycle.command("run")
def run(
    as_of: str = typer.Option(..., "--as-of", help="Business date to run, e.g. 2026-11-23."),
    partitions: int = typer.Option(None, help="Number of id partitions (default from settings)."),
    partition: list[int] = typer.Option(
        None, "--partition", help="Only these partitions (to share a date among workers)."
    ),
) -> None:
    """Age every account for the date: DPD, bucket, stage, accruals, status. 日终跑批。"""
    day = _date(as_of)
    engine = get_engine()
    with Progress(
        TextColumn("[bold]cycle {task.fields[day]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("cycle", total=None, day=day.isoformat())

        def tick(_: int, total: int) -> None:
            progress.update(task, total=total, advance=1)

        try:
            result = service.run_cycle(
                engine, day, partitions=partitions, only=partition or None, on_partition=tick
            )
        except DomainError as exc:
            console.print(f"[red]{exc.title}[/red]: {exc.detail}")
            raise typer.Exit(2) from exc
    table = Table(title=f"Cycle {day.isoformat()} / 日终 {day.isoformat()}")
    table.add_column("count / 计数")
    table.add_column("value / 数值", justify="right")
    for key, value in sorted(
        result.counts.items(), key=lambda kv: service.split_amount_key(kv[0]) is not None
    ):
        amount = service.split_amount_key(key)
        if amount is None:
            table.add_row(bilingual("cycle_count", key), f"{value:,}")
        else:
            name, currency = amount
            table.add_row(
                f"{bilingual('cycle_count', name)} ({currency})", f"{to_major(value, currency):,}"
            )
    console.print(table)
    console.print(
        f"partitions done {result.partitions_done}, already done "
        f"{result.partitions_skipped}, {result.seconds:.2f}s"
    )


@cycle.command("list")
def list_runs(limit: int = typer.Option(20, help="How many runs.")) -> None:
    """Show recent cycle runs. 查看跑批记录。"""
    with Session(get_engine()) as session:
        runs = service.list_runs(session, limit=limit)
        table = Table(
            "as of / 日期", "status / 状态", "accounts / 账户", "delinquent / 逾期", "seconds / 秒"
        )
        for r in runs:
            table.add_row(
                r.as_of.isoformat(),
                bilingual("run_status", r.status),
                str(r.counts.get("accounts", "")),
                str(r.counts.get("delinquent", "")),
                f"{r.duration_seconds:.2f}",
            )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(cycle, name="cycle")
