"""`recoup template …`: list, show, save (from a YAML file), preview for an account, a letter as
PDF, a day's print batch, sender details, and the variables templates can use.

`recoup outbox …`: the messages to send and sent (list, counts), a failed or bounced message
sent again, a message sent by hand, and the day's letters printed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from recoup.core.console import print_error
from recoup.core.db import get_engine
from recoup.core.errors import DomainError, FieldError, Invalid

template = typer.Typer(help="Message templates and letters (消息模板与信函).", no_args_is_help=True)
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


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        console.print(f"[red]{path} is not valid YAML / 不是有效的YAML[/red]\n{exc}")
        raise typer.Exit(1) from exc
    if not isinstance(data, dict):
        console.print(f"[red]{path}: expected a mapping / 应为映射[/red]")
        raise typer.Exit(1)
    return data


class _Dumper(yaml.SafeDumper):
    """Multi-line texts as YAML block scalars (|), as in the catalogue."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a date like 2026-11-23") from exc


@template.command("list")
def list_() -> None:
    """Templates and their active versions (0: shipped default). 模板列表。"""
    from recoup.channels import service

    with Session(get_engine()) as session:
        rows = service.list_templates(session)
    table = Table(
        "template / 模板", "lang / 语言", "version / 版本", "channels / 渠道", "subject / 标题"
    )
    table.columns[0].no_wrap = True
    for t in rows:
        version = f"v{t.version} {t.created_by}" if t.version else "default / 默认"
        table.add_row(t.name, t.language, version, ", ".join(t.channels), t.subject)
    console.print(table)


@template.command("show")
def show(
    name: str = typer.Argument(..., help="Template name."),
    language: str = typer.Option(None, "--language", "-l", help="zh or en (default: both)."),
    history: bool = typer.Option(False, "--history", help="Every version, newest first."),
) -> None:
    """Print a template's active version (or its history) as YAML. 显示模板。"""
    from recoup.channels import rules, service

    try:
        with Session(get_engine()) as session:
            if history:
                rows = service.template_history(session, name, language)
            else:
                langs = [language] if language else list(rules.LANGUAGES)
                rows = [
                    t
                    for t in service.list_templates(session)
                    if t.name == name and t.language in langs
                ]
                if not rows:
                    service.get_template(session, name, langs[0])  # names what is missing
    except DomainError as exc:
        _fail(exc)
    for t in rows:
        state = "active / 当前" if t.is_active else "inactive / 历史"
        by = f", {t.created_by} {t.created_at:%Y-%m-%d %H:%M}" if t.created_at else ""
        console.print(f"[bold]{t.name} {t.language} v{t.version}[/bold] ({state}{by})")
        doc: dict[str, Any] = {
            t.name: {
                "kind": t.kind,
                "channels": list(t.channels),
                "requires": list(t.requires),
                t.language: {"subject": t.subject, "body": t.body},
            }
        }
        console.print(_dump(doc), markup=False, highlight=False, soft_wrap=True)


@template.command("save")
def save(
    file: Path = typer.Argument(
        ..., help="YAML in the catalogue's form: name -> channels, …, zh, en."
    ),
    by: str = typer.Option("cli", help="Who saves it (kept with the version)."),
    note: str = typer.Option(None, help="Why it changed (kept with the version)."),
) -> None:
    """Check templates and save each language given as a new version. All or nothing. 保存模板。"""
    from recoup.channels import rules, service

    data = _yaml(file)
    saved: list[tuple[str, str, int, bool]] = []
    try:
        with Session(get_engine()) as session, session.begin():
            errors: list[FieldError] = []
            for name, entry in data.items():
                if not isinstance(entry, dict):
                    errors.append(FieldError(str(name), entry, "expected a mapping / 应为映射"))
                    continue
                langs = [lang for lang in rules.LANGUAGES if lang in entry]
                if not langs:
                    errors.append(FieldError(str(name), None, "give zh and/or en / 请提供zh或en"))
                for lang in langs:
                    text = entry[lang] or {}
                    try:
                        before = service.get_template(session, str(name), lang).version
                    except DomainError:
                        before = None
                    try:
                        t = service.save_template(
                            session,
                            str(name),
                            lang,
                            str(text.get("subject") or ""),
                            str(text.get("body") or ""),
                            list(entry.get("channels") or []),
                            list(entry.get("requires") or []),
                            by,
                            note,
                            entry.get("kind"),
                        )
                    except Invalid as exc:
                        errors += [
                            FieldError(f"{name}.{lang}.{e.field}", e.value, e.why)
                            for e in exc.errors
                        ]
                        continue
                    saved.append((str(name), lang, t.version, t.version != before))
            if errors:
                raise Invalid(errors=errors)
    except DomainError as exc:
        _fail(exc)
    for name, lang, version, new in saved:
        state = "saved / 已保存" if new else "unchanged / 未变化"
        console.print(f"[green]{name} {lang} v{version}[/green] {state}")


@template.command("preview")
def preview(
    name: str = typer.Argument(..., help="Template name."),
    account: str = typer.Option(..., help="Account external reference (or id)."),
    as_of: str = typer.Option(..., "--as-of", help="Date of the message, e.g. 2026-11-23."),
    channel: str = typer.Option(None, help="sms, email, letter … (default: the first)."),
    language: str = typer.Option(None, "--language", "-l", help="zh or en (default: debtor's)."),
    deadline_days: int = typer.Option(7, "--deadline-days", min=0, max=365),
) -> None:
    """Render a template for an account, without sending or saving anything. 模板预览。"""
    from recoup.channels import service

    day = _date(as_of)
    try:
        with Session(get_engine()) as session:
            account_id = service.find_account(session, account)
            r = service.preview(
                session, name, account_id, day, channel, language, deadline_days=deadline_days
            )
    except DomainError as exc:
        _fail(exc)
    console.print(
        f"[bold]{r.name} {r.language} v{r.template_version} · {r.channel}[/bold]", soft_wrap=True
    )
    if r.subject:
        console.print(r.subject, markup=False, highlight=False, style="bold", soft_wrap=True)
    console.print(r.body, markup=False, highlight=False, soft_wrap=True)
    console.print(f"sha256 {r.sha256}", highlight=False, soft_wrap=True)
    if r.placeholders:
        console.print(
            f"[yellow]placeholders / 占位内容: {', '.join(r.placeholders)}[/yellow]"
            " — set them with `recoup template sender`"
        )


@template.command("letter")
def letter(
    name: str = typer.Argument(..., help="Letter template, e.g. formal_notice, lawyer_letter."),
    account: str = typer.Option(..., help="Account external reference (or id)."),
    as_of: str = typer.Option(..., "--as-of", help="Date of the letter."),
    out: Path = typer.Option(..., help="PDF file to write."),
    language: str = typer.Option(None, "--language", "-l", help="zh or en (default: debtor's)."),
    draft: bool = typer.Option(False, help="Mark as a draft; placeholders allowed."),
    deadline_days: int = typer.Option(7, "--deadline-days", min=0, max=365),
) -> None:
    """Write one letter as PDF. 生成信函PDF。"""
    from recoup.channels import letters, service

    day = _date(as_of)
    try:
        with Session(get_engine()) as session:
            account_id = service.find_account(session, account)
            pdf = letters.render_letter_pdf(
                session,
                account_id,
                name,
                day,
                language,
                deadline_days=deadline_days,
                draft=draft,
            )
    except DomainError as exc:
        _fail(exc)
    try:
        out.write_bytes(pdf)
    except OSError as exc:
        console.print(f"[red]cannot write {out}: {exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"[green]{out}[/green] ({len(pdf):,} bytes)")


@template.command("print")
def print_batch(
    items: list[str] = typer.Argument(..., help="Letters as TEMPLATE:ACCOUNT_REF."),
    as_of: str = typer.Option(..., "--as-of", help="Date of the letters."),
    out_dir: Path = typer.Option(Path("."), "--out-dir", help="Folder of the print file."),
) -> None:
    """Write the day's letters into one print file, letters-<date>.pdf. 批量打印信函。"""
    from recoup.channels import letters, service

    day = _date(as_of)
    try:
        with Session(get_engine()) as session:
            requests = []
            for n, item in enumerate(items):
                name, sep, ref = item.partition(":")
                if not sep or not name or not ref:
                    raise Invalid(f"items[{n}]", item, "write TEMPLATE:ACCOUNT_REF")
                requests.append(letters.LetterRequest(service.find_account(session, ref), name))
            path = letters.print_batch(session, requests, day, out_dir)
    except DomainError as exc:
        _fail(exc)
    console.print(f"[green]{path}[/green] ({len(items)} letters / 封)")


@template.command("sender")
def sender(
    file: Path = typer.Argument(None, help="YAML of sender details; omit to show them."),
    creditor: str = typer.Option(None, help="Creditor code (or id)."),
    portfolio: str = typer.Option(None, help="Portfolio code (or id); wins over its creditor."),
    by: str = typer.Option("cli", help="Who sets them."),
) -> None:
    """Show or set the sender details messages and letters quote. 发件方资料。"""
    from recoup.channels import service

    try:
        with Session(get_engine()) as session, session.begin():
            if file is None:
                row = service.get_sender_profile(session, creditor=creditor, portfolio=portfolio)
                details = row.details if row is not None else {}
            else:
                details = service.set_sender_profile(
                    session, _yaml(file), by, creditor=creditor, portfolio=portfolio
                ).details
    except DomainError as exc:
        _fail(exc)
    if not details:
        console.print("nothing set; defaults are used / 未设置，使用默认值")
        return
    console.print(_dump(details), markup=False, highlight=False, soft_wrap=True)


@template.command("variables")
def variables() -> None:
    """The variables templates can use. 模板变量。"""
    from recoup.channels import rules

    table = Table("variable / 变量", "meaning", "含义", "example / 示例")
    for v in rules.VARIABLES.values():
        table.add_row(f"{{{{ {v.name} }}}}", v.en, v.zh, f"{v.example_zh}\n{v.example_en}")
    console.print(table)


# --------------------------------------------------------------------------- recoup outbox

outbox_app = typer.Typer(
    help="The outbox: messages to send and sent (发送队列).", no_args_is_help=True
)
STATUS_STYLE = {
    "pending": "yellow",
    "sending": "cyan",
    "sent": "green",
    "delivered": "green",
    "failed": "red",
    "bounced": "red",
    "blocked": "magenta",
    "cancelled": "dim",
}


def _when(value: dt.datetime | None) -> str:
    """A stored instant in the business time zone, to the minute."""
    from zoneinfo import ZoneInfo

    from recoup.core.settings import get_settings

    if value is None:
        return ""
    return value.astimezone(ZoneInfo(get_settings().business_timezone)).strftime("%Y-%m-%d %H:%M")


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a time like 2026-11-23T10:00+08:00") from exc
    if value.tzinfo is None:
        raise typer.BadParameter(f"{text!r}: give the zone too, e.g. 2026-11-23T10:00+08:00")
    return value


def _message_line(m: Any) -> str:
    style = STATUS_STYLE.get(m.status, "")
    return (
        f"message {m.id}: [{style}]{m.status}[/{style}] · {m.channel} {m.template} · "
        f"account {m.account_id} · due {_when(m.next_attempt_at)}"
    )


@outbox_app.command("list")
def outbox_list(
    status: str = typer.Option(None, help="pending, sending, sent, delivered, failed, …"),
    account: str = typer.Option(None, help="Account external reference (or id)."),
    limit: int = typer.Option(50, min=1, max=500, help="Rows, newest first."),
    offset: int = typer.Option(0, min=0, help="Rows to skip."),
) -> None:
    """Messages to send and sent, newest first. 发送队列。"""
    from recoup.channels import outbox, outbox_admin, service

    if status is not None and status not in outbox_admin.STATUSES:
        raise typer.BadParameter(
            f"{status!r}: one of {', '.join(outbox_admin.STATUSES)}", param_hint="--status"
        )
    try:
        with Session(get_engine()) as session:
            account_id = service.find_account(session, account) if account else None
            rows = outbox.list_messages(
                session, status=status, account_id=account_id, limit=limit, offset=offset
            )
            total = outbox_admin.count_messages(session, status=status, account_id=account_id)
    except DomainError as exc:
        _fail(exc)
    table = Table(
        "id",
        "account / 账户",
        "channel / 渠道",
        "template / 模板",
        "status / 状态",
        "tries / 次数",
        "due or sent / 时间",
        "to / 收件方",
        "why / 原因",
    )
    for m in rows:
        style = STATUS_STYLE.get(m.status, "")
        table.add_row(
            str(m.id),
            str(m.account_id),
            m.channel,
            m.template,
            f"[{style}]{m.status}[/{style}]",
            str(m.attempts),
            _when(m.sent_at or m.next_attempt_at),
            m.recipient or "",
            " ".join(filter(None, (m.rule_id, m.last_error))),
        )
    console.print(table)
    console.print(f"{len(rows)} of {total} / 共{total}条")


@outbox_app.command("stats")
def outbox_stats() -> None:
    """Messages by status. 按状态统计。"""
    from recoup.channels import outbox_admin

    with Session(get_engine()) as session:
        counts = outbox_admin.stats(session)
    table = Table("status / 状态", "messages / 条数")
    for name, n in counts.items():
        style = STATUS_STYLE.get(name, "")
        table.add_row(f"[{style}]{name}[/{style}]", f"{n:,}")
    table.add_row("total / 合计", f"{sum(counts.values()):,}", style="bold")
    console.print(table)


@outbox_app.command("retry")
def outbox_retry(
    message_id: int = typer.Argument(..., min=1, help="Outbox message id."),
) -> None:
    """Send a failed or bounced message again, now. 重发失败或被退回的消息。"""
    from recoup.channels import outbox_admin

    try:
        with Session(get_engine()) as session, session.begin():
            m = outbox_admin.retry(session, message_id)
            line = _message_line(m)
            again = m.id == message_id
    except DomainError as exc:
        _fail(exc)
    console.print(line)
    if not again:
        console.print(f"a new message for {message_id}, which the provider had accepted / 已新建")


@outbox_app.command("send")
def outbox_send(
    account: str = typer.Option(..., help="Account external reference (or id)."),
    channel: str = typer.Option(..., help="sms, email or letter."),
    template_name: str = typer.Option(..., "--template", help="Template name."),
    at: str = typer.Option(None, help="When, with its zone (default now)."),
    key: str = typer.Option(None, help="Idempotency key: the same key sends one message."),
) -> None:
    """Queue a message by hand; the compliance guard checks it when it is sent. 手动发送。"""
    from recoup.channels import outbox_admin, service

    when = _instant(at) if at else None
    try:
        with Session(get_engine()) as session, session.begin():
            account_id = service.find_account(session, account)
            m = outbox_admin.send(session, account_id, channel, template_name, at=when, key=key)
            line = _message_line(m)
    except DomainError as exc:
        _fail(exc)
    console.print(line)


@outbox_app.command("print")
def outbox_print(
    day: str = typer.Option(None, help="The day of the print file (default today)."),
) -> None:
    """Print the letters due into the day's file, letters-<date>.pdf. 打印当日信函。"""
    from zoneinfo import ZoneInfo

    from recoup.channels import printing
    from recoup.core.settings import get_settings

    settings = get_settings()
    when = _date(day) if day else dt.datetime.now(ZoneInfo(settings.business_timezone)).date()
    result = printing.print_due_letters(get_engine(), settings, when)
    if result.closed:
        console.print(f"{result.path}: already printed / 已打印")
        if result.held_over:
            console.print(
                f"{result.held_over} letters due later wait for the next day's file / "
                "封信函顺延至次日"
            )
        return
    if result.path is not None:
        console.print(f"[green]{result.path}[/green] ({result.printed} letters / 封)")
    else:
        console.print("no letters printed / 没有打印信函")
    for label, n in (
        ("failed / 失败", result.failed),
        ("blocked / 拦截", result.blocked),
        ("cancelled / 取消", result.cancelled),
    ):
        if n:
            console.print(f"{label}: {n}")
    for mid, why in result.errors.items():
        console.print(f"  message {mid}: {why}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(template, name="template")
    app.add_typer(outbox_app, name="outbox")
