"""Generated schedules stored as they are needed.

A loan whose schedule Recoup generates (annuity, equal principal, interest only) is a function of
its terms: principal, rate, number of instalments and start date. A bulk import of a book writes
the account with those terms and `scheduled_through` = its start date, and no instalment rows:
at a million loans that is ten million rows the import does not write (docs/benchmarks.md).

`account.scheduled_through` says which instalments are stored:

- NULL: all of them (every account created one by one, given schedules, invoices, bullets);
- a date: exactly those falling due on or before it; the later ones are the generated ones.

They are written, always the same rows as an eager import would have written (one generator,
`vectorised.generate_schedules`), when something first needs them:

- the daily cycle, before its partitions, those falling due up to the run date plus the longest
  reminder lead (what its aggregate and planning read), then moves `scheduled_through` to the
  day before the next instalment, so that on an ordinary day only the accounts with an
  instalment coming into that window are touched;
- everything that reads or changes one account's whole schedule (payments, reversals, waivers,
  arrangements, the account page, messages) first stores the rest of it (`store_all`).

Nothing is ever removed from the schedule this way, and the rows are written once: a second
call finds `scheduled_through` moved on. On PostgreSQL the accounts are locked first, so that
two transactions storing the same account wait for each other instead of writing it twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import polars as pl
from sqlalchemy import Connection, Date, bindparam, text

from recoup.core.bulk import write_frame
from recoup.ledger.vectorised import generate_schedules

# The methods whose number of instalments is the term in months, so that the account's terms
# give the schedule back (a bullet loan keeps one instalment and is stored at once).
LAZY_METHODS = ("annuity", "equal_principal", "interest_only")

_TERMS = "id, principal, interest_rate_ppm, term, method, start_date, scheduled_through"
TERMS_SCHEMA = {
    "account_id": pl.Int64,
    "principal": pl.Int64,
    "interest_rate_ppm": pl.Int64,
    "term": pl.Int64,
    "method": pl.String,
    "start_date": pl.Date,
    "scheduled_through": pl.Date,
}


def instalment_rows(schedule: pl.DataFrame) -> pl.DataFrame:
    """Rows of the instalment table for generated instalments (nothing paid yet)."""
    return schedule.select(
        pl.col("account_id").cast(pl.Int64),
        pl.col("seq").cast(pl.Int64),
        "due_date",
        pl.col("principal_due").cast(pl.Int64),
        pl.col("interest_due").cast(pl.Int64),
        pl.col("fee_due").cast(pl.Int64),
        pl.lit(0, pl.Int64).alias("principal_paid"),
        pl.lit(0, pl.Int64).alias("interest_paid"),
        pl.lit(0, pl.Int64).alias("fee_paid"),
        pl.lit(False).alias("is_paid"),
    )


def _schedules(terms: pl.DataFrame) -> pl.DataFrame:
    """Every instalment of `terms` (columns as `TERMS_SCHEMA`), with the account's mark."""
    return generate_schedules(terms.drop("scheduled_through")).join(
        terms.select("account_id", "scheduled_through"), on="account_id"
    )


def _new(through: dt.date | None) -> pl.Expr:
    """Not stored yet (and due on or before `through`, if given)."""
    keep = pl.col("due_date") > pl.col("scheduled_through")
    return keep & (pl.col("due_date") <= through) if through is not None else keep


def unstored(terms: pl.DataFrame) -> pl.DataFrame:
    """The instalments of `terms` (columns as `TERMS_SCHEMA`) not stored yet, without writing them
    (exports read them so)."""
    return _schedules(terms).filter(_new(None)).drop("scheduled_through")


def _terms(
    conn: Connection, where: str, params: dict[str, Any], limit: int | None = None
) -> pl.DataFrame:
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    first = f" LIMIT {int(limit)}" if limit is not None else ""
    rows = conn.execute(
        text(
            f"SELECT {_TERMS} FROM account WHERE scheduled_through IS NOT NULL AND {where} "
            f"ORDER BY id{first}{lock}"
        )
        .bindparams(*(bindparam(k, expanding=True) for k, v in params.items() if _many(v)))
        .columns(start_date=Date, scheduled_through=Date),
        params,
    ).all()
    return pl.DataFrame(rows, schema=TERMS_SCHEMA, orient="row")


def _many(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _store(conn: Connection, terms: pl.DataFrame, through: dt.date | None) -> int:
    if terms.height == 0:
        return 0
    schedule = _schedules(terms)
    rows = schedule.filter(_new(through))
    written = write_frame(conn, "instalment", instalment_rows(rows))
    # Where each account now stands: the day before its first instalment still not stored, or
    # NULL once all are.
    left = (
        schedule.filter(pl.col("due_date") > through) if through is not None else schedule.clear()
    )
    marks = terms.select(pl.col("account_id").alias("id")).join(
        left.group_by("account_id").agg(
            (pl.col("due_date").min() - pl.duration(days=1)).alias("scheduled_through")
        ),
        left_on="id",
        right_on="account_id",
        how="left",
    )
    _set_marks(conn, marks)
    return written


def _set_marks(conn: Connection, marks: pl.DataFrame) -> None:
    from recoup.ledger.bulk import update_frame  # bulk imports this module

    if marks.height <= 500:
        for mark in marks.partition_by("scheduled_through", maintain_order=True):
            conn.execute(
                text("UPDATE account SET scheduled_through = :t WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"t": mark["scheduled_through"][0], "ids": mark["id"].to_list()},
            )
        return
    update_frame(conn, "account", marks)


def store_due(conn: Connection, through: dt.date, chunk: int = 100_000) -> int:
    """Store the instalments falling due on or before `through` of every account, `chunk`
    accounts at a time (the daily cycle, before its partitions: on an ordinary day a few
    thousand accounts in one go). Returns the number of instalment rows written."""
    written, last = 0, 0
    while True:
        terms = _terms(
            conn, "scheduled_through < :t AND id > :last", {"t": through, "last": last}, chunk
        )
        if terms.height == 0:
            return written
        written += _store(conn, terms, through)
        last = int(terms["account_id"].max())  # type: ignore[arg-type]


def store_all(conn: Connection, account_ids: Iterable[int]) -> int:
    """Store the whole schedule of these accounts (those it is not stored for already)."""
    ids = sorted(set(account_ids))
    written = 0
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        written += _store(conn, _terms(conn, "id IN :ids", {"ids": chunk}), None)
    return written
