"""Kept rate per collector and team, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from recoup.core.db import transaction, utcnow
from recoup.core.errors import Invalid
from recoup.ledger import service as ledger
from recoup.promises import service
from tests.auth import make_team, make_user

TODAY = dt.date(2026, 3, 1)
DUE = dt.date(2026, 3, 10)


def test_kept_rate_by_user_and_team(engine, desk):
    other_team = make_team(engine)
    other = make_user(engine, "collector", team_id=other_team, display_name="李四")
    plan = [  # (collector, amount, paid)
        (desk.user, 10_000, 10_000),  # kept
        (desk.user, 10_000, 4_000),  # partly kept
        (desk.user, 10_000, 0),  # broken
        (other, 5_000, 5_000),  # kept
    ]
    for n, (user, amount, paid) in enumerate(plan):
        account = desk.new_account(user)
        with transaction(engine) as s:
            service.create_promise(s, desk.principal(user), account, amount, DUE, today=TODAY)
            if paid:
                ledger.post_payment(
                    s,
                    account_id=account,
                    external_ref=f"S{n}",
                    amount=paid,
                    value_date=dt.date(2026, 3, 5),
                )
    # Open, due later (outside the period), and cancelled: not counted in the period.
    account = desk.new_account()
    with transaction(engine) as s:
        service.create_promise(s, desk.principal(), account, 100, dt.date(2026, 3, 25), today=TODAY)
        gone = service.create_promise(s, desk.principal(), desk.account_id, 100, DUE, today=TODAY)
        service.cancel_promise(s, desk.principal(), gone.id, "wrong account")
    with engine.begin() as conn:
        service.check_promises(conn, dt.date(2026, 3, 12), 0, 2**31, utcnow())

    with transaction(engine) as s:
        by_user = {
            r.user_id: r
            for r in service.promise_stats(s, "user", dt.date(2026, 3, 1), dt.date(2026, 3, 20))
        }
        by_team = {
            r.team_id: r
            for r in service.promise_stats(s, "team", dt.date(2026, 3, 1), dt.date(2026, 3, 31))
        }
    mine = by_user[desk.user.id]
    assert (mine.made, mine.kept, mine.partly_kept, mine.broken, mine.open) == (3, 1, 1, 1, 0)
    assert mine.kept_rate == Decimal("0.3333")
    assert (mine.promised_amount, mine.paid_amount, mine.currency) == (30_000, 14_000, "CNY")
    theirs = by_user[other.id]
    assert (theirs.name, theirs.kept_rate, theirs.made) == ("李四", Decimal("1.0000"), 1)
    team = by_team[desk.team_id]
    assert (team.made, team.open, team.kept_rate) == (4, 1, Decimal("0.3333"))
    assert team.name.startswith("Team ")


def test_bad_period_is_refused(engine):
    with pytest.raises(Invalid), transaction(engine) as s:
        service.promise_stats(s, "user", dt.date(2026, 3, 2), dt.date(2026, 3, 1))
