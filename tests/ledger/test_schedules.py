"""Generated schedules stored when needed (recoup.ledger.schedules): an imported book whose
instalment rows are written by the daily cycle, payments and readers ends exactly as the same
book with every row written at import, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text

from recoup.core.db import transaction
from recoup.core.schema import alembic_config, upgrade
from recoup.cycle.service import run_cycle
from recoup.ledger import bulk, service
from recoup.ledger.models import Account, Instalment, LedgerEntry
from recoup.strategy import service as strategies
from recoup.strategy.simulate import simulate
from tests import factories
from tests.ledger.test_bulk import ACCOUNT_COLUMNS, account_dict, schedule, write_csv
from tests.ledger.test_bulk import setup as setup  # the fixture

METHODS = ["annuity", "equal_principal", "interest_only", "bullet"]
DATES = [dt.date(2026, 6, 10), dt.date(2026, 6, 25), dt.date(2026, 8, 31), dt.date(2026, 12, 1)]


def _book(tmp_path: Path) -> Path:
    """24 loans, each twice: L<k> left to be stored when needed, E<k> stored at once."""
    rng = random.Random(5)
    rows = [[*ACCOUNT_COLUMNS, "term", "method", "interest_rate"]]
    for k in range(24):
        start = dt.date(2025, 9, 1) + dt.timedelta(days=rng.randrange(0, 300))
        principal = f"{rng.randrange(1_000, 50_000)}.{k:02d}"
        term = str(rng.choice([3, 6, 12, 24]))
        for copy in ("L", "E"):
            terms = [principal, start.isoformat(), term, METHODS[k % 4], "12"]
            rows.append([f"{copy}{k}", "D1", "PF1", "CASH12", *terms])
    return write_csv(tmp_path / "accounts.csv", rows)


def _stored(s: Any, account_id: int) -> list[tuple[Any, ...]]:
    rows = s.scalars(
        select(Instalment).where(Instalment.account_id == account_id).order_by(Instalment.seq)
    )
    return [(i.seq, i.due_date, i.principal_due, i.interest_due) for i in rows]


def _entries(s: Any, account_id: int) -> list[tuple[Any, ...]]:
    rows = s.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.entry_date, LedgerEntry.kind, LedgerEntry.component, LedgerEntry.id)
    )
    return [(e.instalment_seq, e.entry_date, e.kind, e.component, e.amount) for e in rows]


@pytest.mark.usefixtures("setup")
def test_a_book_stored_when_needed_ends_as_one_stored_at_import(
    engine: Engine, tmp_path: Path
) -> None:
    report = bulk.import_file(engine, "accounts", _book(tmp_path))
    assert report.rejects.height == 0, report.rejects
    assert report.counts["instalment"] == 6 * 2  # the bullet loans' one instalment each
    with transaction(engine) as s:
        accounts = {a.external_ref: a for a in s.scalars(select(Account))}
        lazy = [a for ref, a in accounts.items() if ref[0] == "L" and a.method != "bullet"]
        assert lazy and all(a.scheduled_through == a.start_date for a in lazy)
        ids = [a.id for a in lazy]
        assert not s.scalar(
            select(func.count()).select_from(Instalment).where(Instalment.account_id.in_(ids))
        )
        service.store_schedules(s, [a.id for ref, a in accounts.items() if ref[0] == "E"])
        pairs = [(accounts[f"L{k}"].id, accounts[f"E{k}"].id) for k in range(24)]
    # The export gives the schedules not stored yet as the stored ones, and the maturity too.
    kinds: tuple[bulk.Kind, ...] = ("instalments", "accounts")
    for kind in kinds:
        out = tmp_path / f"{kind}.csv"
        bulk.export_table(engine, kind, out)
        frame = pl.read_csv(out, infer_schema=False)
        first = frame.columns[0]
        lazy_rows = frame.filter(pl.col(first).str.starts_with("L"))
        eager_rows = frame.filter(pl.col(first).str.starts_with("E"))
        key = [c for c in frame.columns if c != first]
        assert lazy_rows.height == eager_rows.height > 0
        assert lazy_rows.drop(first).sort(key).equals(eager_rows.drop(first).sort(key))
    rng = random.Random(11)
    for n, day in enumerate(DATES):
        payments = [["external_ref", "account_ref", "amount", "value_date"]]
        for k in rng.sample(range(24), 8):
            amount = f"{rng.randrange(100, 9_000)}.{rng.randrange(100):02d}"
            for copy in ("L", "E"):
                payments.append([f"P{n}-{copy}{k}", f"{copy}{k}", amount, day.isoformat()])
        paid = bulk.import_file(engine, "payments", write_csv(tmp_path / f"p{n}.csv", payments))
        assert paid.rejects.height == 0, paid.rejects
        run_cycle(engine, day)
        with transaction(engine) as s:
            for lazy_id, eager_id in pairs:
                acc = s.get_one(Account, lazy_id)
                stored, whole = _stored(s, lazy_id), _stored(s, eager_id)
                # What is stored is the start of the whole schedule: every instalment due by
                # the run date, and nothing after the account's mark.
                assert stored == whole[: len(stored)]
                assert [r for r in stored if r[1] <= day] == [r for r in whole if r[1] <= day]
                if acc.scheduled_through is not None:
                    assert all(row[1] <= acc.scheduled_through for row in stored)
                    assert acc.scheduled_through >= day
    with transaction(engine) as s:
        for lazy_id, eager_id in pairs:
            a = account_dict(s.get_one(Account, lazy_id))
            b = account_dict(s.get_one(Account, eager_id))
            for column in ("external_ref", "scheduled_through"):
                a.pop(column), b.pop(column)
            assert a == b
            assert _entries(s, lazy_id) == _entries(s, eager_id)
            assert schedule(s, lazy_id) == schedule(s, eager_id)  # stored whole when read
            assert service.derive_balances(s, lazy_id) == service.cached_balances(
                s.get_one(Account, lazy_id)
            )


def test_reminders_before_a_due_date_not_stored_yet(engine: Engine, tmp_path: Path) -> None:
    """The cycle stores the instalments coming due within the strategy's longest reminder lead,
    so that the reminders before the first due date of an imported loan are planned."""
    due = dt.date(2026, 7, 1)
    with transaction(engine) as s:
        factories.portfolio(s, code="CN")
        d = factories.debtor(s, external_ref="D-LAZY")
        service.add_contact_point(s, d.id, "phone", "+86 138 0013 8000")
    rows = [
        ["external_ref", "debtor_ref", "portfolio", "kind", "principal", "start_date", "term"],
        ["LAZY-1", "D-LAZY", "CN", "loan", "6000", "2026-06-01", "6"],
    ]
    path = write_csv(
        tmp_path / "a.csv", [[*r, "annuity" if k else "method"] for k, r in enumerate(rows)]
    )
    report = bulk.import_file(engine, "accounts", path)
    assert report.rejects.height == 0 and report.counts["instalment"] == 0
    sim = simulate(engine, strategies.default_source(), due - dt.timedelta(days=8), 8, ["CN"])
    reminders = {day.date for day in sim.days if day.actions}
    assert reminders == {due - dt.timedelta(days=7), due - dt.timedelta(days=1)}


def test_going_back_before_migration_0011_stores_every_schedule(
    engine: Engine, tmp_path: Path
) -> None:
    with transaction(engine) as s:
        factories.portfolio(s, code="CN")
        factories.debtor(s, external_ref="D-BACK")
    rows = [
        ["external_ref", "debtor_ref", "portfolio", "principal", "start_date", "term", "method"]
    ]
    rows += [[f"BACK-{k}", "D-BACK", "CN", "1200", "2026-01-31", "12", "annuity"] for k in (1, 2)]
    assert bulk.import_file(engine, "accounts", write_csv(tmp_path / "a.csv", rows)).committed
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM instalment")).scalar() == 24
        assert "scheduled_through" not in {c["name"] for c in inspect(conn).get_columns("account")}
    upgrade(engine)
    with transaction(engine) as s:
        assert all(a.scheduled_through is None for a in s.scalars(select(Account)))
