"""`recoup assign run` (the workspace's Typer app, registered by recoup.cli as `assign`)."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from recoup.access.service import SYSTEM
from recoup.workspace import service
from recoup.workspace.cli import app
from recoup.workspace.models import Assignment
from tests.workspace.helpers import accounts, team, user


def test_assign_run_assigns_and_prints_bilingual_counts(cli_engine: Engine) -> None:
    t = team(cli_engine, "T")
    c = user(cli_engine, "c1", team_id=t).user_id
    (acc,) = accounts(cli_engine, {})
    with Session(cli_engine) as s, s.begin():
        service.create_rule(s, SYSTEM, name="all", team_id=t)
    result = CliRunner().invoke(app, ["run", "--as-of", "2026-11-24"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Assigned / 分配" in result.output
    with Session(cli_engine) as s:
        assert s.scalars(select(Assignment.user_id).where(Assignment.account_id == acc)).one() == c
    bad = CliRunner().invoke(app, ["run", "--as-of", "24/11/2026"])
    assert bad.exit_code != 0
