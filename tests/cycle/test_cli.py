"""`recoup cycle run` and `recoup cycle list` on the test database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from typer.testing import CliRunner

from recoup.cli import app
from recoup.core.db import transaction
from tests import factories


def test_run_and_list_print_bilingual_labels_and_money(cli_engine: Engine) -> None:
    with transaction(cli_engine) as s:
        factories.loan(s)  # first instalment due 2026-02-15, nothing paid
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["cycle", *args], env={"COLUMNS": "200"})

    result = run("run", "--as-of", "2026-03-20")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Accounts aged / 本次处理账户" in out
    assert "Delinquent accounts / 逾期账户" in out
    # Amounts per currency, in major units, with their bilingual name.
    assert "Penalty interest accrued / 计提罚息 (CNY)" in out
    assert "Late fees charged / 计收滞纳金 (CNY)" in out
    assert "penalty_accrued" not in out  # no internal names

    result = run("list")
    assert result.exit_code == 0, result.output
    assert "2026-03-20" in result.output and "Completed / 已完成" in result.output

    result = run("run", "--as-of", "2026-03-01")  # earlier than a date already run
    assert result.exit_code == 2
    assert "2026-03-20" in result.output
