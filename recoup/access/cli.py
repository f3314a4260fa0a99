"""`recoup user …` and `recoup team …`: people who sign in, their teams and API tokens."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from recoup.access import rules, service
from recoup.core.db import get_engine
from recoup.core.errors import DomainError

users = typer.Typer(
    help="Users who sign in, and their API tokens. 用户与令牌。", no_args_is_help=True
)
teams = typer.Typer(help="Teams of collectors and agencies. 小组与委外机构。", no_args_is_help=True)
console = Console()


def _fail(exc: DomainError) -> typer.Exit:
    console.print(f"[red]{exc.title}[/red]: {exc.detail}")
    return typer.Exit(2)


@users.command("create")
def create_user(
    username: str,
    role: str = typer.Option(..., help=f"One of {', '.join(rules.ROLES)}."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, help="At least 10 characters."
    ),
    name: str = typer.Option(None, "--name", help="Display name."),
    team: str = typer.Option(None, help="Team code."),
    skills: str = typer.Option("", help="Comma-separated skills, e.g. b2b,field."),
    languages: str = typer.Option("", help="Comma-separated languages, e.g. zh-CN,en."),
    regions: str = typer.Option("", help="Comma-separated regions."),
    max_load: int = typer.Option(None, help="Most open accounts assignment gives this user."),
) -> None:
    """Create a user. 新建用户。"""
    split = lambda v: [x.strip() for x in v.split(",") if x.strip()]  # noqa: E731
    try:
        with Session(get_engine()) as session, session.begin():
            team_id = None
            if team:
                found = [t for t in service.list_teams(session) if t.code == team]
                if not found:
                    raise typer.BadParameter(f"no team {team!r}", param_hint="--team")
                team_id = found[0].id
            user = service.create_user(
                session,
                username,
                password,
                role,
                display_name=name,
                team_id=team_id,
                skills=split(skills),
                languages=split(languages),
                regions=split(regions),
                max_load=max_load,
            )
            service.audit(session, service.SYSTEM, "create", "app_user", user.id)
            console.print(f"user {user.username} ({user.role}) created / 已创建，id {user.id}")
    except DomainError as exc:
        raise _fail(exc) from exc


@users.command("token")
def issue_token(
    username: str,
    name: str = typer.Option("cli", help="What the token is for."),
    days: int = typer.Option(None, help="Days until it expires (default: never)."),
) -> None:
    """Issue an API token for a user; it is shown once. 签发API令牌（仅显示一次）。"""
    try:
        with Session(get_engine()) as session, session.begin():
            user = service.user_by_name(session, username)
            token, row = service.issue_token(session, user, name, days)
            service.audit(session, service.SYSTEM, "create", "api_token", row.id)
    except DomainError as exc:
        raise _fail(exc) from exc
    typer.echo(token)


@users.command("password")
def set_password(
    username: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Set a user's password and lift a lock-out. 重置密码并解锁。"""
    try:
        with Session(get_engine()) as session, session.begin():
            user = service.user_by_name(session, username)
            service.update_user(session, user, service.SYSTEM, password=password)
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"password of {username} changed / 密码已更新")


@users.command("list")
def list_users() -> None:
    """List users. 用户列表。"""
    with Session(get_engine()) as session:
        table = Table(title="Users / 用户")
        for col in ("id", "username", "name", "role", "team", "active", "locked until"):
            table.add_column(col)
        for u in service.list_users(session):
            table.add_row(
                str(u.id),
                u.username,
                u.display_name,
                u.role,
                str(u.team_id or ""),
                "yes" if u.is_active else "no",
                u.locked_until.isoformat() if u.locked_until else "",
            )
    console.print(table)


@teams.command("create")
def create_team(
    code: str,
    name: str,
    agency: bool = typer.Option(False, help="An outside agency (委外机构)."),
) -> None:
    """Create a team. 新建小组。"""
    try:
        with Session(get_engine()) as session, session.begin():
            team = service.create_team(session, code, name, "agency" if agency else "internal")
            service.audit(session, service.SYSTEM, "create", "team", team.id)
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(f"team {code} created / 已创建")


def register(app: typer.Typer) -> None:
    app.add_typer(users, name="user")
    app.add_typer(teams, name="team")
