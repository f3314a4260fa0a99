"""Bulk reads and writes of Polars frames, inside the caller's transaction.

Writes: PostgreSQL `COPY … FROM STDIN (FORMAT csv)` fed with Polars' CSV writer; SQLite one
`executemany` of the frame's rows on the same connection. Either way nothing is committed here,
so an all-or-nothing import stays all-or-nothing. Reads (`fetch`): PostgreSQL `COPY … TO
STDOUT`, SQLite the cursor's rows, typed by a schema.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine, ForeignKeyConstraint, func, select, text
from sqlalchemy.schema import AddConstraint, DropConstraint

from recoup.core.db import utcnow

_CHUNK = 200_000


def _for_sqlite(df: pl.DataFrame) -> pl.DataFrame:
    exprs: list[pl.Expr] = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            exprs.append(col.dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            # SQLAlchemy's SQLite DateTime format; values are UTC (see core.db.UtcDateTime).
            exprs.append(
                col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%6f")
                if dtype.time_zone
                else col.dt.strftime("%Y-%m-%d %H:%M:%S.%6f")
            )
        elif dtype == pl.Boolean:
            exprs.append(col.cast(pl.Int64))
        else:
            exprs.append(col)
    return df.select(exprs)


class Load:
    """The connection of a `load_transaction`; `writing()` before the rows are written."""

    def __init__(self, conn: Connection, tables: Sequence[str], rows: int, bulk: bool) -> None:
        self.conn, self.tables, self.rows, self.bulk = conn, tables, rows, bulk
        self.dropped: list[ForeignKeyConstraint] = []

    def writing(self) -> None:
        if self.bulk and self.conn.dialect.name == "postgresql" and not self.dropped:
            # The checks when the keys are added again hash the referenced tables in memory.
            self.conn.execute(text("SET LOCAL work_mem = '256MB'"))
            self.dropped = _keys_checked_in_bulk(self.conn, self.tables, self.rows)
            for fk in self.dropped:
                self.conn.execute(DropConstraint(fk))


@contextmanager
def load_transaction(
    engine: Engine, tables: Sequence[str], rows: int, min_rows: int
) -> Iterator[Load]:
    """A transaction that writes many new rows into `tables`, whose references (foreign keys)
    the caller has checked itself, as an import checks every reference of its file.

    The database then checks them once, in bulk, instead of once per row (the PostgreSQL
    manual, "Populating a Database": "a foreign key constraint can be checked 'in bulk' more
    efficiently than row-by-row"). From `min_rows` rows on:

    - SQLite: foreign-key enforcement is off for this transaction. Nothing can change what the
      caller checked before the rows are written: SQLite has one writer, and a transaction
      whose reads another writer has overtaken fails instead of writing.
    - PostgreSQL: the foreign keys of `tables` are dropped when the writing starts and added
      again before the commit; adding one checks every row of its table in one query, and a
      missing reference fails the whole transaction, so nothing is half-written. A table the
      batch is small against (more than ten times its rows already) keeps its keys. Other
      sessions wait for the tables until the commit.
    """
    bulk = rows >= min_rows
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw: Any = conn.connection.driver_connection
        if bulk and sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                load = Load(conn, tables, rows, bulk)
                yield load
                for fk in load.dropped:
                    conn.execute(AddConstraint(fk))
        finally:
            if bulk and sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


def _keys_checked_in_bulk(
    conn: Connection, tables: Sequence[str], rows: int
) -> list[ForeignKeyConstraint]:
    from recoup.core.schema import metadata  # every model's table

    sizes = {
        str(name): float(n)
        for name, n in conn.execute(
            text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)"),
            {"names": list(tables)},
        )
    }
    out: list[ForeignKeyConstraint] = []
    for name in tables:
        if float(sizes.get(name) or 0) > 10 * rows:
            continue
        out.extend(sorted(metadata.tables[name].foreign_key_constraints, key=lambda f: str(f.name)))
    return out


def write_frame(conn: Connection, table: str, df: pl.DataFrame) -> int:
    """Append the rows of `df` (columns named as the table's) to `table`. Returns row count."""
    if df.height == 0:
        return 0
    cols = ", ".join(f'"{c}"' for c in df.columns)
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with (
            raw.cursor() as cur,
            cur.copy(f'COPY "{table}" ({cols}) FROM STDIN WITH (FORMAT csv)') as copy,
        ):
            for start in range(0, df.height, _CHUNK):
                chunk = df.slice(start, _CHUNK)
                buf = io.BytesIO()
                chunk.write_csv(
                    buf,
                    include_header=False,
                    null_value="",
                    datetime_format="%Y-%m-%dT%H:%M:%S%.f%:z",
                )
                copy.write(buf.getvalue())
        return df.height
    frame = _for_sqlite(df)
    # A column with one value in every row (a status, zeros, the time of the import) is written
    # as a literal of the statement rather than bound row by row: at a million rows of
    # `account` that is half the parameters and a third of the time.
    constants = _constants(frame) if frame.height >= 1_000 else {}
    marks = ", ".join(constants.get(c, "?") for c in frame.columns)
    sql = f'INSERT INTO "{table}" ({cols}) VALUES ({marks})'
    varying = frame.select(c for c in frame.columns if c not in constants)
    cur = raw.cursor()
    try:
        if varying.width == 0:
            cur.executemany(sql, (() for _ in range(df.height)))
        for start in range(0, df.height if varying.width else 0, _CHUNK):
            cur.executemany(sql, varying.slice(start, _CHUNK).iter_rows())
    finally:
        cur.close()
    return df.height


def _constants(frame: pl.DataFrame) -> dict[str, str]:
    """The columns of `frame` holding one value in every row, as SQL literals (integers, text
    and NULL; anything else stays bound)."""
    counts = frame.select(pl.all().n_unique()).row(0)
    out: dict[str, str] = {}
    for name, n in zip(frame.columns, counts, strict=True):
        if n != 1:
            continue
        value = frame[name][0]
        if value is None:
            out[name] = "NULL"
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            out[name] = str(int(value))
        elif isinstance(value, str) and "\x00" not in value:
            out[name] = "'" + value.replace("'", "''") + "'"
    return out


def reserve_ids(conn: Connection, table: str, n: int) -> int:
    """First of `n` consecutive primary keys for rows written with explicit ids.

    The table is locked (PostgreSQL) for the rest of the transaction so concurrent writers
    cannot take the same range; the sequence is moved past the range.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text(f'LOCK TABLE "{table}" IN SHARE ROW EXCLUSIVE MODE'))
    current = conn.execute(select(func.max(text("id"))).select_from(text(f'"{table}"'))).scalar()
    first = int(current or 0) + 1
    if conn.dialect.name == "postgresql" and n > 0:
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), :v)"),
            {"v": first + n - 1},
        )
    return first


def now_column(df: pl.DataFrame, name: str = "created_at") -> pl.DataFrame:
    """Add a constant UTC timestamp column."""
    return df.with_columns(pl.lit(utcnow()).dt.convert_time_zone("UTC").alias(name))


def fetch(conn: Connection, sql: str, schema: dict[str, Any]) -> pl.DataFrame:
    """Run a query without parameters and return its rows typed by `schema` (in order).
    PostgreSQL streams them with COPY … TO STDOUT; SQLite fetches them on its cursor."""
    names = list(schema)
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        buf = io.BytesIO()
        with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for chunk in copy:
                buf.write(chunk)
        text_frame = pl.read_csv(
            buf.getvalue(),
            has_header=False,
            new_columns=names,
            infer_schema=False,
            raise_if_empty=False,
        )
        if text_frame.width == 0:
            text_frame = pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    else:
        cur = raw.cursor()
        try:
            rows = cur.execute(sql).fetchall()
        finally:
            cur.close()
        text_frame = _sqlite_frame(rows, names)
    return _typed(text_frame, schema)


def _sqlite_frame(rows: list[tuple[Any, ...]], names: list[str]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    columns = list(zip(*rows, strict=True))
    return pl.DataFrame(
        {
            n: pl.Series(n, col, strict=False).cast(pl.String)
            for n, col in zip(names, columns, strict=True)
        }
    )


def _typed(df: pl.DataFrame, schema: dict[str, Any]) -> pl.DataFrame:
    exprs = []
    for name, dtype in schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            exprs.append(col.str.slice(0, 10).str.to_date("%Y-%m-%d"))
        elif dtype == pl.Boolean:
            exprs.append(col.is_in(["t", "true", "1", "True"]))
        else:
            exprs.append(col.cast(dtype))
    return df.select(exprs)
