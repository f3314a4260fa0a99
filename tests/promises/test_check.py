"""The daily check of promises against payments (set-based SQL), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import random

from sqlalchemy import select, text

from recoup.core.db import transaction, utcnow
from recoup.cycle.models import CycleRun
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.ledger.models import Account
from recoup.promises import rules, service
from recoup.promises.models import Promise
from recoup.workspace.models import WorkTask

TODAY = dt.date(2026, 3, 1)
DUE = dt.date(2026, 3, 10)
ALL = (0, 2**31)
_ref = itertools.count(1)


def promise(desk, amount=10_000, due=DUE, today=TODAY, account_id=None):
    with transaction(desk.engine) as s:
        return service.create_promise(
            s, desk.principal(), account_id or desk.account_id, amount, due, today=today
        ).id


def pay(engine, account_id, amount, value_date):
    with transaction(engine) as s:
        payment, _ = ledger.post_payment(
            s,
            account_id=account_id,
            external_ref=f"PAY-{next(_ref)}",
            amount=amount,
            value_date=value_date,
        )
        return payment.id


def check(engine, as_of, lo_hi=ALL):
    with engine.begin() as conn:
        return service.check_promises(conn, as_of, lo_hi[0], lo_hi[1], utcnow())


def get(engine, pid):
    with transaction(engine) as s:
        p = s.get_one(Promise, pid)
        state = s.get_one(Account, p.account_id).promise_state
        return p.status, p.paid_amount, p.checked_on, state


def tasks(engine):
    with transaction(engine) as s:
        return [
            (t.kind, t.promise_id, t.user_id, t.status, t.created_by, t.due_at, t.account_id)
            for t in s.scalars(select(WorkTask).order_by(WorkTask.id))
        ]


def snapshot(engine):
    with engine.connect() as conn:
        return [
            [tuple(str(v) for v in r) for r in conn.execute(text(q))]
            for q in (
                "SELECT id, status, paid_amount, checked_on FROM promise ORDER BY id",
                "SELECT id, promise_state FROM account ORDER BY id",
                "SELECT id, kind, promise_id, user_id, due_at, note FROM work_task ORDER BY id",
            )
        ]


def test_kept_early_as_soon_as_paid_in_full(engine, desk):
    pid = promise(desk)
    pay(engine, desk.account_id, 6_000, dt.date(2026, 3, 2))
    assert check(engine, dt.date(2026, 3, 2))["promises_kept"] == 0
    assert get(engine, pid) == ("open", 6_000, dt.date(2026, 3, 2), "pending")
    pay(engine, desk.account_id, 4_000, dt.date(2026, 3, 3))
    counts = check(engine, dt.date(2026, 3, 3))
    assert counts == {"promises_kept": 1, "promises_partly_kept": 0, "promises_broken": 0}
    assert get(engine, pid) == ("kept", 10_000, dt.date(2026, 3, 3), "kept")
    assert tasks(engine) == []


def test_broken_after_grace_with_one_follow_up(engine, desk):
    pid = promise(desk)
    assert check(engine, dt.date(2026, 3, 11))["promises_broken"] == 0  # grace day
    assert get(engine, pid)[0] == "open"
    counts = check(engine, dt.date(2026, 3, 12))
    assert counts["promises_broken"] == 1
    assert get(engine, pid) == ("broken", 0, dt.date(2026, 3, 12), "broken")
    # 09:00 in Shanghai on the next day is 01:00 UTC.
    expected_due = dt.datetime(2026, 3, 13, 1, 0, tzinfo=dt.UTC)
    assert tasks(engine) == [
        ("broken_promise", pid, desk.user.id, "open", "cycle", expected_due, desk.account_id)
    ]
    before = snapshot(engine)
    again = check(engine, dt.date(2026, 3, 12))
    assert again == dict.fromkeys(service.CHECK_KEYS, 0)
    assert snapshot(engine) == before
    check(engine, dt.date(2026, 3, 13))  # a later day: nothing more for a closed promise
    assert len(tasks(engine)) == 1


def test_partly_kept(engine, desk):
    pid = promise(desk)
    pay(engine, desk.account_id, 4_000, dt.date(2026, 3, 9))
    assert check(engine, dt.date(2026, 3, 12))["promises_partly_kept"] == 1
    assert get(engine, pid) == ("partly_kept", 4_000, dt.date(2026, 3, 12), "broken")
    assert [t[0:2] for t in tasks(engine)] == [("broken_promise", pid)]


def test_only_posted_payments_from_the_promise_to_the_check_count(engine, desk):
    pay(engine, desk.account_id, 10_000, dt.date(2026, 2, 28))  # before the promise
    reversed_id = pay(engine, desk.account_id, 10_000, dt.date(2026, 3, 2))
    with transaction(engine) as s:
        ledger.reverse_payment(s, reversed_id, "bounced")
    pay(engine, desk.account_id, 10_000, dt.date(2026, 3, 20))  # after the check date
    pid = promise(desk)
    check(engine, dt.date(2026, 3, 12))
    assert get(engine, pid)[:2] == ("broken", 0)


def test_only_the_partition_is_checked(engine, desk):
    other = desk.new_account()
    mine, theirs = promise(desk), promise(desk, account_id=other)
    lo, hi = sorted((desk.account_id, other))
    check(engine, dt.date(2026, 3, 12), (lo, hi))  # hi is outside, as in the cycle
    first = mine if desk.account_id == lo else theirs
    second = theirs if first == mine else mine
    assert get(engine, first)[0] == "broken"
    assert get(engine, second)[0] == "open"


def test_sql_agrees_with_the_rule(engine, desk):
    rng = random.Random(7)
    as_of = dt.date(2026, 3, 15)
    cases = []
    for _ in range(12):
        account = desk.new_account()
        amount = rng.randint(1, 20_000)
        made = as_of - dt.timedelta(days=rng.randint(0, 20))
        due = made + dt.timedelta(days=rng.randint(0, 10))
        pid = promise(desk, amount, due, made, account_id=account)
        paid = 0
        for _ in range(rng.randint(0, 2)):
            value_date = made + dt.timedelta(days=rng.randint(-2, 25))
            n = rng.randint(1, amount)
            pay(desk.engine, account, n, value_date)
            if made <= value_date <= as_of:
                paid += n
        cases.append((pid, amount, paid, due))
    check(engine, as_of)
    for pid, amount, paid, due in cases:
        expected = rules.verdict(amount, paid, due, as_of, 1)
        status, paid_amount, _, state = get(engine, pid)
        assert (status, paid_amount) == (expected, paid)
        assert state == rules.STATE_OF_STATUS[expected]


def test_the_cycle_checks_promises_and_records_the_counts(engine, desk):
    pid = promise(desk)
    kept = promise(desk, account_id=desk.new_account())
    with transaction(engine) as s:
        account_id = s.get_one(Promise, kept).account_id
    pay(engine, account_id, 10_000, dt.date(2026, 3, 5))
    result = run_cycle(engine, dt.date(2026, 3, 12), partitions=2)
    assert result.counts["promises_broken"] == 1
    assert result.counts["promises_kept"] == 1
    assert result.counts["promises_partly_kept"] == 0
    with transaction(engine) as s:
        run = s.scalars(select(CycleRun)).one()
        assert run.counts["promises_broken"] == 1
    assert get(engine, pid)[0] == "broken"
    assert len(tasks(engine)) == 1
    before = snapshot(engine)
    run_cycle(engine, dt.date(2026, 3, 12), partitions=2)
    assert snapshot(engine) == before
