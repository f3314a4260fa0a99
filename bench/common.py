"""Shared helpers of the benchmarks: a database of the kind asked, and the machine's identity."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from recoup.core.db import make_engine
from recoup.core.schema import upgrade

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The PostgreSQL server of the benchmarks: RECOUP_DATABASE_URL, or the local one."""
    server = os.environ.get("RECOUP_DATABASE_URL", DEFAULT_PG)
    return server if server.startswith("postgresql") else DEFAULT_PG


@contextmanager
def fresh_database(kind: str, workdir: Path, template: str | None = None) -> Iterator[Engine]:
    """A new database, dropped afterwards: a SQLite file in `workdir`, or a new PostgreSQL
    database on `server_url()`. Empty and migrated, or, with `template` (a SQLite file, or a
    PostgreSQL database name, as saved by `save_copy`), a copy of that one."""
    if kind not in ("sqlite", "postgresql"):
        raise SystemExit(f"--db must be sqlite or postgresql, not {kind!r}")
    name = f"recoup_bench_{uuid.uuid4().hex[:8]}"
    admin: Engine | None = None
    if kind == "sqlite":
        path = workdir / f"{name}.db"
        if template:
            shutil.copyfile(template, path)
            os.sync()  # let the copy reach the disk before anything is timed
        url = f"sqlite:///{path}"
    else:
        admin = make_engine(server_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        url = make_url(server_url()).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        if not template:
            upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        if admin is None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{workdir / name}.db{suffix}").unlink(missing_ok=True)
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def save_copy(engine: Engine, target: str) -> None:
    """Save the database of `engine` as `target` (SQLite: a file; PostgreSQL: a database name)
    for `fresh_database(..., template=target)`. The engine is disposed."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        shutil.copyfile(str(engine.url.database), target)
        return
    engine.dispose()
    admin = make_engine(server_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target}"'))
        conn.execute(text(f'CREATE DATABASE "{target}" TEMPLATE "{engine.url.database}"'))
    admin.dispose()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
