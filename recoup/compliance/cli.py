"""`recoup compliance …`: blocked actions (listed and counted by rule), the rule sets, a
portfolio's overrides, and checking one proposed contact."""

from __future__ import annotations

import datetime as dt
import json

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from recoup.core.console import print_error
from recoup.core.db import get_engine
from recoup.core.errors import DomainError
from recoup.ledger.models import Portfolio

compliance = typer.Typer(help="The compliance guard (合规守卫).", no_args_is_help=True)
console = Console()


def _fail(exc: DomainError) -> None:
    print_error(console, exc)
    raise typer.Exit(1)


@compliance.command("blocks")
def blocks(
    rule: str = typer.Option(None, help="Only this rule id, e.g. stop.dispute."),
    account: int = typer.Option(None, help="Only this account id."),
    by_rule: bool = typer.Option(False, "--by-rule", help="Count by rule instead of listing."),
    limit: int = typer.Option(50, min=1, max=10_000),
) -> None:
    """Blocked actions and contacts, with rule and reason. 合规拦截记录。"""
    from recoup.compliance import service

    with Session(get_engine()) as session:
        if by_rule:
            counts = service.count_blocks_by_rule(session)
            table = Table("rule / 规则", "blocked / 拦截数")
            for rule_id, n in counts:
                table.add_row(rule_id, str(n))
            console.print(table)
            return
        rows, total = service.list_blocks(session, rule_id=rule, account_id=account, limit=limit)
    table = Table(
        "at (UTC) / 时间",
        "account / 账户",
        "channel / 渠道",
        "rule / 规则",
        "reason / 原因",
        title=f"{len(rows)} of {total} / 共{total}条，显示{len(rows)}条",
    )
    for r in rows:
        table.add_row(
            f"{r.checked_at:%Y-%m-%d %H:%M}",
            str(r.account_id or ""),
            r.channel,
            r.rule_id,
            f"{r.reason_en}\n{r.reason_zh}",
        )
    console.print(table)


@compliance.command("rules")
def rules_(
    jurisdiction: str = typer.Argument("CN", help="CN or US."),
    portfolio: str = typer.Option(None, help="Show a portfolio's rule set, with its overrides."),
) -> None:
    """The numbers of a rule set and the source of each rule. 合规规则。"""
    from recoup.compliance import rules, service

    try:
        with Session(get_engine()) as session:
            if portfolio:
                row = session.execute(
                    select(Portfolio.id, Portfolio.jurisdiction).where(Portfolio.code == portfolio)
                ).first()
                if row is None:
                    console.print(f"[red]no portfolio {portfolio!r}[/red]")
                    raise typer.Exit(1)
                ruleset = service.ruleset_for(session, row.id, row.jurisdiction)
            else:
                ruleset = rules.load_ruleset(jurisdiction)
    except DomainError as exc:
        _fail(exc)
    values = ruleset.model_dump(mode="json", exclude={"sources"})
    table = Table("setting / 设置", "value / 值", title=f"{ruleset.jurisdiction}")
    for key, value in values.items():
        table.add_row(key, json.dumps(value, ensure_ascii=False))
    console.print(table)
    table = Table("rule / 规则", "source / 依据")
    for rule_id, source in ruleset.sources.items():
        table.add_row(rule_id, source)
    console.print(table)


@compliance.command("set")
def set_(
    portfolio: str = typer.Argument(..., help="Portfolio code."),
    values: list[str] = typer.Argument(..., help="key=value, e.g. window_end=21:00 (JSON values)."),
    by: str = typer.Option("cli", help="Who changes it."),
    note: str = typer.Option(None, help="Why."),
) -> None:
    """Change numbers of a portfolio's rule set (compliance officer). 调整合规参数。"""
    from recoup.compliance import service

    overrides: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: write key=value")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    try:
        with Session(get_engine()) as session, session.begin():
            service.set_overrides(session, portfolio, overrides, by, note)
    except DomainError as exc:
        _fail(exc)
    console.print(f"[green]{portfolio}[/green]: {overrides}")


@compliance.command("check")
def check(
    account: int = typer.Option(..., help="Account id."),
    channel: str = typer.Option(..., help="sms | email | call | voice | letter | visit"),
    at: str = typer.Option(
        None, help="When, with zone (default: now), e.g. 2026-11-23T21:30+08:00"
    ),
    contact_point: int = typer.Option(None, help="Contact point id."),
    text: str = typer.Option(None, help="Message text to check for wording."),
) -> None:
    """Would this contact be allowed now? 检查一次联络是否合规。"""
    from recoup.compliance import service

    when = dt.datetime.now(dt.UTC)
    if at:
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError as exc:
            raise typer.BadParameter(f"{at!r} is not a time like 2026-11-23T21:30+08:00") from exc
    try:
        with Session(get_engine()) as session, session.begin():
            verdict = service.check_contact(
                session,
                service.ContactCheck(account, channel, when, contact_point, text=text),
            )
    except DomainError as exc:
        _fail(exc)
    if verdict.allowed:
        console.print("[green]allowed / 允许[/green]")
        return
    console.print(
        f"[red]blocked / 拦截[/red] {verdict.rule_id}: {verdict.reason_en} / {verdict.reason_zh}"
    )
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(compliance, name="compliance")
