"""Benchmark: import N accounts from CSV (`recoup import accounts`).

    python bench/import.py --accounts 1000000 --db sqlite
    python bench/import.py --accounts 1000000 --db postgresql   # server: RECOUP_DATABASE_URL
    python bench/import.py --accounts 1000000 --db sqlite --cycle   # and the first cycle after

Writes a debtors file and an accounts file the way a creditor's system exports them (Chinese
headers, thousands separators, several date styles, loans of 3 to 36 months by four methods and
invoices), imports the debtors (not timed), then times the accounts import: reading and checking
every row, resolving debtors, portfolio, products and the cap, and writing accounts, the
instalments written at once (bullet loans, invoices; generated schedules are stored when needed,
recoup.ledger.schedules) and disbursement entries in one transaction. For comparison it then
writes exactly the rows the import wrote into a second empty database by the same bulk path
(`load_transaction`, then SQLite executemany / PostgreSQL COPY) and times that.

With --cycle it also runs the first daily cycle after the last import and three ordinary days
after it (not the figure): the first run stores the instalments due by its date and catches every
account up since its contract; the next ones store what comes due each day.

Last line: `accounts=<n> seconds=<s> db=<name>` (seconds: the accounts import alone, median of
--repeat runs, each into a new database).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database, machine, median
from recoup.core.bulk import load_transaction, write_frame
from recoup.core.settings import get_settings
from recoup.cycle import service as cycle_service
from recoup.ledger import bulk, service

PRODUCTS = [
    # code, kind, method, term, interest %, share
    ("B-A6", "loan", "annuity", 6, "9.6", 0.20),
    ("B-A12", "loan", "annuity", 12, "11.5", 0.25),
    ("B-A24", "loan", "annuity", 24, "9.9", 0.10),
    ("B-EP12", "loan", "equal_principal", 12, "12", 0.15),
    ("B-EP36", "loan", "equal_principal", 36, "8.64", 0.05),
    ("B-BUL3", "loan", "bullet", 3, "12", 0.10),
    ("B-INV", "invoice", "invoice", 1, "0", 0.15),
]
AS_OF = dt.date(2026, 11, 23)


def make_reference(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        creditor = service.create_creditor(s, "BENCH", "基准测试消费金融")
        pf = service.create_portfolio(s, "BENCH-PF", "基准资产包", creditor.id)
        for code, kind, method, term, rate, _ in PRODUCTS:
            service.create_product(
                s,
                code,
                code,
                pf.id,
                kind,
                method="invoice" if kind == "invoice" else method,
                term=None if kind == "invoice" else term,
                interest_rate_ppm=int(float(rate) * 10_000),
                penalty_rate_ppm=182_500,
                late_fee_fixed=5_000,
                grace_days=3,
            )


def write_files(n: int, folder: Path, seed: int = 7) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    n_debtors = max(1, int(n * 0.8))
    debtors = pl.DataFrame(
        {
            "债务人编号": [f"D{i:08d}" for i in range(n_debtors)],
            "姓名": rng.choice(["张伟", "王芳", "李娜", "刘洋", "陈静", "Smith John"], n_debtors),
            "手机": [f"13{x:09d}" for x in rng.integers(0, 10**9, n_debtors)],
            "地区": rng.choice(["上海", "北京", "广东", "浙江", "四川"], n_debtors),
        }
    )
    shares = np.array([p[5] for p in PRODUCTS])
    product = rng.choice(len(PRODUCTS), n, p=shares / shares.sum())
    codes = np.array([p[0] for p in PRODUCTS])[product]
    is_invoice = np.array([p[1] == "invoice" for p in PRODUCTS])[product]
    start = np.datetime64(AS_OF, "D") - rng.integers(10, 900, n).astype("timedelta64[D]")
    principal = np.round(np.exp(rng.normal(np.log(12_000), 0.7, n)), 2).clip(500, 900_000)
    # Amounts the way spreadsheets write them: thousands separators, sometimes no decimals.
    amount_text = pl.Series(principal).map_elements(
        lambda v: f"{v:,.2f}" if v * 100 % 2 else f"{v:.0f}", return_dtype=pl.String
    )
    start_s = pl.Series(start).cast(pl.Date)
    slash = rng.random(n) < 0.3
    date_text = pl.select(
        pl.when(pl.lit(pl.Series(slash)))
        .then(start_s.dt.strftime("%Y/%-m/%-d"))
        .otherwise(start_s.dt.strftime("%Y-%m-%d"))
    ).to_series()
    due_text = pl.select(
        pl.when(pl.lit(pl.Series(is_invoice)))
        .then((start_s + pl.duration(days=30)).dt.strftime("%Y-%m-%d"))
        .otherwise(pl.lit(None))
    ).to_series()
    accounts = pl.DataFrame(
        {
            "合同编号": [f"L{i:09d}" for i in range(n)],
            "债务人编号": [f"D{x:08d}" for x in rng.integers(0, n_debtors, n)],
            "资产包": "BENCH-PF",
            "产品": codes,
            "本金": amount_text,
            "起息日": date_text,
            "到期日": due_text,
        }
    )
    dpath, apath = folder / "debtors.csv", folder / "accounts.csv"
    debtors.write_csv(dpath)
    accounts.write_csv(apath)
    return dpath, apath


def import_once(
    kind: str, workdir: Path, dpath: Path, apath: Path, cycle: bool = False
) -> tuple[float, float, dict]:
    """Import into a new database; returns (accounts seconds, baseline seconds, counts)."""
    with fresh_database(kind, workdir) as engine:
        make_reference(engine)
        rep = bulk.import_file(engine, "debtors", dpath)
        assert rep.committed and rep.rejects.height == 0, rep.rejects.head()
        t0 = time.perf_counter()
        report = bulk.import_file(engine, "accounts", apath)
        seconds = time.perf_counter() - t0
        assert report.committed and report.rejects.height == 0, report.rejects.head()
        frames = {
            "debtor": _read(engine, "debtor"),
            "account": _read(engine, "account"),
            "instalment": _read(engine, "instalment"),
            "ledger_entry": _read(engine, "ledger_entry"),
        }
        if cycle:
            first_cycle(engine)
    with fresh_database(kind, workdir) as engine:
        make_reference(engine)
        with engine.begin() as conn:
            write_frame(conn, "debtor", frames["debtor"])
        t0 = time.perf_counter()
        tables = ("account", "instalment", "ledger_entry")
        rows = frames["account"].height
        with load_transaction(engine, tables, rows, get_settings().import_bulk_rows) as load:
            load.writing()
            for table in tables:
                write_frame(load.conn, table, frames[table])
        baseline = time.perf_counter() - t0
    return seconds, baseline, {k: v.height for k, v in frames.items()}


def first_cycle(engine: Engine) -> None:
    with engine.connect() as conn:
        before = conn.execute(text("SELECT COUNT(*) FROM instalment")).scalar()
    result = cycle_service.run_cycle(engine, AS_OF)
    with engine.connect() as conn:
        after = conn.execute(text("SELECT COUNT(*) FROM instalment")).scalar()
    print(
        f"first cycle after the import, for {AS_OF}: {result.seconds:.2f}s; instalment rows "
        f"{before:,} -> {after:,}; {result.counts.get('touched', 0):,} accounts touched"
    )
    # Ordinary days after it: each stores the instalments coming due that day.
    for k in (1, 2, 3):
        day = AS_OF + dt.timedelta(days=k)
        result = cycle_service.run_cycle(engine, day)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT COUNT(*) FROM instalment")).scalar()
        print(f"daily run {day}: {result.seconds:.2f}s; instalment rows {rows:,}")


def _read(engine: Engine, table: str) -> pl.DataFrame:
    """The table as written, in chunks so that millions of rows fit in memory."""
    frames = []
    with engine.connect() as conn:
        result = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY id'))
        names = list(result.keys())
        while rows := result.fetchmany(500_000):
            frames.append(pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None))
    return pl.concat(frames, how="vertical_relaxed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cycle", action="store_true", help="run the first cycle after the import")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        dpath, apath = write_files(args.accounts, folder)
        print(f"machine: {machine()}")
        print(f"files written in {time.perf_counter() - t0:.1f}s: {apath.stat().st_size:,} bytes")
        runs, bases = [], []
        for k in range(args.repeat):
            last = k == args.repeat - 1
            seconds, baseline, counts = import_once(
                args.db, folder, dpath, apath, cycle=args.cycle and last
            )
            runs.append(seconds)
            bases.append(baseline)
            print(
                f"run {k + 1}: import {seconds:.2f}s, bare bulk insert of the same rows "
                f"{baseline:.2f}s (ratio {seconds / baseline:.2f}); rows {counts}"
            )
    print(
        f"median of {len(runs)}: import {median(runs):.2f}s, bare bulk insert "
        f"{median(bases):.2f}s, ratio {median(runs) / median(bases):.2f}"
    )
    print(f"accounts={args.accounts} seconds={median(runs):.2f} db={args.db}")


if __name__ == "__main__":
    main()
