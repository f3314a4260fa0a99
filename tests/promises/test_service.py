"""Taking, replacing, cancelling and listing promises, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from recoup.access.models import AuditLog
from recoup.core.db import transaction
from recoup.core.errors import Conflict, Forbidden, Invalid
from recoup.ledger.models import Account
from recoup.promises import service
from recoup.promises.models import Promise
from tests.auth import make_user

TODAY = dt.date(2026, 3, 1)
DUE = dt.date(2026, 3, 10)


def rows(engine):
    with transaction(engine) as s:
        return (
            int(s.scalar(select(func.count(Promise.id))) or 0),
            int(s.scalar(select(func.count(AuditLog.id)).where(AuditLog.entity == "promise")) or 0),
        )


def state(engine, account_id):
    with transaction(engine) as s:
        return s.get_one(Account, account_id).promise_state


def test_create_records_who_and_sets_pending(engine, desk):
    p = desk.principal()
    with transaction(engine) as s:
        promise = service.create_promise(
            s, p, desk.account_id, 50_000, DUE, "alipay", today=TODAY, note="工资日还"
        )
        pid = promise.id
    with transaction(engine) as s:
        got = s.get_one(Promise, pid)
        assert (got.amount, got.currency, got.due_date, got.channel) == (
            50_000,
            "CNY",
            DUE,
            "alipay",
        )
        assert (got.status, got.created_on, got.paid_amount) == ("open", TODAY, 0)
        assert (got.user_id, got.team_id, got.created_by) == (
            desk.user.id,
            desk.team_id,
            desk.user.username,
        )
        audit = s.scalars(select(AuditLog).where(AuditLog.entity == "promise")).one()
        assert (audit.action, audit.entity_id, audit.account_id) == (
            "create",
            str(pid),
            desk.account_id,
        )
    assert state(engine, desk.account_id) == "pending"


def test_a_new_promise_replaces_the_open_one(engine, desk):
    p = desk.principal()
    with transaction(engine) as s:
        first = service.create_promise(s, p, desk.account_id, 10_000, DUE, today=TODAY).id
    with transaction(engine) as s:
        second = service.create_promise(s, p, desk.account_id, 20_000, DUE, today=TODAY).id
    with transaction(engine) as s:
        assert s.get_one(Promise, first).status == "cancelled"
        assert s.get_one(Promise, second).status == "open"
        page = service.list_promises(s, p, desk.account_id, status="open")
        assert [x.id for x in page.items] == [second] and page.total == 1


@pytest.mark.parametrize(
    ("amount", "due", "channel", "field"),
    [
        (10_000, TODAY - dt.timedelta(days=1), None, "due_date"),
        (10_000, TODAY + dt.timedelta(days=31), None, "due_date"),
        (0, DUE, None, "amount"),
        (-5, DUE, None, "amount"),
        (10**10, DUE, None, "amount"),  # more than the account owes
        (10_000, DUE, "bitcoin", "channel"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(engine, desk, amount, due, channel, field):
    p = desk.principal()
    with transaction(engine) as s:
        open_id = service.create_promise(s, p, desk.account_id, 10_000, DUE, today=TODAY).id
    before = rows(engine)
    with pytest.raises(Invalid) as exc, transaction(engine) as s:
        service.create_promise(s, p, desk.account_id, amount, due, channel, today=TODAY)
    assert [e.field for e in exc.value.errors] == [field]
    assert exc.value.errors[0].why.count("/") >= 1  # English / 中文
    assert rows(engine) == before
    with transaction(engine) as s:
        assert s.get_one(Promise, open_id).status == "open"  # not replaced


def test_past_date_says_why(engine, desk):
    with pytest.raises(Invalid) as exc, transaction(engine) as s:
        service.create_promise(
            s, desk.principal(), desk.account_id, 100, dt.date(2026, 2, 1), today=TODAY
        )
    assert "due_date" in str(exc.value) and "承诺日期已过" in str(exc.value)


def test_amount_may_be_all_that_is_owed(engine, desk):
    with transaction(engine) as s:
        owed = s.get_one(Account, desk.account_id).principal_balance
        assert owed > 0
        service.create_promise(s, desk.principal(), desk.account_id, owed, DUE, today=TODAY)


def test_account_of_someone_else_is_forbidden(engine, desk):
    other = make_user(engine, "collector")
    before = rows(engine)
    with pytest.raises(Forbidden), transaction(engine) as s:
        service.create_promise(s, desk.principal(other), desk.account_id, 100, DUE, today=TODAY)
    assert rows(engine) == before
    with transaction(engine) as s:
        mine = service.create_promise(s, desk.principal(), desk.account_id, 100, DUE, today=TODAY)
        pid = mine.id
    with pytest.raises(Forbidden), transaction(engine) as s:
        service.cancel_promise(s, desk.principal(other), pid, "oops")
    with transaction(engine) as s:
        assert service.list_promises(s, desk.principal(other)).total == 0
        assert service.list_promises(s, desk.principal()).total == 1


def test_cancel(engine, desk):
    p = desk.principal()
    with transaction(engine) as s:
        pid = service.create_promise(s, p, desk.account_id, 100, DUE, today=TODAY).id
    with pytest.raises(Invalid), transaction(engine) as s:
        service.cancel_promise(s, p, pid, "  ")
    with transaction(engine) as s:
        got = service.cancel_promise(s, p, pid, "taken by mistake / 误登记")
        assert got.status == "cancelled" and "误登记" in (got.note or "")
    assert state(engine, desk.account_id) == "none"
    with pytest.raises(Conflict), transaction(engine) as s:
        service.cancel_promise(s, p, pid, "again")
    with transaction(engine) as s:
        actions = s.scalars(
            select(AuditLog.action).where(AuditLog.entity == "promise").order_by(AuditLog.id)
        ).all()
        assert list(actions) == ["create", "cancel"]


def test_list_filters(engine, desk):
    p = desk.principal()
    second = desk.new_account()
    with transaction(engine) as s:
        service.create_promise(s, p, desk.account_id, 100, DUE, today=TODAY)
        service.create_promise(s, p, second, 100, dt.date(2026, 3, 20), today=TODAY)
    with transaction(engine) as s:
        assert service.list_promises(s, p).total == 2
        assert service.list_promises(s, p, due_to=dt.date(2026, 3, 15)).total == 1
        assert service.list_promises(s, p, due_from=dt.date(2026, 3, 15)).total == 1
        assert service.list_promises(s, p, second).items[0].account_id == second
        assert service.list_promises(s, p, status="kept").total == 0
        page = service.list_promises(s, p, limit=1, offset=1)
        assert (len(page.items), page.total) == (1, 2)
        with pytest.raises(Invalid):
            service.list_promises(s, p, status="maybe")
