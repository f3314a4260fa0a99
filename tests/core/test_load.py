"""Bulk loads (recoup.core.bulk.load_transaction): references checked once by the database, the
same rows written, keys and enforcement back afterwards, and on PostgreSQL a missing reference
undoing the whole transaction."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from recoup.core.bulk import load_transaction, write_frame
from recoup.core.db import utcnow
from recoup.core.settings import get_settings
from recoup.ledger import bulk
from tests.ledger.test_bulk import ACCOUNT_COLUMNS, write_csv
from tests.ledger.test_bulk import setup as setup  # the fixture

TABLES = ("account", "instalment", "ledger_entry")
# Rows are written on the driver's own cursor (SQLite executemany, PostgreSQL COPY).
REFUSED = (IntegrityError, sqlite3.IntegrityError, psycopg.errors.IntegrityError)


def _foreign_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return _foreign_keys_in(conn)


def _enforced(engine: Engine) -> bool:
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            return True
        return bool(conn.exec_driver_sql("PRAGMA foreign_keys").scalar())


def _entry(account_id: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": [account_id],
            "entry_date": [dt.date(2026, 1, 1)],
            "kind": ["disbursement"],
            "component": ["principal"],
            "amount": [100],
            "created_at": [utcnow()],
        }
    )


def test_a_bulk_import_writes_what_a_row_by_row_one_does(
    engine: Engine, setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _foreign_keys(engine)
    rows = [ACCOUNT_COLUMNS]
    rows += [[f"B{k}", "D1", "PF1", "CASH12", f"{1000 + k}.50", "2026-01-15"] for k in range(30)]
    rows += [[f"B{k}", "D2", "PF1", "CASH12", "900", "2026-02-01"] for k in range(30, 40)]
    monkeypatch.setenv("RECOUP_IMPORT_BULK_ROWS", "10")
    get_settings.cache_clear()
    report = bulk.import_file(engine, "accounts", write_csv(tmp_path / "a.csv", rows))
    assert report.committed and report.rejects.height == 0
    # Back as before: every key (PostgreSQL added them again, checked), enforcement on.
    assert _foreign_keys(engine) == keys and keys
    assert _enforced(engine)
    with engine.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT COUNT(*) FROM account a LEFT JOIN debtor d ON d.id = a.debtor_id "
                "WHERE d.id IS NULL"
            )
        ).scalar()
        assert orphans == 0
        assert conn.execute(text("SELECT COUNT(*) FROM ledger_entry")).scalar() == 40


def test_below_the_threshold_every_row_is_checked_as_usual(engine: Engine) -> None:
    with pytest.raises(REFUSED), load_transaction(engine, TABLES, 1, 10) as load:
        load.writing()
        write_frame(load.conn, "ledger_entry", _entry(999_999))
    assert _enforced(engine)


def test_postgresql_undoes_a_bulk_load_with_a_missing_reference(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite trusts the caller's checks for the transaction (see load_transaction)")
    keys = _foreign_keys(engine)
    with pytest.raises(REFUSED), load_transaction(engine, TABLES, 10, 10) as load:
        load.writing()
        assert _foreign_keys_in(load.conn) < keys  # dropped while the rows are written
        write_frame(load.conn, "ledger_entry", _entry(999_999))
    assert _foreign_keys(engine) == keys
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM ledger_entry")).scalar() == 0


def _foreign_keys_in(conn: Any) -> set[str]:
    if conn.dialect.name == "sqlite":
        return {
            f"{t}.{row[3]}"
            for t in TABLES
            for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({t})")
        }
    return set(
        conn.execute(
            text(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid::regclass::text = ANY(:t)"
            ),
            {"t": list(TABLES)},
        ).scalars()
    )
