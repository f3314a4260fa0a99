"""Benchmark: the collector's worklist through the HTTP API with a whole book loaded.

    python bench/worklist.py --accounts 1000000 --db sqlite
    python bench/worklist.py --accounts 1000000 --db postgresql   # server: RECOUP_DATABASE_URL
    python bench/worklist.py --accounts 1000000 --from book.db    # a book kept by bench/cycle.py

Builds the demo portfolio of N accounts as of D (or copies one saved by `bench/cycle.py --keep`),
puts the default strategy in force and runs the cycle with planning for D+1 so that call tasks
and visits exist, gives the accounts risk bands, creates --collectors collectors in --teams teams
with one assignment rule per stage (and one for English-speaking debtors) and assigns every
worked account with `run_assignment` (timed). Then it adds promises due today and callbacks for
a share of the accounts, starts the real server (uvicorn, a separate process) and times
--requests requests `GET /api/v1/worklist?limit=50` of several collectors, round robin, each
with its own API token.

The work is moved to the wall clock: the worklist asks for what is due now, and the book's
dates are fixed, so the planned call tasks and visits are rescheduled to an hour ago.

Last line: `p95_ms=<x> requests=<n>` (budget: p95 under 100 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database, machine, save_copy
from bench.cycle import AS_OF, build
from recoup.access import service as access
from recoup.access.service import SYSTEM
from recoup.core.clock import business_today
from recoup.core.db import utcnow
from recoup.cycle import service as cycle
from recoup.ledger.models import Account
from recoup.strategy import service as strategy
from recoup.workspace import service as workspace

STAGES = ("early", "negotiation", "hard", "recovery")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--collectors", type=int, default=50)
    ap.add_argument("--teams", type=int, default=5)
    ap.add_argument("--users", type=int, default=8, help="collectors whose worklists are timed")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", default=None, help="save the book as built and run for D here")
    ap.add_argument("--from", dest="source", default=None, help="start from a --keep copy")
    args = ap.parse_args()
    if args.source and args.db == "sqlite" and not Path(args.source).is_file():
        raise SystemExit(f"--from {args.source}: no such file")
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
            print(f"book of {found:,} accounts copied from {args.source}")
        else:
            build(engine, args.accounts)
            if args.keep:
                save_copy(engine, args.keep)
                print(f"book saved as {args.keep}")
        prepare(engine, args)
        tokens = make_tokens(engine, args.users)
        timings = serve_and_time(engine, tokens, args.requests)
    p95 = percentile(timings, 95)
    print(f"p95_ms={p95:.1f} requests={len(timings)}")


def prepare(engine: Engine, args: argparse.Namespace) -> None:
    day = AS_OF + dt.timedelta(days=1)
    with Session(engine) as session, session.begin():
        strategy.default_everywhere(session, "bench")
    res = cycle.run_cycle(engine, day)
    print(
        f"cycle with planning for {day}: {res.seconds:.1f}s, "
        f"actions planned {res.counts.get('actions_planned', 0):,}"
    )
    now = utcnow()
    with engine.begin() as conn:
        # Risk bands until a model exists: a stable spread by account id.
        conn.execute(
            text(
                "UPDATE account SET risk_band = CASE id % 5 WHEN 0 THEN 'A' WHEN 1 THEN 'B' "
                "WHEN 2 THEN 'C' WHEN 3 THEN 'D' ELSE 'E' END"
            )
        )
        # The book's dates are fixed; the worklist asks what is due by the wall clock.
        moved = conn.execute(
            text(
                "UPDATE planned_action SET scheduled_at = :t WHERE status = 'planned' "
                "AND action_type IN ('call_task', 'field_visit') AND cycle_date = :d"
            ),
            {"t": now - dt.timedelta(hours=1), "d": day},
        ).rowcount
        print(f"call tasks and visits due now: {moved:,}")
    teams, rules = make_collectors(engine, args.collectors, args.teams)
    print(f"{args.collectors} collectors in {len(teams)} teams, {rules} assignment rules")
    t0 = time.perf_counter()
    with Session(engine) as session, session.begin():
        counts = workspace.run_assignment(session, day, by="bench")
    print(f"run_assignment: {time.perf_counter() - t0:.2f}s {counts}")
    t0 = time.perf_counter()
    with Session(engine) as session, session.begin():
        again = workspace.run_assignment(session, day, by="bench")
    print(f"run_assignment again (nothing to move): {time.perf_counter() - t0:.2f}s {again}")
    add_work(engine, now)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))  # the planner's statistics, as after a nightly run
        loads = conn.execute(
            text(
                "SELECT COUNT(*), MIN(n), MAX(n) FROM (SELECT user_id, COUNT(*) AS n "
                "FROM assignment WHERE user_id IS NOT NULL GROUP BY user_id) x"
            )
        ).one()
    print(f"accounts per collector: min {loads[1]:,}, max {loads[2]:,} ({loads[0]} collectors)")


def make_collectors(engine: Engine, collectors: int, teams: int) -> tuple[list[int], int]:
    """Teams of collectors: one team per stage (the last of them for English speakers)."""
    team_ids: list[int] = []
    n_rules = 0
    with Session(engine) as session, session.begin():
        for t in range(teams):
            team_ids.append(access.create_team(session, f"BT{t}", f"Bench team {t}").id)
        for u in range(collectors):
            t = u % teams
            english = t == teams - 1 and teams > len(STAGES)
            access.create_user(
                session,
                f"bench{u:03d}",
                None,
                "collector",
                team_id=team_ids[t],
                languages=["zh-CN", "en"] if english else ["zh-CN"],
                skills=["legal"] if STAGES[t % len(STAGES)] in ("hard", "recovery") else [],
            )
        if teams > len(STAGES):
            workspace.create_rule(
                session,
                SYSTEM,
                name="english",
                priority=10,
                languages=["en"],
                match_language=True,
                team_id=team_ids[-1],
            )
            n_rules += 1
        for i, stage in enumerate(STAGES):
            workspace.create_rule(
                session,
                SYSTEM,
                name=f"stage-{stage}",
                priority=100 + i,
                stages=[stage],
                team_id=team_ids[i % teams],
                skill="legal" if stage in ("hard", "recovery") else None,
            )
            n_rules += 1
    return team_ids, n_rules


def add_work(engine: Engine, now: dt.datetime) -> None:
    """Promises due today for 1 in 20 assigned accounts, callbacks for 1 in 25."""
    today = business_today(now)
    due = now - dt.timedelta(minutes=30)
    with engine.begin() as conn:
        p = conn.execute(
            text(
                "INSERT INTO promise (account_id, amount, currency, created_on, due_date, status, "
                "paid_amount, created_by, created_at) "
                "SELECT s.account_id, 10000, 'CNY', :created, :today, 'open', 0, 'bench', :now "
                "FROM assignment s WHERE s.account_id % 20 = 0"
            ),
            {"created": today - dt.timedelta(days=3), "today": today, "now": now},
        ).rowcount
        w = conn.execute(
            text(
                "INSERT INTO work_task (account_id, kind, due_at, user_id, status, created_by, "
                "created_at) SELECT s.account_id, 'callback', :due, s.user_id, 'open', 'bench', "
                ":now FROM assignment s WHERE s.account_id % 25 = 3"
            ),
            {"due": due, "now": now},
        ).rowcount
    print(f"promises due today {p:,}, callbacks {w:,}")


def make_tokens(engine: Engine, users: int) -> list[tuple[str, str]]:
    """API tokens of `users` collectors spread over the teams (those with the most accounts)."""
    with Session(engine) as session, session.begin():
        rows = session.execute(
            text(
                "SELECT u.id, u.username, COUNT(s.account_id) AS n FROM app_user u "
                "JOIN assignment s ON s.user_id = u.id WHERE u.username LIKE 'bench%' "
                "GROUP BY u.id, u.username ORDER BY n DESC, u.id"
            )
        ).all()
        picked = rows[:: max(1, len(rows) // users)][:users]
        out = []
        for uid, name, n in picked:
            user = access.get_user(session, uid)
            token, _ = access.issue_token(session, user, "bench")
            out.append((f"{name} ({n:,} accounts)", token))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_time(engine: Engine, tokens: list[tuple[str, str]], requests: int) -> list[float]:
    port = free_port()
    env = {
        **os.environ,
        "RECOUP_DATABASE_URL": engine.url.render_as_string(hide_password=False),
    }
    engine.dispose()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "recoup.web.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(300):
                try:
                    client.get(f"http://127.0.0.1:{port}/docs")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not start")
            per_user: dict[str, list[float]] = {name: [] for name, _ in tokens}
            for name, token in tokens:  # warm up: each collector's first request is not timed
                r = client.get(f"{base}/worklist", params={"limit": 50}, headers=_auth(token))
                r.raise_for_status()
                print(f"{name}: {r.json()['total']:,} accounts with work due")
            timings: list[float] = []
            for i in range(requests):
                name, token = tokens[i % len(tokens)]
                t0 = time.perf_counter()
                r = client.get(f"{base}/worklist", params={"limit": 50}, headers=_auth(token))
                ms = (time.perf_counter() - t0) * 1000
                r.raise_for_status()
                if not r.json()["items"]:
                    raise SystemExit(f"{name}: empty worklist")
                timings.append(ms)
                per_user[name].append(ms)
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name, times in per_user.items():
        if times:
            print(
                f"{name}: n={len(times)} median={statistics.median(times):.1f}ms "
                f"p95={percentile(times, 95):.1f}ms max={max(times):.1f}ms"
            )
    print(
        f"all: n={len(timings)} median={statistics.median(timings):.1f}ms "
        f"p95={percentile(timings, 95):.1f}ms max={max(timings):.1f}ms; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    return timings


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


if __name__ == "__main__":
    main()
