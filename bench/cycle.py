"""Benchmark: the daily cycle over N accounts (`recoup cycle run`).

    python bench/cycle.py --accounts 1000000 --db sqlite
    python bench/cycle.py --accounts 1000000 --db postgresql   # server: RECOUP_DATABASE_URL

Builds the demo portfolio of N accounts as of a date D (loans of four methods and invoices, a
realistic spread of delinquency, a payment history; see recoup/demo) and runs the first cycle for
D, which catches up every account's accruals since its contract (reported, not the figure). Then
it times --repeat ordinary daily runs, D+1, D+2, …: each a real run of a new date over the whole
book (recognition, DPD, buckets, stages, penalty and late fees within the cap, statuses, cures,
the run record).

For comparison it times one bare set-based SQL statement pair doing the core arithmetic of a run
over the same data (aggregate the unpaid instalments due per account, then update DPD, bucket,
overdue amount and penalty) without the ledger entries, the cap, the watermarks or partitions.

Building a million accounts takes 10 to 20 minutes. `--keep PATH` (SQLite: a file; PostgreSQL: a
database name) keeps a copy of the book as built and run for D; `--from PATH` starts from such a
copy instead of building (SQLite copies the file, PostgreSQL clones the database as a template),
so that the daily runs can be timed again on the same book.

Last line: `accounts=<n> seconds=<s> db=<name>` (seconds: the median daily run, cycle alone).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database, machine, median, save_copy
from recoup.cycle import service as cycle
from recoup.demo import service as demo
from recoup.ledger.models import Account

AS_OF = dt.date(2026, 11, 23)


def bare_sql(engine: Engine, day: dt.date) -> float:
    """The core arithmetic of a run as one aggregate and one update, inside a transaction that
    is rolled back so the book is unchanged."""
    pg = engine.dialect.name == "postgresql"
    days = "(CAST(:d AS DATE) - i.due_date)" if pg else "(julianday(:d) - julianday(i.due_date))"
    temp = "CREATE TEMP TABLE bare ON COMMIT DROP AS" if pg else "CREATE TEMP TABLE bare AS"
    agg = f"""{temp}
        SELECT i.account_id AS id, MIN(i.due_date) AS oldest,
               SUM(i.principal_due - i.principal_paid + i.interest_due - i.interest_paid
                   + i.fee_due - i.fee_paid) AS overdue,
               SUM((i.principal_due - i.principal_paid) * a.penalty_rate_ppm / 365000000)
                 AS penalty
        FROM instalment i JOIN account a ON a.id = i.account_id
        WHERE i.is_paid = {"false" if pg else "0"} AND i.due_date < :d
        GROUP BY i.account_id"""
    dpd = f"CAST({days.replace('i.due_date', 'b.oldest')} AS INTEGER)"
    upd = f"""UPDATE account SET dpd = {dpd},
                 bucket = CASE WHEN {dpd} <= 30 THEN 'M1' WHEN {dpd} <= 60 THEN 'M2'
                               WHEN {dpd} <= 90 THEN 'M3' ELSE 'M4' END,
                 overdue_amount = b.overdue, penalty_balance = penalty_balance + b.penalty
              FROM bare b WHERE account.id = b.id"""
    t0 = time.perf_counter()
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text(agg), {"d": day})
        conn.execute(text(upd), {"d": day})
        seconds = time.perf_counter() - t0
        trans.rollback()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--repeat", type=int, default=3, help="daily runs to time (D+1, D+2, …)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", default=None, help="save the book as built and run for D here")
    ap.add_argument("--from", dest="source", default=None, help="start from a --keep copy")
    args = ap.parse_args()
    if args.source and args.db == "sqlite" and not Path(args.source).is_file():
        raise SystemExit(f"--from {args.source}: no such file")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        with fresh_database(args.db, Path(tmp), template=args.source) as engine:
            if args.source:
                with engine.connect() as conn:
                    found = conn.execute(select(func.count(Account.id))).scalar_one()
                if found != args.accounts:
                    raise SystemExit(
                        f"{args.source} holds {found:,} accounts, not {args.accounts:,}"
                    )
                print(f"book of {found:,} accounts copied from {args.source}")
            else:
                build(engine, args.accounts)
                if args.keep:
                    save_copy(engine, args.keep)
                    print(f"book saved as {args.keep}")
            runs, bare = daily_runs(engine, args.repeat)
        print(
            f"median daily run {median(runs):.2f}s; bare SQL aggregate+update {median(bare):.2f}s "
            f"(ratio {median(runs) / median(bare):.2f})"
        )
    print(f"accounts={args.accounts} seconds={median(runs):.2f} db={args.db}")


def build(engine: Engine, accounts: int) -> None:
    t0 = time.perf_counter()
    result = demo.load_demo(engine, accounts, as_of=AS_OF, run_cycle=True, with_staff=False)
    print(
        f"built {accounts:,} accounts in {result.build_seconds:.1f}s "
        f"(rows: {result.counts}); first cycle for {AS_OF} (catch-up since each contract) "
        f"{result.cycle_seconds:.2f}s; total {time.perf_counter() - t0:.1f}s"
    )
    if engine.dialect.name == "postgresql":
        # A loaded book as a server that has been running keeps it: vacuumed (hint bits set,
        # visibility map for index-only scans), which autovacuum does in the background.
        t1 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
        print(f"VACUUM (ANALYZE) of the book {time.perf_counter() - t1:.1f}s")


def daily_runs(engine: Engine, repeat: int) -> tuple[list[float], list[float]]:
    """Time `repeat` daily runs after D, then the bare SQL; the book is left at D+repeat."""
    runs: list[float] = []
    for k in range(1, repeat + 1):
        day = AS_OF + dt.timedelta(days=k)
        res = cycle.run_cycle(engine, day)
        runs.append(res.seconds)
        shown = {key: res.counts[key] for key in ("touched", "delinquent", "cured", "capped")}
        print(f"daily run {day}: {res.seconds:.2f}s {shown}")
    bare = [bare_sql(engine, AS_OF + dt.timedelta(days=repeat)) for _ in range(3)]
    return runs, bare


if __name__ == "__main__":
    main()
