"""Shared helpers of the benchmarks: a database of the kind asked, and the machine's identity."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
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
    database on `server_url()`. Empty, or, with `template` (a SQLite file, or a PostgreSQL
    database name, as saved by `save_copy`), a copy of that one; migrated to the newest schema
    either way."""
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
        upgrade(engine)  # a copy saved before the newest migrations is brought up to date
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


class StatementProfile:
    """Time every SQL statement an engine runs, summed by statement text (`--profile`).

    For finding where a run's time goes, not for the figures: the timing hooks cost a little.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.totals: dict[str, list[float]] = {}

    def __enter__(self) -> StatementProfile:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("bench_t0", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seconds = time.perf_counter() - conn.info["bench_t0"].pop()
        key = " ".join(statement.split())[:110]
        total = self.totals.setdefault(key, [0.0, 0.0])
        total[0] += seconds
        total[1] += 1

    def report(self, top: int = 25) -> str:
        rows = sorted(self.totals.items(), key=lambda kv: -kv[1][0])[:top]
        whole = sum(t for t, _ in self.totals.values())
        lines = [f"SQL statements: {whole:.2f}s in all; the {len(rows)} costliest:"]
        lines += [f"{t:8.3f}s {int(n):5d}x  {key}" for key, (t, n) in rows]
        return "\n".join(lines)
