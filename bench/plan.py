"""Benchmark: the daily cycle with planning under the default strategy (issue #3).

    python bench/plan.py --accounts 1000000 --db sqlite
    python bench/plan.py --accounts 1000000 --db postgresql   # server: RECOUP_DATABASE_URL

Builds the demo portfolio of N accounts as of D (see bench/cycle.py; `--from PATH` starts from a
book saved by `bench/cycle.py --keep PATH`), puts the default strategy in force for every
portfolio, then times --repeat ordinary daily runs D+1, D+2, …, each the whole cycle plus
planning: segments, steps due, the rows of `planned_action`, cancellations, the compliance
guard's vectorised check of every new action, and stage transitions.

Last line: `accounts=<n> actions=<m> seconds=<s> db=<name>` (median daily run; actions: the
actions planned or blocked by that run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import StatementProfile, fresh_database, machine, median
from bench.cycle import AS_OF, build
from recoup.cycle import service as cycle
from recoup.ledger.models import Account
from recoup.strategy import service as strategy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--repeat", type=int, default=3, help="daily runs to time (D+1, D+2, …)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--from", dest="source", default=None, help="a book kept by bench/cycle.py")
    ap.add_argument(
        "--profile", action="store_true", help="print the costliest SQL statements of each run"
    )
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with (
        tempfile.TemporaryDirectory(dir=args.workdir) as tmp,
        fresh_database(args.db, Path(tmp), template=args.source) as engine,
    ):
        if args.source:
            with engine.connect() as conn:
                found = conn.execute(select(func.count(Account.id))).scalar_one()
            if found != args.accounts:
                raise SystemExit(f"{args.source} holds {found:,} accounts, not {args.accounts:,}")
        else:
            build(engine, args.accounts)
        with Session(engine) as session, session.begin():
            strategy.default_everywhere(session, "bench")
        runs: list[float] = []
        actions: list[int] = []
        for k in range(1, args.repeat + 1):
            day = AS_OF + dt.timedelta(days=k)
            if args.profile:
                with StatementProfile(engine) as profile:
                    res = cycle.run_cycle(engine, day)
                print(profile.report())
            else:
                res = cycle.run_cycle(engine, day)
            runs.append(res.seconds)
            n = res.counts.get("actions_planned", 0) + res.counts.get("actions_blocked", 0)
            actions.append(n)
            shown = {
                key: res.counts.get(key, 0)
                for key in (
                    "touched",
                    "actions_planned",
                    "actions_blocked",
                    "actions_cancelled",
                )
            }
            print(f"daily run with planning {day}: {res.seconds:.2f}s {shown}")
    print(
        f"accounts={args.accounts} actions={int(median([float(a) for a in actions]))} "
        f"seconds={median(runs):.2f} db={args.db}"
    )


if __name__ == "__main__":
    main()
