"""Test fixtures. Every database test runs on SQLite and on PostgreSQL.

`RECOUP_TEST_DATABASES` (default "sqlite,postgresql") chooses which; `RECOUP_TEST_PG_URL`
(default postgresql+psycopg://postgres@127.0.0.1:5432/postgres) is the server used to create a
throw-away database for the session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from recoup.core.db import get_engine, make_engine
from recoup.core.schema import metadata, upgrade

DATABASES = [
    d.strip()
    for d in os.environ.get("RECOUP_TEST_DATABASES", "sqlite,postgresql").split(",")
    if d.strip()
]
PG_URL = os.environ.get(
    "RECOUP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"recoup_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_pg(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "recoup.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_database")
        yield url
        engine = make_engine(url)
        _truncate_pg(engine)
        engine.dispose()
    else:  # pragma: no cover
        raise ValueError(request.param)


@pytest.fixture
def engine(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("RECOUP_DATABASE_URL", db_url)
    from recoup.core.settings import get_settings

    get_settings.cache_clear()
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
    get_settings.cache_clear()


@pytest.fixture
def cli_engine(engine: Engine) -> Iterator[Engine]:
    """The command line's own engine (get_engine is cached) on the test database."""
    get_engine.cache_clear()
    yield engine
    get_engine().dispose()
    get_engine.cache_clear()
