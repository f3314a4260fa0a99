"""The strategy dry run (`recoup strategy simulate FILE --from DATE --days N`, 策略模拟): what a
strategy would do, day by day, to the portfolio as it stands, with nothing written.

The real daily cycle runs, date after date, with the strategy in force, on a copy of the data:

- SQLite: the database is copied to a temporary file with SQLite's online backup API (a read
  transaction: in WAL mode the live file's writers are never blocked, and it is never written);
  the cycle runs on an engine of its own for the copy, which is deleted afterwards;
- PostgreSQL: everything happens in one transaction on one connection, rolled back at the end.
  (While it runs, the accounts the cycle updates are locked by that transaction: a payment
  posted to one of them waits for the dry run to finish.)

Each day's planned actions are then counted in SQL by type, stage, status, blocking rule and the
portfolio's currency. Because nothing is carried out, the dry run records no contacts: rules
that count past contacts (calls in seven days, connected voice calls a day) see only the
contacts already on record, and may block fewer actions than the days would really bring.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pathlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, text
from sqlalchemy.orm import Session

from recoup.core.db import make_engine
from recoup.core.errors import Invalid
from recoup.core.settings import Settings, get_settings
from recoup.cycle import service as cycle_service
from recoup.cycle.models import CycleRun
from recoup.ledger.models import Portfolio
from recoup.strategy import service
from recoup.strategy.models import StrategyAssignment

MAX_DAYS = 366
BY = "simulation"


@dataclass
class SimDay:
    date: dt.date
    actions: dict[tuple[str, str], int] = field(default_factory=dict)  # (type, stage) -> planned
    cost: dict[str, Decimal] = field(default_factory=dict)  # currency -> estimated cost
    blocks: dict[str, int] = field(default_factory=dict)  # compliance rule id -> blocked
    cancelled: int = 0


@dataclass
class Simulation:
    strategy: str
    portfolios: list[str]
    days: list[SimDay]


def simulate(
    engine: Engine,
    source: str,
    start: dt.date,
    days: int,
    portfolios: list[str] | None = None,
    settings: Settings | None = None,
) -> Simulation:
    """Run the strategy in `source` for `days` days from `start` on the portfolios named
    (default: all; the others get no strategy during the run). Nothing is written."""
    doc = service.validate(source)
    if not 1 <= days <= MAX_DAYS:
        raise Invalid("days", days, f"simulate 1 to {MAX_DAYS} days")
    settings = settings or get_settings()
    with _scratch(engine) as (work, conn):
        codes = _choose(conn, portfolios)
        last = conn.execute(select(func.max(CycleRun.as_of))).scalar()
        if isinstance(last, str):  # pragma: no cover - SQLite without type affinity
            last = dt.date.fromisoformat(last)
        if last is not None and last >= start:
            raise Invalid(
                "from",
                start.isoformat(),
                f"the cycle has already run for {last.isoformat()}; a dry run must start after "
                f"the last run date, on {(last + dt.timedelta(days=1)).isoformat()} or later",
            )
        _put_in_force(conn, source, doc.strategy, codes)
        out = []
        for n in range(days):
            day = start + dt.timedelta(days=n)
            result = cycle_service.run_cycle(work, day, connection=conn, settings=settings)
            out.append(
                _read_day(conn, day, settings, int(result.counts.get("actions_cancelled", 0)))
            )
    return Simulation(doc.strategy, codes, out)


def _choose(conn: Connection, portfolios: list[str] | None) -> list[str]:
    known = list(conn.execute(select(Portfolio.code).order_by(Portfolio.code)).scalars())
    if portfolios is None:
        return known
    unknown = [c for c in portfolios if c not in known]
    if unknown:
        raise Invalid("portfolio", ", ".join(unknown), "no portfolio of that code")
    return sorted(set(portfolios))


def _put_in_force(conn: Connection, source: str, code: str, codes: list[str]) -> None:
    """The file as a version, in force (one arm) on the chosen portfolios and on no other."""
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        version, _ = service.load(session, source, BY)
        for portfolio in codes:
            arm = service.ArmSpec(code, version.version, 1, "champion")
            service.activate(session, portfolio, [arm], BY, experiment=f"simulation-{portfolio}")
        others = select(Portfolio.id).where(Portfolio.code.not_in(codes))
        session.execute(
            delete(StrategyAssignment).where(StrategyAssignment.portfolio_id.in_(others))
        )
        # In this mode commit releases the session's savepoint; the outer transaction stays open.
        session.commit()


def _read_day(conn: Connection, day: dt.date, settings: Settings, cancelled: int) -> SimDay:
    rows = conn.execute(
        text(
            """
            SELECT pa.action_type, COALESCE(pa.stage, '') AS stage, pa.status, pa.rule_id,
                   p.currency, COUNT(*) AS n
            FROM planned_action pa JOIN portfolio p ON p.id = pa.portfolio_id
            WHERE pa.cycle_date = :d
            GROUP BY pa.action_type, COALESCE(pa.stage, ''), pa.status, pa.rule_id, p.currency"""
        ),
        {"d": day},
    ).all()
    sim = SimDay(day, cancelled=cancelled)
    for action, stage, status, rule_id, currency, n in rows:
        n = int(n)
        if status == "blocked":
            rule = rule_id or "unknown"
            sim.blocks[rule] = sim.blocks.get(rule, 0) + n
        elif status == "planned":
            sim.actions[(action, stage)] = sim.actions.get((action, stage), 0) + n
            unit = settings.action_costs.get(action, Decimal(0))
            sim.cost[currency] = sim.cost.get(currency, Decimal(0)) + unit * n
    return sim


@contextlib.contextmanager
def _scratch(engine: Engine) -> Iterator[tuple[Engine, Connection]]:
    """An engine and a connection in a transaction on which anything may be done: it is rolled
    back, and on SQLite it is on a copy of the database that is deleted afterwards."""
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                yield engine, conn
            finally:
                trans.rollback()
        return
    folder = tempfile.mkdtemp(prefix="recoup-sim-", dir=_temp_dir(engine))
    try:
        copy = os.path.join(folder, "simulation.db")
        _backup(engine, copy)
        work = make_engine(f"sqlite:///{copy}")
        try:
            with work.connect() as conn:
                trans = conn.begin()
                try:
                    yield work, conn
                finally:
                    trans.rollback()
        finally:
            work.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _live_path(engine: Engine) -> str | None:
    path = engine.url.database
    if not path or path == ":memory:" or "mode=memory" in path:
        return None
    return path


def _temp_dir(engine: Engine) -> str | None:
    """Next to the database (a copy of a large database may not fit a RAM-backed /tmp), or the
    system's temporary directory when that folder is not writable."""
    path = _live_path(engine)
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    return folder if folder and os.access(folder, os.W_OK) else None


def _backup(engine: Engine, target: str) -> None:
    """Copy the live database with SQLite's backup API, in one step (one read transaction)."""
    dest = sqlite3.connect(target)
    try:
        path = _live_path(engine)
        if path is not None:
            # Read-only: this connection cannot write the live file, not even a checkpoint.
            uri = pathlib.Path(path).resolve().as_uri() + "?mode=ro"
            src = sqlite3.connect(uri, uri=True, timeout=30)
            try:
                src.backup(dest)
            finally:
                src.close()
        else:  # an in-memory database is reachable only through the engine's own connection
            with engine.connect() as conn:
                raw: Any = conn.connection.driver_connection
                raw.backup(dest)
    finally:
        dest.close()


def to_json(sim: Simulation) -> dict[str, Any]:
    """The simulation as plain JSON values: dates in ISO form, amounts as decimal strings."""
    return {
        "strategy": sim.strategy,
        "portfolios": list(sim.portfolios),
        "days": [
            {
                "date": day.date.isoformat(),
                "actions": [
                    {"action_type": action, "stage": stage, "planned": n}
                    for (action, stage), n in sorted(day.actions.items())
                ],
                "cost": {currency: str(v) for currency, v in sorted(day.cost.items())},
                "blocks": dict(sorted(day.blocks.items())),
                "cancelled": day.cancelled,
            }
            for day in sim.days
        ],
    }
