"""The migrations build exactly the schema the models declare, on both databases; the
database library is one Recoup can use."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from recoup.core import db
from recoup.core.schema import metadata


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_an_old_sqlite_library_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db.sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(db.sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(RuntimeError, match=r"SQLite 3\.35 or newer.*has 3\.31\.1"):
        db.make_engine("sqlite://")
