"""Bulk reads and writes of Polars frames, inside the caller's transaction.

Writes: PostgreSQL `COPY … FROM STDIN (FORMAT csv)` fed with Polars' CSV writer; SQLite one
`executemany` of the frame's rows on the same connection. Either way nothing is committed here,
so an all-or-nothing import stays all-or-nothing. Reads (`fetch`): PostgreSQL `COPY … TO
STDOUT`, SQLite the cursor's rows, typed by a schema.
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl
from sqlalchemy import Connection, func, select, text

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
    marks = ", ".join("?" for _ in df.columns)
    sql = f'INSERT INTO "{table}" ({cols}) VALUES ({marks})'
    cur = raw.cursor()
    try:
        for start in range(0, df.height, _CHUNK):
            cur.executemany(sql, _for_sqlite(df.slice(start, _CHUNK)).iter_rows())
    finally:
        cur.close()
    return df.height


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
