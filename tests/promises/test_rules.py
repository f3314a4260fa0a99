"""The pure decisions about promises, with plain values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from recoup.promises import rules

TODAY = dt.date(2026, 3, 1)


def fields(errors):
    return {e.field for e in errors}


def test_a_good_promise_has_no_problem():
    assert rules.promise_problems(100, TODAY, "alipay", today=TODAY, owed=100, max_days=30) == []
    day30 = TODAY + dt.timedelta(days=30)
    assert rules.promise_problems(1, day30, None, today=TODAY, owed=100, max_days=30) == []


def test_every_problem_is_named_in_both_languages():
    errors = rules.promise_problems(
        0, TODAY - dt.timedelta(days=1), "bitcoin", today=TODAY, owed=100, max_days=30
    )
    assert fields(errors) == {"amount", "due_date", "channel"}
    past = next(e for e in errors if e.field == "due_date")
    assert past.why == "in the past / 承诺日期已过"
    too_far = rules.promise_problems(
        5, TODAY + dt.timedelta(days=31), None, today=TODAY, owed=100, max_days=30
    )
    assert fields(too_far) == {"due_date"} and "30" in too_far[0].why
    over = rules.promise_problems(101, TODAY, None, today=TODAY, owed=100, max_days=30)
    assert fields(over) == {"amount"} and "欠款" in over[0].why


def test_verdict():
    due = dt.date(2026, 3, 10)
    assert rules.verdict(100, 100, due, dt.date(2026, 3, 2), 1) == "kept"  # early
    assert rules.verdict(100, 0, due, dt.date(2026, 3, 11), 1) == "open"  # in grace
    assert rules.verdict(100, 0, due, dt.date(2026, 3, 12), 1) == "broken"
    assert rules.verdict(100, 40, due, dt.date(2026, 3, 12), 1) == "partly_kept"
    assert rules.verdict(100, 40, due, dt.date(2026, 3, 11), 0) == "partly_kept"


def test_kept_rate_and_owed():
    assert rules.kept_rate(0, 0, 0) is None
    assert rules.kept_rate(2, 1, 0) == Decimal("0.6667")
    assert rules.kept_rate(1, 0, 0) == Decimal("1.0000")
    owed = {"principal": 1000, "interest": 10, "penalty": 5, "credit": 3}
    assert rules.owed_total(owed) == 1012
