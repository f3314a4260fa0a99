"""`recoup strategy …`: load, list, show, activate, check (lint), simulate (dry run), actions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from recoup.core.console import print_error
from recoup.core.db import get_engine
from recoup.core.errors import DomainError

strategy = typer.Typer(help="Collection strategies (催收策略).", no_args_is_help=True)
console = Console()


def _fail(exc: DomainError) -> None:
    print_error(console, exc)
    raise typer.Exit(1)


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]cannot read {path}: {exc}[/red]")
        raise typer.Exit(1) from exc


@strategy.command("load")
def load(
    file: Path = typer.Argument(..., help="Strategy YAML file."),
    by: str = typer.Option("cli", help="Who loads it (kept with the version)."),
    activate: list[str] = typer.Option(
        None, "--activate", help="Also put it in force for this portfolio (repeatable)."
    ),
) -> None:
    """Validate a strategy file and store it as a new version. 载入策略。"""
    from recoup.strategy import service

    source = _read(file)
    try:
        with Session(get_engine()) as session, session.begin():
            version, new = service.load(session, source, by)
            code = service.document(version).strategy
            for portfolio in activate or []:
                service.activate(
                    session, portfolio, [service.ArmSpec(code, version.version, 1, "champion")], by
                )
    except DomainError as exc:
        _fail(exc)
    state = "stored / 已保存" if new else "unchanged, already stored / 未变化，已保存过"
    console.print(f"[green]{code} v{version.version}[/green] {state}")
    for portfolio in activate or []:
        console.print(f"in force for {portfolio} / 已生效")


@strategy.command("list")
def list_() -> None:
    """Strategy versions and what is in force per portfolio. 策略版本与生效情况。"""
    from recoup.strategy import service

    with Session(get_engine()) as session:
        versions = service.list_versions(session)
        assignments = service.assignments(session)
    table = Table("strategy / 策略", "version / 版本", "loaded by / 载入人", "at / 时间")
    for code, v in versions:
        table.add_row(code, str(v.version), v.created_by, f"{v.created_at:%Y-%m-%d %H:%M}")
    console.print(table)
    table = Table("portfolio / 资产包", "arms / 分组", "experiment / 实验")
    for code, a in assignments:
        arms = ", ".join(
            f"{x['arm']}: {x['strategy']} v{x['version']} ({x['weight']})" for x in a.arms
        )
        table.add_row(code, arms, a.experiment)
    console.print(table)


@strategy.command("show")
def show(spec: str = typer.Argument(..., help="code or code@version")) -> None:
    """Print a stored version's file. 显示策略文件。"""
    from recoup.strategy import service

    code, _, version = spec.partition("@")
    try:
        with Session(get_engine()) as session:
            found = service.find_version(session, code, int(version) if version else None)
            source = found.source
    except (DomainError, ValueError) as exc:
        if isinstance(exc, DomainError):
            _fail(exc)
        raise typer.BadParameter(f"{spec!r}: write code or code@version") from exc
    console.print(source, markup=False, highlight=False)


@strategy.command("activate")
def activate(
    portfolio: str = typer.Argument(..., help="Portfolio code."),
    arms: list[str] = typer.Argument(
        ..., help="Arms: strategy[@version][:weight]; the first is the champion."
    ),
    experiment: str = typer.Option(None, help="Experiment name (a new split when it changes)."),
    by: str = typer.Option("cli", help="Who activates it."),
) -> None:
    """Put strategy versions in force for a portfolio (champion/challenger). 策略生效。"""
    from recoup.strategy import service

    try:
        with Session(get_engine()) as session, session.begin():
            specs = [service.ArmSpec.parse(a, i) for i, a in enumerate(arms)]
            row = service.activate(session, portfolio, specs, by, experiment)
            summary = ", ".join(
                f"{x['arm']}: {x['strategy']} v{x['version']} ({x['weight']})" for x in row.arms
            )
    except DomainError as exc:
        _fail(exc)
    console.print(f"[green]{portfolio}[/green]: {summary}")


@strategy.command("check")
def check(
    file: Path = typer.Argument(..., help="Strategy YAML file."),
    portfolio: list[str] = typer.Option(
        None, "--portfolio", help="Check coverage on these portfolios (default: all)."
    ),
) -> None:
    """Lint a strategy: errors, overlaps, gaps on the live portfolio, de-escalation. 策略检查。"""
    from recoup.strategy import lint

    source = _read(file)
    with Session(get_engine()) as session:
        findings = lint.check_strategy(session, source, portfolio or None)
    if not findings:
        console.print("[green]no findings / 未发现问题[/green]")
        return
    table = Table("severity / 级别", "code / 代码", "where / 位置", "finding / 说明")
    for f in findings:
        colour = "red" if f.severity == "error" else "yellow"
        table.add_row(
            f"[{colour}]{f.severity}[/{colour}]", f.code, f.path, f"{f.message_en}\n{f.message_zh}"
        )
    console.print(table)
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(1)


@strategy.command("simulate")
def simulate(
    file: Path = typer.Argument(..., help="Strategy YAML file."),
    from_: str = typer.Option(..., "--from", help="First date, e.g. 2026-11-24."),
    days: int = typer.Option(7, help="Number of days."),
    portfolio: list[str] = typer.Option(None, "--portfolio", help="Portfolios (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Dry run: actions by type and stage, cost and blocks per day; nothing written. 策略模拟。"""
    from recoup.strategy import simulate as sim

    try:
        start = dt.date.fromisoformat(from_)
    except ValueError as exc:
        raise typer.BadParameter(f"{from_!r} is not a date like 2026-11-24") from exc
    source = _read(file)
    try:
        result = sim.simulate(get_engine(), source, start, days, portfolio or None)
    except DomainError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(sim.to_json(result), ensure_ascii=False, indent=2))
        return
    table = Table(
        "date / 日期", "action / 动作", "stage / 阶段", "planned / 计划", title="actions / 动作"
    )
    for day in result.days:
        for (action, stage), n in sorted(day.actions.items()):
            table.add_row(day.date.isoformat(), action, stage, str(n))
    console.print(table)
    table = Table("date / 日期", "cost / 成本", "blocks / 拦截", "cancelled / 取消")
    for day in result.days:
        cost = ", ".join(f"{v} {c}" for c, v in sorted(day.cost.items())) or "0"
        blocks = ", ".join(f"{r}: {n}" for r, n in sorted(day.blocks.items())) or "-"
        table.add_row(day.date.isoformat(), cost, blocks, str(day.cancelled))
    console.print(table)


@strategy.command("actions")
def actions(
    date: str = typer.Option(None, help="Cycle date the actions were planned on."),
    status: str = typer.Option(None, help="planned | blocked | cancelled | done"),
    account: int = typer.Option(None, help="Account id."),
    limit: int = typer.Option(50, min=1, max=10_000),
) -> None:
    """Planned actions (催收动作). 计划动作列表。"""
    from recoup.strategy import service

    day = None
    if date:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError as exc:
            raise typer.BadParameter(f"{date!r} is not a date like 2026-11-23") from exc
    with Session(get_engine()) as session:
        rows, total = service.list_actions(
            session, account_id=account, status=status, cycle_date=day, limit=limit
        )
    table = Table(
        "account / 账户",
        "date / 日期",
        "step / 步骤",
        "action / 动作",
        "scheduled (UTC) / 计划时间",
        "status / 状态",
        "rule / 规则",
        title=f"{len(rows)} of {total} / 共{total}条，显示{len(rows)}条",
    )
    for r in rows:
        table.add_row(
            str(r.account_id),
            r.planned_date.isoformat(),
            r.step,
            r.action_type,
            f"{r.scheduled_at:%Y-%m-%d %H:%M}",
            r.status,
            r.rule_id or "",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(strategy, name="strategy")
