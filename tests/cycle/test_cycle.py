"""The daily cycle on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from recoup.core.db import make_engine, transaction
from recoup.core.errors import Conflict, Invalid
from recoup.core.schema import upgrade
from recoup.cycle.models import CyclePartition, CycleRun
from recoup.cycle.service import run_cycle
from recoup.ledger import rules, service
from recoup.ledger.models import Account, Instalment, LedgerEntry
from tests import factories
from tests.conftest import DATABASES, PG_URL

# --------------------------------------------------------------------------- helpers


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the cycle may change, in a comparable form (ids included)."""
    with engine.connect() as conn:
        accounts = conn.execute(
            text(
                "SELECT id, status, dpd, bucket, stage, oldest_unpaid_due, principal_balance, "
                "interest_balance, fee_balance, penalty_balance, late_fee_balance, credit_balance, "
                "overdue_amount, charges_total, recognised_through, accrued_through, status_since "
                "FROM account ORDER BY id"
            )
        ).all()
        entries = conn.execute(
            text(
                "SELECT account_id, instalment_seq, entry_date, kind, component, amount "
                "FROM ledger_entry ORDER BY account_id, kind, component, entry_date, "
                "instalment_seq, amount"
            )
        ).all()
        insts = conn.execute(
            text("SELECT account_id, seq, is_paid, principal_paid FROM instalment ORDER BY id")
        ).all()
    return {
        "accounts": [tuple(str(v) for v in r) for r in accounts],
        "entries": [tuple(str(v) for v in r) for r in entries],
        "instalments": [tuple(r) for r in insts],
    }


def build_portfolio(engine: Engine, n: int, seed: int) -> list[int]:
    """A small mixed portfolio: loans of every method and invoices, some partly paid."""
    rng = random.Random(seed)
    ids: list[int] = []
    with transaction(engine) as s:
        pf = factories.portfolio(s, code=f"P{seed}", cap_preset="annual_rate", cap_rate_ppm=240_000)
        for k in range(n):
            start = dt.date(2025, 6, 1) + dt.timedelta(days=rng.randint(0, 300))
            if rng.random() < 0.3:
                acc = factories.invoice(
                    s,
                    pf,
                    external_ref=f"I{seed}-{k}",
                    principal=rng.randint(10_000, 10_000_000),
                    start_date=start,
                    due_date=start + dt.timedelta(days=rng.choice([30, 60])),
                    penalty_rate_ppm=rng.choice([0, 50_000, 182_500]),
                    late_fee_rate_ppm=rng.choice([0, 20_000]),
                    late_fee_fixed=0,
                    grace_days=rng.randint(0, 5),
                )
            else:
                acc = factories.loan(
                    s,
                    pf,
                    external_ref=f"L{seed}-{k}",
                    principal=rng.randint(100_000, 50_000_000),
                    start_date=start,
                    term=rng.choice([3, 6, 12, 24]),
                    method=rng.choice(rules.METHODS),
                    interest_rate_ppm=rng.choice([0, 80_000, 150_000, 200_000]),
                    penalty_rate_ppm=rng.choice([0, 182_500, 365_000]),
                    late_fee_fixed=rng.choice([0, 5_000]),
                    grace_days=rng.randint(0, 5),
                )
            ids.append(acc.id)
            if rng.random() < 0.5:
                service.post_payment(
                    s,
                    account_id=acc.id,
                    external_ref=f"PAY{seed}-{k}",
                    amount=rng.randint(1, acc.principal),
                    value_date=start + dt.timedelta(days=rng.randint(20, 200)),
                )
    return ids


def empty(engine: Engine) -> None:
    """Delete every row the ledger and the cycle keep (between Hypothesis examples)."""
    with engine.begin() as conn:
        for table in (
            "cycle_partition",
            "cycle_run",
            "ledger_entry",
            "payment",
            "instalment",
            "account",
            "product",
            "portfolio",
            "creditor",
            "change_log",
            "contact_point",
            "debtor_flag",
            "debtor",
        ):
            conn.execute(text(f"DELETE FROM {table}"))


def fresh_engine(kind: str, tmp_path: Path) -> Iterator[Engine]:
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / (uuid.uuid4().hex + '.db')}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"recoup_twin_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    upgrade(engine)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=DATABASES)
def twins(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two empty databases of the same kind, to compare two histories of the same portfolio."""
    first = fresh_engine(request.param, tmp_path)
    second = fresh_engine(request.param, tmp_path)
    yield next(first), next(second)
    for gen in (first, second):
        next(gen, None)


# --------------------------------------------------------------------------- behaviour


def test_an_unpaid_loan_ages_through_buckets_and_stages(engine: Engine) -> None:
    with transaction(engine) as s:
        acc_id = factories.loan(s, start_date=dt.date(2026, 1, 15)).id
    expectations = [
        (dt.date(2026, 2, 15), 0, "M0", "current", "current"),  # due today: not late yet
        (dt.date(2026, 2, 16), 1, "M1", "early", "delinquent"),
        (dt.date(2026, 3, 20), 33, "M2", "negotiation", "delinquent"),
        (dt.date(2026, 5, 20), 94, "M4", "hard", "delinquent"),
        (dt.date(2026, 9, 1), 198, "M7+", "recovery", "delinquent"),
    ]
    for day, dpd, bucket, stage, status in expectations:
        run_cycle(engine, day)
        with Session(engine) as s:
            acc = s.get_one(Account, acc_id)
            assert (acc.dpd, acc.bucket, acc.stage, acc.status) == (dpd, bucket, stage, status), day
            assert service.cached_balances(acc) == service.derive_balances(s, acc_id)


def test_a_cured_account_returns_to_current_and_a_paid_one_settles(engine: Engine) -> None:
    with transaction(engine) as s:
        acc_id = factories.invoice(s, penalty_rate_ppm=0).id
    run_cycle(engine, dt.date(2026, 7, 10))
    with transaction(engine) as s:
        assert s.get_one(Account, acc_id).status == "delinquent"
        service.post_payment(
            s,
            account_id=acc_id,
            external_ref="X1",
            amount=5_000_000,
            value_date=dt.date(2026, 7, 11),
        )
    run_cycle(engine, dt.date(2026, 7, 11))
    with Session(engine) as s:
        acc = s.get_one(Account, acc_id)
        assert (acc.status, acc.dpd, acc.bucket, acc.overdue_amount) == ("settled", 0, "M0", 0)

    with transaction(engine) as s:
        loan_id = factories.loan(s, start_date=dt.date(2026, 5, 1), interest_rate_ppm=0).id
    run_cycle(engine, dt.date(2026, 7, 20))
    with transaction(engine) as s:
        loan = s.get_one(Account, loan_id)
        assert loan.status == "delinquent" and loan.dpd == 49
        # pays what is overdue (two instalments + late fees + penalty): cured, not settled
        service.post_payment(
            s,
            account_id=loan_id,
            external_ref="X2",
            amount=loan.overdue_amount,
            value_date=dt.date(2026, 7, 21),
        )
    run_cycle(engine, dt.date(2026, 7, 21))
    with Session(engine) as s:
        loan = s.get_one(Account, loan_id)
        assert (loan.status, loan.dpd, loan.status_since) == ("current", 0, dt.date(2026, 7, 21))


def test_running_a_date_twice_changes_nothing(engine: Engine) -> None:
    build_portfolio(engine, 25, seed=1)
    run_cycle(engine, dt.date(2026, 6, 1))
    first = snapshot(engine)
    again = run_cycle(engine, dt.date(2026, 6, 1))
    assert again.partitions_done == 0
    assert snapshot(engine) == first


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    offsets=st.lists(st.integers(1, 120), min_size=1, max_size=3),
    parts=st.integers(1, 5),
)
def test_a_run_repeated_equals_one_run(
    engine: Engine, seed: int, offsets: list[int], parts: int
) -> None:
    """Property: after any sequence of dates, running the last date again changes nothing,
    however the run is partitioned — even when the record of the run is lost and every
    statement runs again (the accounts' own watermarks prevent double accrual)."""
    empty(engine)
    build_portfolio(engine, 10, seed=seed)
    day = dt.date(2025, 9, 1)
    for offset in offsets:
        day += dt.timedelta(days=offset)
        run_cycle(engine, day, partitions=parts)
    once = snapshot(engine)
    again = run_cycle(engine, day, partitions=parts)
    assert again.partitions_done == 0
    assert snapshot(engine) == once
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cycle_partition"))
        conn.execute(text("DELETE FROM cycle_run WHERE as_of = :d"), {"d": day})
    rerun = run_cycle(engine, day, partitions=parts)
    assert rerun.partitions_done == parts
    assert snapshot(engine) == once


def test_cycle_run_record_has_counts_and_duration(engine: Engine) -> None:
    build_portfolio(engine, 20, seed=2)
    result = run_cycle(engine, dt.date(2026, 6, 1), partitions=4)
    with Session(engine) as s:
        run = s.scalars(select(CycleRun)).one()
        assert run.status == "completed" and run.finished_at is not None
        assert run.duration_seconds > 0
        assert run.counts["accounts"] == 20
        assert run.counts["delinquent"] == result.counts["delinquent"] > 0
        assert s.scalar(select(func.count(CyclePartition.id))) == 4
        delinquent = s.scalar(select(func.count(Account.id)).where(Account.dpd > 0))
        assert run.counts["delinquent"] == delinquent


def test_dates_cannot_go_backwards_and_an_unfinished_run_is_resumed_first(engine: Engine) -> None:
    build_portfolio(engine, 10, seed=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_cycle(engine, dt.date(2026, 6, 1), partitions=4, fail_after=2)
    with pytest.raises(Conflict, match="2026-06-01"):
        run_cycle(engine, dt.date(2026, 6, 2))
    run_cycle(engine, dt.date(2026, 6, 1))
    run_cycle(engine, dt.date(2026, 6, 2))
    with pytest.raises(Invalid, match="later date"):
        run_cycle(engine, dt.date(2026, 5, 30))


def test_every_balance_is_derivable_from_the_ledger_after_cycles(engine: Engine) -> None:
    ids = build_portfolio(engine, 30, seed=4)
    for day in (dt.date(2026, 3, 1), dt.date(2026, 5, 17), dt.date(2026, 9, 30)):
        run_cycle(engine, day)
    with Session(engine) as s:
        for account_id in ids:
            acc = s.get_one(Account, account_id)
            assert service.cached_balances(acc) == service.derive_balances(s, account_id)


def test_accrual_never_exceeds_the_cap(engine: Engine) -> None:
    with transaction(engine) as s:
        pf = factories.portfolio(s, cap_preset="annual_rate", cap_rate_ppm=150_000)
        acc_id = factories.loan(
            s,
            pf,
            interest_rate_ppm=140_000,
            penalty_rate_ppm=365_000,
            late_fee_fixed=50_000,
            start_date=dt.date(2025, 1, 1),
        ).id
    for day in (dt.date(2025, 6, 1), dt.date(2025, 12, 1), dt.date(2026, 6, 1)):
        run_cycle(engine, day)
        with Session(engine) as s:
            acc = s.get_one(Account, acc_id)
            cap = rules.cap_total(acc.principal, acc.cap_rate_ppm, acc.start_date, day)
            assert cap is not None
            assert acc.charges_total <= cap
            charged = s.scalar(
                select(func.sum(LedgerEntry.amount)).where(
                    LedgerEntry.account_id == acc_id,
                    LedgerEntry.amount > 0,
                    LedgerEntry.component != "principal",
                )
            )
            assert charged == acc.charges_total


def test_skipped_dates_are_caught_up(twins: tuple[Engine, Engine]) -> None:
    daily, skipping = twins
    for eng in twins:
        build_portfolio(eng, 15, seed=5)
    days = [dt.date(2026, 4, 1) + dt.timedelta(days=k) for k in range(6)]
    for day in days:
        run_cycle(daily, day)
    run_cycle(skipping, days[0])
    run_cycle(skipping, days[-1])
    a, b = snapshot(daily)["accounts"], snapshot(skipping)["accounts"]
    for row_a, row_b in zip(a, b, strict=True):
        # same state; accruals differ at most by rounding, one minor unit per run
        assert row_a[:9] == row_b[:9]
        for col in (9, 10, 12, 13):
            assert abs(int(row_a[col]) - int(row_b[col])) <= len(days)


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10_000), crash_after=st.integers(0, 5), parts=st.integers(2, 6))
def test_a_killed_and_restarted_run_equals_an_uninterrupted_one(
    twins: tuple[Engine, Engine], seed: int, crash_after: int, parts: int
) -> None:
    smooth, crashed = twins
    for eng in twins:
        empty(eng)  # each example starts from empty databases
        build_portfolio(eng, 12, seed=seed)
    day = dt.date(2026, 6, 1)
    run_cycle(smooth, day, partitions=parts)
    if crash_after < parts:
        with pytest.raises(RuntimeError):
            run_cycle(crashed, day, partitions=parts, fail_after=crash_after)
    run_cycle(crashed, day, partitions=parts)
    assert _normalised(snapshot(crashed)) == _normalised(snapshot(smooth))


def _normalised(snap: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Ids differ between two databases filled in the same order only by their offset."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for key, rows in snap.items():
        if not rows:
            out[key] = rows
            continue
        first = int(rows[0][0])
        out[key] = [(int(r[0]) - first, *r[1:]) for r in rows]
    return out


def test_sql_accrual_agrees_with_the_scalar_rule(engine: Engine) -> None:
    ids = build_portfolio(engine, 40, seed=7)
    run_cycle(engine, dt.date(2026, 4, 1))
    day = dt.date(2026, 5, 13)
    expected: dict[int, rules.Accrual] = {}
    with Session(engine) as s:
        for account_id in ids:
            acc = s.get_one(Account, account_id)
            insts = s.scalars(
                select(Instalment).where(
                    Instalment.account_id == account_id, Instalment.is_paid.is_(False)
                )
            ).all()
            newly = sum(
                i.interest_due + i.fee_due
                for i in insts
                if i.due_date <= day
                and (acc.recognised_through is None or i.due_date > acc.recognised_through)
            )
            expected[account_id] = rules.accrue(
                [
                    rules.OpenInstalment(
                        i.seq,
                        i.due_date,
                        i.principal_due - i.principal_paid,
                        (i.principal_due - i.principal_paid)
                        + (i.interest_due - i.interest_paid)
                        + (i.fee_due - i.fee_paid),
                    )
                    for i in insts
                ],
                as_of=day,
                accrued_through=acc.accrued_through,
                penalty_rate_ppm=acc.penalty_rate_ppm,
                late_fee_fixed=acc.late_fee_fixed,
                late_fee_rate_ppm=acc.late_fee_rate_ppm,
                grace_days=acc.grace_days,
                principal=acc.principal,
                cap_rate_ppm=acc.cap_rate_ppm,
                start_date=acc.start_date,
                charges_total=acc.charges_total + newly,
            )
    run_cycle(engine, day)
    with Session(engine) as s:
        for account_id, want in expected.items():
            got = dict(
                s.execute(
                    select(LedgerEntry.component, func.sum(LedgerEntry.amount))
                    .where(
                        LedgerEntry.account_id == account_id,
                        LedgerEntry.kind == "accrual",
                        LedgerEntry.entry_date == day,
                    )
                    .group_by(LedgerEntry.component)
                ).all()
            )
            assert int(got.get("penalty", 0)) == want.penalty, account_id
            assert int(got.get("late_fee", 0)) == want.late_fee, account_id


KILLER = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys
    from sqlalchemy import event
    from recoup.core.db import make_engine
    from recoup.cycle.service import run_cycle

    engine = make_engine(sys.argv[1])
    kill_at = int(sys.argv[2])
    seen = {"updates": 0}

    @event.listens_for(engine, "before_cursor_execute")
    def die_midway(conn, cursor, statement, params, context, executemany):
        # SIGKILL in the middle of a partition's transaction, right before its account update
        if statement.lstrip().startswith("UPDATE account SET"):
            seen["updates"] += 1
            if seen["updates"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    run_cycle(engine, dt.date(2026, 6, 1), partitions=4)
    """
)


def test_a_sigkilled_run_resumes_to_the_same_end(
    twins: tuple[Engine, Engine], tmp_path: Path
) -> None:
    smooth, killed = twins
    for eng in twins:
        build_portfolio(eng, 20, seed=11)
    run_cycle(smooth, dt.date(2026, 6, 1), partitions=4)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    url = killed.url.render_as_string(hide_password=False)
    killed.dispose()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(script), url, "3"], env=env, timeout=120)
    assert proc.returncode == -9  # really killed
    with Session(killed) as s:
        assert s.scalar(select(CycleRun.status)) == "running"
        assert s.scalar(select(func.count(CyclePartition.id))) < 4
    run_cycle(killed, dt.date(2026, 6, 1), partitions=4)
    assert _normalised(snapshot(killed)) == _normalised(snapshot(smooth))


def _planned(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT account_id, step, planned_date, status, rule_id, scheduled_at "
                "FROM planned_action ORDER BY account_id, step, planned_date"
            )
        ).all()
    return [tuple(str(v) for v in r) for r in rows]


def test_partitions_done_at_the_same_time_end_as_one_after_the_other(
    twins: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL runs several partitions at once (cycle_workers); the end state, planned
    actions included, is the one of a run that did them in turn, also when a worker fails
    midway and the run is started again. (On SQLite both runs are sequential.)"""
    from recoup.core.settings import get_settings
    from recoup.cycle import service as cycle
    from recoup.strategy import service as strategy

    one, many = twins
    for eng in twins:
        build_portfolio(eng, 40, seed=11)
        with Session(eng) as s, s.begin():
            strategy.default_everywhere(s, "t")
    serial = get_settings().model_copy(update={"cycle_workers": 1})
    parallel = get_settings().model_copy(update={"cycle_workers": 4})
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(3)]
    for day in days[:2]:
        run_cycle(one, day, partitions=8, settings=serial)
        run_cycle(many, day, partitions=8, settings=parallel)
    run_cycle(one, days[2], partitions=8, settings=serial)
    # one worker fails on its partition 5: the others stop after the partition in hand
    real = cycle.run_partition

    def failing(conn: Any, run: Any, partition: int, *args: Any, **kw: Any) -> Any:
        if partition == 5:
            raise RuntimeError("worker lost")
        return real(conn, run, partition, *args, **kw)

    monkeypatch.setattr(cycle, "run_partition", failing)
    with pytest.raises(RuntimeError, match="worker lost"):
        run_cycle(many, days[2], partitions=8, settings=parallel)
    monkeypatch.setattr(cycle, "run_partition", real)
    run_cycle(many, days[2], partitions=8, settings=parallel)
    assert _normalised(snapshot(many)) == _normalised(snapshot(one))
    assert _normalised({"p": _planned(many)})["p"] == _normalised({"p": _planned(one)})["p"]
    assert _planned(one), "the default strategy planned something"
