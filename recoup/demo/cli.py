"""`recoup demo` — a realistic synthetic portfolio. 演示数据。"""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from recoup.core.db import get_engine
from recoup.core.errors import DomainError
from recoup.demo import service

console = Console()
_STEPS = {"build": "building the portfolio / 生成资产包", "cycle": "daily cycle / 日终跑批"}


def demo(
    accounts: int = typer.Option(
        service.DEFAULT_ACCOUNTS, "--accounts", "-n", help="How many accounts to generate."
    ),
    as_of: str = typer.Option(
        None, "--as-of", help="Business date of the portfolio (default: today)."
    ),
    seed: int = typer.Option(service.DEFAULT_SEED, help="Random seed: same seed, same book."),
    status: bool = typer.Option(
        False, "--status", help="Only print 'empty' or 'loaded <n> accounts'."
    ),
    no_cycle: bool = typer.Option(False, "--no-cycle", help="Do not run the daily cycle."),
    no_strategy: bool = typer.Option(
        False, "--no-strategy", help="Do not put the default strategy in force."
    ),
    no_staff: bool = typer.Option(
        False, "--no-staff", help="Do not create the demo's teams, users and assignment rules."
    ),
) -> None:
    """Load a synthetic portfolio into an empty database. 生成演示资产包（仅限空库）。"""
    engine = get_engine()
    if status:
        typer.echo(service.status_line(engine))
        return
    day: dt.date | None = None
    if as_of is not None:
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError as exc:
            raise typer.BadParameter(
                f"{as_of!r} is not a date like 2026-11-23 / 不是日期", param_hint="--as-of"
            ) from exc
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(_STEPS.get(step, step), total=total)
            progress.update(tasks[step], completed=done, total=total)

        try:
            result = service.load_demo(
                engine,
                accounts,
                as_of=day,
                seed=seed,
                run_cycle=not no_cycle,
                with_strategy=not no_strategy,
                with_staff=not no_staff,
                progress=report,
            )
        except DomainError as exc:
            progress.stop()
            console.print(f"[red]{exc.title}[/red]: {exc.detail}")
            raise typer.Exit(2) from exc
    table = Table(title=f"Demo portfolio as of {result.as_of} / 演示资产包")
    table.add_column("table / 表")
    table.add_column("rows / 行数", justify="right")
    for name, n in result.counts.items():
        table.add_row(name, f"{n:,}")
    console.print(table)
    buckets = Table(title="Accounts by bucket / 账龄分布")
    buckets.add_column("bucket / 账龄段")
    buckets.add_column("accounts / 账户数", justify="right")
    for name, n in result.buckets.items():
        buckets.add_row(name, f"{n:,}")
    console.print(buckets)
    if not no_staff:
        names = ", ".join(u[0] for u in service.DEMO_USERS)
        console.print(
            f"Sign in as one of {names} with the password [bold]{service.DEMO_PASSWORD}[/bold] "
            f"(demo only) / 演示账号：{names}，密码 {service.DEMO_PASSWORD}"
        )
    console.print(
        f"built in {result.build_seconds:.1f}s, cycle {result.cycle_seconds:.1f}s / "
        f"生成 {result.build_seconds:.1f} 秒，跑批 {result.cycle_seconds:.1f} 秒"
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
