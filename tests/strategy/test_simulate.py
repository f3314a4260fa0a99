"""The strategy dry run on a real database (SQLite and PostgreSQL): the days the default
strategy's steps fall on, compliance blocks, costs per currency, JSON, and that nothing is
written."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from recoup.core.db import transaction
from recoup.core.errors import Invalid
from recoup.core.settings import Settings
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.ledger.models import Debtor
from recoup.strategy import service
from recoup.strategy.simulate import SimDay, Simulation, simulate, to_json
from tests import factories

DUE = dt.date(2026, 7, 1)
DEFAULT = service.default_source()


def reachable_debtor(s: Any) -> Debtor:
    """A debtor every channel of the default strategy can reach: phone, email and address."""
    d = factories.debtor(s, address="上海市浦东新区世纪大道100号")
    ledger.add_contact_point(s, d.id, "phone", "+86 138 0013 8000")
    ledger.add_contact_point(s, d.id, "email", "debtor@example.com")
    return d


def book(engine: Engine) -> None:
    """Portfolio CN (CNY): an account due on DUE, one due a week later, and a disputed
    debtor's account due on DUE. Portfolio US (USD): one account due on DUE. Invoices of
    50,000 each; no strategy in force."""
    with transaction(engine) as s:
        cn = factories.portfolio(s, code="CN")
        us = factories.portfolio(s, code="US", currency="USD")
        start = dt.date(2026, 6, 1)
        for pf, due in ((cn, DUE), (cn, DUE + dt.timedelta(days=7)), (us, DUE)):
            factories.invoice(s, pf, debtor=reachable_debtor(s), start_date=start, due_date=due)
        disputed = reachable_debtor(s)
        ledger.set_flag(s, disputed.id, "dispute", "debtor disputes the amount", by="test")
        factories.invoice(s, cn, debtor=disputed, start_date=start, due_date=DUE)


def by_date(sim: Simulation) -> dict[dt.date, SimDay]:
    return {day.date: day for day in sim.days}


def planned(day: SimDay, action: str) -> int:
    return sum(n for (a, _), n in day.actions.items() if a == action)


def state(engine: Engine) -> dict[str, Any]:
    """What a dry run must leave as it found it."""
    with engine.connect() as conn:
        counts = {
            table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()
            for table in (
                "planned_action",
                "strategy",
                "strategy_version",
                "strategy_assignment",
                "cycle_run",
                "cycle_partition",
                "compliance_block",
                "ledger_entry",
            )
        }
        accounts = conn.execute(
            text(
                "SELECT id, status, dpd, bucket, stage, stage_since, overdue_amount, "
                "penalty_balance, late_fee_balance, recognised_through, accrued_through "
                "FROM account ORDER BY id"
            )
        ).all()
        assignments = conn.execute(
            text("SELECT portfolio_id, experiment, arms FROM strategy_assignment ORDER BY 1")
        ).all()
    return {
        "counts": counts,
        "accounts": [tuple(str(v) for v in r) for r in accounts],
        "assignments": [tuple(str(v) for v in r) for r in assignments],
    }


# --- what the default strategy does, on which day -------------------------------------------


def test_reminders_before_the_due_date(engine: Engine) -> None:
    book(engine)
    sim = simulate(engine, DEFAULT, DUE - dt.timedelta(days=8), 8, ["CN"])
    assert sim.strategy == "default" and sim.portfolios == ["CN"]
    assert [d.date for d in sim.days] == [DUE - dt.timedelta(days=8 - n) for n in range(8)]
    # D-7 and D-1 of the account due on DUE (the later account's D-7 is DUE itself, after the
    # run); the disputed debtor's reminders are blocked.
    reminders = {DUE - dt.timedelta(days=7), DUE - dt.timedelta(days=1)}
    for day in sim.days:
        if day.date in reminders:
            assert day.actions == {("sms", "current"): 1}, day.date
            assert day.blocks == {"stop.dispute": 1}, day.date
            assert day.cost == {"CNY": Decimal("0.05")}
        else:
            assert (day.actions, day.blocks, day.cost) == ({}, {}, {}), day.date


def test_delinquent_account_over_twelve_days(engine: Engine) -> None:
    book(engine)
    sim = simulate(engine, DEFAULT, DUE, 12, ["CN"])
    assert len(sim.days) == 12
    days = by_date(sim)

    def on(offset: int) -> SimDay:
        return days[DUE + dt.timedelta(days=offset)]

    # The account due on DUE: D+1 sms, D+3 call, D+10 formal notice by letter and email.
    # The account due a week later (D'): D'-7 on D, D'-1 on D+6, D'+1 on D+8, D'+3 on D+10.
    assert on(0).actions == {("sms", "current"): 1}
    assert on(1).actions == {("sms", "early"): 1}
    assert on(3).actions == {("call_task", "early"): 1}
    assert on(6).actions == {("sms", "current"): 1}
    assert on(8).actions == {("sms", "early"): 1}
    assert on(10).actions == {
        ("letter", "early"): 1,
        ("email", "early"): 1,
        ("call_task", "early"): 1,
    }
    for n in (2, 4, 5, 7, 9, 11):
        assert on(n).actions == {}, n
    assert on(1).cost == {"CNY": Decimal("0.05")}
    assert on(3).cost == {"CNY": Decimal("3.00")}
    assert on(10).cost == {"CNY": Decimal("8.01")}  # letter 5.00 + email 0.01 + call 3.00


def test_disputed_debtor_is_blocked_and_never_planned(engine: Engine) -> None:
    book(engine)
    sim = simulate(engine, DEFAULT, DUE, 12, ["CN"])
    days = by_date(sim)
    expected = {1: {"stop.dispute": 1}, 3: {"stop.dispute": 1}, 10: {"stop.dispute": 2}}
    for n, day in enumerate(sim.days):
        assert day.blocks == expected.get(n, {}), day.date
    # Each blocked step of the disputed account is planned once, for the other account only.
    assert planned(days[DUE + dt.timedelta(days=1)], "sms") == 1
    assert planned(days[DUE + dt.timedelta(days=10)], "letter") == 1
    assert planned(days[DUE + dt.timedelta(days=10)], "email") == 1


def test_cost_per_currency_and_portfolio_choice(engine: Engine) -> None:
    book(engine)
    # Live, the default is in force on US only. The dry run on every portfolio puts the file
    # in force on CN and US; the dry run on CN alone takes it off US for its duration.
    with transaction(engine) as s:
        service.load_default(s)
        service.activate(s, "US", [service.ArmSpec("default", None, 1, "champion")], "test")
    both = by_date(simulate(engine, DEFAULT, DUE, 4))
    cn_only = by_date(simulate(engine, DEFAULT, DUE, 4, ["CN"]))
    day1 = DUE + dt.timedelta(days=1)
    day3 = DUE + dt.timedelta(days=3)
    assert both[day1].actions == {("sms", "early"): 2}
    assert both[day1].cost == {"CNY": Decimal("0.05"), "USD": Decimal("0.05")}
    assert both[day3].cost == {"CNY": Decimal("3.00"), "USD": Decimal("3.00")}
    assert cn_only[day1].actions == {("sms", "early"): 1}
    assert cn_only[day1].cost == {"CNY": Decimal("0.05")}


def test_costs_come_from_the_settings(engine: Engine) -> None:
    book(engine)
    costs = dict(Settings().action_costs, sms=Decimal("0.07"))
    sim = simulate(engine, DEFAULT, DUE, 2, ["CN"], settings=Settings(action_costs=costs))
    assert by_date(sim)[DUE + dt.timedelta(days=1)].cost == {"CNY": Decimal("0.07")}


def test_leaving_the_segment_cancels_pending_actions(engine: Engine) -> None:
    """An M1 call planned at DPD 30 and still pending when the account moves to M2 the next
    day is cancelled; the M2 call is planned instead."""
    with transaction(engine) as s:
        pf = factories.portfolio(s, code="CN")
        factories.invoice(
            s,
            pf,
            debtor=reachable_debtor(s),
            start_date=dt.date(2026, 4, 1),
            due_date=dt.date(2026, 5, 1),
        )
    source = """
strategy: calls
title: {en: Calls, zh: 电话}
segments:
  - id: m1
    when: {bucket: [M1]}
    path: [{id: call, due: 30, action: call_task}]
  - id: m2
    when: {bucket: [M2]}
    path: [{id: call, due: 31, action: call_task}]
"""
    sim = simulate(engine, source, dt.date(2026, 5, 30), 3)
    days = by_date(sim)
    assert sim.strategy == "calls"
    assert days[dt.date(2026, 5, 31)].actions == {("call_task", "early"): 1}
    assert days[dt.date(2026, 6, 1)].actions == {("call_task", "negotiation"): 1}
    assert [d.cancelled for d in sim.days] == [0, 0, 1]


# --- JSON -----------------------------------------------------------------------------------


def test_to_json_round_trips(engine: Engine) -> None:
    book(engine)
    sim = simulate(engine, DEFAULT, DUE, 11, ["CN"])
    data = to_json(sim)
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    day10 = data["days"][10]
    assert day10["date"] == "2026-07-11"
    assert {"action_type": "letter", "stage": "early", "planned": 1} in day10["actions"]
    assert day10["cost"] == {"CNY": "8.01"}
    assert day10["blocks"] == {"stop.dispute": 2}
    assert data["strategy"] == "default" and data["portfolios"] == ["CN"]


# --- nothing written ------------------------------------------------------------------------


def test_nothing_is_written(engine: Engine, tmp_path: Path) -> None:
    book(engine)
    with transaction(engine) as s:
        service.load_default(s)
        service.activate(s, "US", [service.ArmSpec("default", None, 1, "champion")], "test")
    run_cycle(engine, DUE - dt.timedelta(days=3))
    before = state(engine)
    assert before["counts"]["cycle_run"] == 1
    files = live_files(engine)
    sim = simulate(engine, DEFAULT.replace("Default", "Changed"), DUE, 12)
    assert sum(sum(d.actions.values()) for d in sim.days) > 0
    assert state(engine) == before
    if engine.dialect.name == "sqlite":
        assert live_files(engine) == files  # not a byte of the live database written
        assert not list(tmp_path.glob("recoup-sim-*"))  # the copy is gone


def live_files(engine: Engine) -> dict[str, str]:
    """SQLite: a digest of the database file and its write-ahead log."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return {}
    main = Path(engine.url.database)
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (main, main.with_name(main.name + "-wal"))
        if p.exists()
    }


# --- refusals -------------------------------------------------------------------------------


def test_invalid_file_days_and_portfolio(engine: Engine) -> None:
    book(engine)
    with pytest.raises(Invalid) as exc:
        simulate(engine, "strategy: x\n", DUE, 3)
    assert {e.field for e in exc.value.errors} >= {"title", "segments"}
    for days in (0, 367):
        with pytest.raises(Invalid) as exc:
            simulate(engine, DEFAULT, DUE, days)
        assert exc.value.errors[0].field == "days"
    with pytest.raises(Invalid) as exc:
        simulate(engine, DEFAULT, DUE, 3, ["CN", "NOPE"])
    assert exc.value.errors[0].field == "portfolio"
    assert "NOPE" in str(exc.value.errors[0].value)


def test_must_start_after_the_last_run(engine: Engine) -> None:
    book(engine)
    run_cycle(engine, DUE)
    for start in (DUE - dt.timedelta(days=1), DUE):
        with pytest.raises(Invalid) as exc:
            simulate(engine, DEFAULT, start, 3)
        error = exc.value.errors[0]
        assert error.field == "from"
        assert "after the last run date" in error.why and DUE.isoformat() in error.why
    # The day after: CN's and US's D+1 reminders, though no strategy is in force live.
    sim = simulate(engine, DEFAULT, DUE + dt.timedelta(days=1), 1)
    assert sim.days[0].actions == {("sms", "early"): 2}
    assert state(engine)["counts"]["cycle_run"] == 1
