"""`recoup outbox …` on the test database: list, counts, a message sent by hand, a retry, and
the day's letters printed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from recoup.channels.models import OutboxMessage
from recoup.cli import app
from recoup.core.settings import get_settings
from recoup.cycle.service import run_cycle
from recoup.ledger.models import Account
from tests.channels.test_webhooks import book


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["outbox", *args], env={"COLUMNS": "250"})


def _ref(engine: Engine, account_id: int) -> str:
    with Session(engine) as s:
        return s.get_one(Account, account_id).external_ref


def test_list_send_stats_and_retry(cli_engine: Engine) -> None:
    first, _ = book(cli_engine), book(cli_engine)
    run_cycle(cli_engine, dt.date(2026, 6, 24), partitions=1)
    result = run("list")
    assert result.exit_code == 0, result.output
    assert result.output.count("reminder_before_due") == 2 and "2 of 2" in result.output

    result = run(
        "send", "--account", _ref(cli_engine, first), "--channel", "email",
        "--template", "formal_notice", "--at", "2026-07-11T10:00+08:00",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "pending" in result.output and "email formal_notice" in result.output
    assert "2026-07-11 10:00" in result.output  # shown in the business time zone

    result = run("list", "--account", _ref(cli_engine, first), "--status", "pending")
    assert result.exit_code == 0, result.output
    assert "formal_notice" in result.output and "2 of 2" in result.output
    assert result.output.count("reminder_before_due") == 1  # not the other account's

    result = run("stats")
    assert result.exit_code == 0, result.output
    [pending] = [line for line in result.output.splitlines() if "pending" in line]
    assert pending.split("│")[2].strip() == "3"

    with Session(cli_engine) as s, s.begin():
        m = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).first()
        assert m is not None
        m.status, m.last_error = "failed", "gateway answered 400"
        failed_id = m.id
    result = run("retry", str(failed_id))
    assert result.exit_code == 0, result.output
    assert f"message {failed_id}: pending" in result.output
    result = run("retry", str(failed_id))
    assert result.exit_code == 1 and "only a failed or bounced message" in result.output


def test_refusals_name_the_problem(cli_engine: Engine) -> None:
    account = _ref(cli_engine, book(cli_engine))
    result = run("send", "--account", account, "--channel", "sms", "--template", "formal_notice")
    assert result.exit_code == 1 and "template = 'formal_notice'" in result.output
    result = run("send", "--account", "NO-SUCH", "--channel", "sms", "--template", "offer_plan")
    assert result.exit_code == 1 and "NO-SUCH" in result.output
    result = run(
        "send", "--account", account, "--channel", "sms", "--template", "reminder_overdue",
        "--at", "2026-07-11T10:00",
    )  # fmt: skip
    assert result.exit_code == 2 and "zone" in result.output
    result = run("list", "--status", "lost")
    assert result.exit_code == 2 and "pending" in result.output
    assert run("retry", "424242").exit_code == 1


def test_print_the_days_letters(
    cli_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_LETTERS_DIR", str(tmp_path))
    get_settings.cache_clear()
    book(cli_engine)
    run_cycle(cli_engine, dt.date(2026, 7, 11), partitions=1)
    result = run("print", "--day", "2026-07-11")
    assert result.exit_code == 0, result.output
    assert "letters-2026-07-11.pdf" in result.output and "1 letters" in result.output
    assert (tmp_path / "letters-2026-07-11.pdf").exists()
    result = run("print", "--day", "2026-07-11")
    assert result.exit_code == 0 and "already printed" in result.output
    result = run("list", "--status", "sent")
    assert "formal_notice" in result.output and "上海市浦东新区1号" in result.output
