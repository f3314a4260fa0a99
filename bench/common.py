"""Shared helpers of the benchmarks: a database of the kind asked, and the machine's identity."""

from __future__ import annotations

import os
import platform
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


@contextmanager
def fresh_database(kind: str, workdir: Path, keep: bool = False) -> Iterator[Engine]:
    """A new, migrated, empty database: a SQLite file in `workdir`, or a new PostgreSQL database
    on the server of RECOUP_DATABASE_URL (default the local one), dropped afterwards."""
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()
            if not keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    if kind != "postgresql":
        raise SystemExit(f"--db must be sqlite or postgresql, not {kind!r}")
    server = os.environ.get("RECOUP_DATABASE_URL", DEFAULT_PG)
    if not server.startswith("postgresql"):
        server = DEFAULT_PG
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    name = f"recoup_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
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
