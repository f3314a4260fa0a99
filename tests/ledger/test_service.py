"""Ledger use cases on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from recoup.core.db import transaction
from recoup.core.errors import Conflict, Invalid, NotFound
from recoup.ledger import service
from recoup.ledger.models import ChangeLog, Instalment, LedgerEntry, Payment
from tests import factories


def test_debtor_profile_changes_keep_history(engine: Engine) -> None:
    with transaction(engine) as s:
        d = factories.debtor(s, employer="上海某科技公司", region="上海")
        service.update_debtor(s, d.id, {"employer": "杭州某物流公司", "region": "浙江"}, by="alice")
        service.update_debtor(s, d.id, {"employer": "杭州某物流公司"}, by="bob")  # no change
        rows = s.scalars(select(ChangeLog).where(ChangeLog.debtor_id == d.id)).all()
    changed = {(r.field, r.old_value, r.new_value, r.changed_by) for r in rows}
    assert ("employer", "上海某科技公司", "杭州某物流公司", "alice") in changed
    assert ("region", "上海", "浙江", "alice") in changed
    assert not any(r.changed_by == "bob" for r in rows)


def test_bad_profile_values_name_the_field(engine: Engine) -> None:
    with transaction(engine) as s:
        d = factories.debtor(s)
        with pytest.raises(Invalid) as err:
            service.update_debtor(s, d.id, {"timezone": "Mars/Base", "language": "fr"}, by="x")
    fields = {e.field for e in err.value.errors}
    assert fields == {"timezone", "language"}


def test_contact_points_and_their_history(engine: Engine) -> None:
    with transaction(engine) as s:
        d = factories.debtor(s)
        cp = service.add_contact_point(s, d.id, "phone", "13812345678", owner="self", by="alice")
        service.add_contact_point(
            s, d.id, "phone", "13900001111", owner="emergency", owner_name="李四", by="alice"
        )
        service.update_contact_point(
            s, cp.id, {"is_verified": True, "do_not_contact": True}, by="carol"
        )
        with pytest.raises(Invalid, match="owner"):
            service.add_contact_point(s, d.id, "phone", "13900001111", owner="neighbour")
        with pytest.raises(Invalid, match="email"):
            service.add_contact_point(s, d.id, "email", "not-an-address")
        history = s.scalars(
            select(ChangeLog).where(
                ChangeLog.entity == "contact_point", ChangeLog.entity_id == cp.id
            )
        ).all()
    assert {h.field for h in history} >= {"value", "is_verified", "do_not_contact"}


def test_flags_keep_who_when_why(engine: Engine) -> None:
    with transaction(engine) as s:
        d = factories.debtor(s)
        flag = service.set_flag(s, d.id, "dispute", "disputes the late fee", by="alice")
        with pytest.raises(Conflict):
            service.set_flag(s, d.id, "dispute", "again", by="alice")
        with pytest.raises(Invalid, match="flag"):
            service.set_flag(s, d.id, "angry", "x", by="alice")
        assert [f.flag for f in service.active_flags(s, d.id)] == ["dispute"]
        service.clear_flag(s, flag.id, "answered in writing", by="bob")
        assert service.active_flags(s, d.id) == []
        assert flag.set_by == "alice" and flag.cleared_by == "bob" and flag.reason


def test_loan_account_generates_schedule_and_disbursement(engine: Engine) -> None:
    with transaction(engine) as s:
        acc = factories.loan(s)
        insts = service.instalments_of(s, acc.id)
        assert len(insts) == 12 and sum(i.principal_due for i in insts) == acc.principal
        assert service.derive_balances(s, acc.id)["principal"] == acc.principal
        assert service.cached_balances(acc) == service.derive_balances(s, acc.id)


def test_terms_are_inherited_from_the_product(engine: Engine) -> None:
    with transaction(engine) as s:
        pf = factories.portfolio(s)
        prod = service.create_product(
            s,
            "CL12",
            "消费贷12期",
            pf.id,
            "loan",
            interest_rate_ppm=90_000,
            penalty_rate_ppm=182_500,
            grace_days=3,
            term=12,
            method="equal_principal",
        )
        d = factories.debtor(s)
        acc = service.create_account(
            s,
            external_ref="A-1",
            debtor_id=d.id,
            portfolio_id=pf.id,
            product_id=prod.id,
            kind="loan",
            principal=600_000,
            start_date=dt.date(2026, 1, 1),
        )
        assert (acc.interest_rate_ppm, acc.grace_days, acc.method, acc.term) == (
            90_000,
            3,
            "equal_principal",
            12,
        )
        assert acc.cap_rate_ppm == 4 * 300 * 100  # 4 x LPR 3.00% at 2026-01-01


def test_bad_account_input_names_every_field(engine: Engine) -> None:
    with transaction(engine) as s:
        pf = factories.portfolio(s)
        d = factories.debtor(s)
        with pytest.raises(Invalid) as err:
            service.create_account(
                s,
                external_ref="X",
                debtor_id=d.id,
                portfolio_id=pf.id,
                kind="loan",
                principal=-5,
                start_date=dt.date(2026, 1, 1),
                term=12,
                method="annuity",
                interest_rate_ppm=300_000,
                grace_days=-1,
            )
        fields = {e.field for e in err.value.errors}
        assert {"principal", "grace_days", "interest_rate"} <= fields
        with pytest.raises(NotFound):
            service.create_account(
                s,
                external_ref="Y",
                debtor_id=d.id,
                portfolio_id=9999,
                kind="invoice",
                principal=1,
                start_date=dt.date(2026, 1, 1),
                due_date=dt.date(2026, 2, 1),
            )


def test_given_schedule_must_add_up(engine: Engine) -> None:
    with transaction(engine) as s:
        pf = factories.portfolio(s)
        d = factories.debtor(s)
        with pytest.raises(Invalid, match="add up"):
            service.create_account(
                s,
                external_ref="G",
                debtor_id=d.id,
                portfolio_id=pf.id,
                kind="loan",
                principal=1000,
                start_date=dt.date(2026, 1, 1),
                schedule=[service.GivenInstalment(dt.date(2026, 2, 1), 400)],
            )


def test_payment_is_posted_once_per_reference(engine: Engine) -> None:
    with transaction(engine) as s:
        acc = factories.loan(s)
        p1, created1 = service.post_payment(
            s,
            account_id=acc.id,
            external_ref="BANK-1",
            amount=106_619,
            value_date=dt.date(2026, 2, 15),
        )
        p2, created2 = service.post_payment(
            s,
            account_id=acc.id,
            external_ref="BANK-1",
            amount=106_619,
            value_date=dt.date(2026, 2, 15),
        )
        assert created1 and not created2 and p1.id == p2.id
        assert s.scalar(select(func.count(Payment.id))) == 1
        with pytest.raises(Conflict):
            service.post_payment(
                s,
                account_id=acc.id,
                external_ref="BANK-1",
                amount=5,
                value_date=dt.date(2026, 2, 15),
            )
        first = service.instalments_of(s, acc.id)[0]
        assert first.is_paid
        assert service.cached_balances(acc) == service.derive_balances(s, acc.id)


def test_overpayment_is_kept_as_credit_and_settles(engine: Engine) -> None:
    with transaction(engine) as s:
        acc = factories.invoice(s)
        service.post_payment(
            s,
            account_id=acc.id,
            external_ref="P",
            amount=5_100_000,
            value_date=dt.date(2026, 6, 20),
        )
        assert acc.credit_balance == 100_000
        assert acc.status == "settled"
        assert service.derive_balances(s, acc.id)["credit"] == -100_000


def test_payment_input_errors(engine: Engine) -> None:
    with transaction(engine) as s:
        acc = factories.invoice(s)
        with pytest.raises(Invalid, match="amount"):
            service.post_payment(
                s, account_id=acc.id, external_ref="Z", amount=0, value_date=dt.date(2026, 6, 20)
            )
        with pytest.raises(Invalid, match="currency"):
            service.post_payment(
                s,
                account_id=acc.id,
                external_ref="Z",
                amount=10,
                currency="USD",
                value_date=dt.date(2026, 6, 20),
            )
        with pytest.raises(NotFound):
            service.post_payment(
                s, account_id=999, external_ref="Z", amount=10, value_date=dt.date(2026, 6, 20)
            )


def _snapshot(s: object, account_id: int) -> tuple[object, ...]:
    from sqlalchemy.orm import Session

    assert isinstance(s, Session)
    acc = service.get_account(s, account_id)
    s.refresh(acc)
    insts = s.scalars(
        select(Instalment).where(Instalment.account_id == account_id).order_by(Instalment.seq)
    ).all()
    return (
        tuple(sorted(service.cached_balances(acc).items())),
        acc.status,
        acc.dpd,
        acc.overdue_amount,
        tuple((i.principal_paid, i.interest_paid, i.fee_paid, i.is_paid) for i in insts),
    )


_days = itertools.count(0)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(amounts=st.lists(st.integers(1, 1_500_000), min_size=1, max_size=4))
def test_posting_then_reversing_restores_every_balance(engine: Engine, amounts: list[int]) -> None:
    from recoup.cycle.service import run_cycle

    # Each example ages a fresh loan on a later date, so penalty and late fees are owed too.
    day = dt.date(2026, 5, 1) + dt.timedelta(days=next(_days))
    with transaction(engine) as s:
        account_id = factories.loan(s, interest_rate_ppm=60_000).id
    run_cycle(engine, day)
    with transaction(engine) as s:
        before = _snapshot(s, account_id)
        assert service.get_account(s, account_id).penalty_balance > 0
        payments = [
            service.post_payment(
                s,
                account_id=account_id,
                external_ref=f"R{account_id}-{n}",
                amount=a,
                value_date=day,
            )[0]
            for n, a in enumerate(amounts)
        ]
        for p in reversed(payments):
            service.reverse_payment(s, p.id, "bank recalled the transfer")
        assert _snapshot(s, account_id) == before
        acc = service.get_account(s, account_id)
        assert service.cached_balances(acc) == service.derive_balances(s, account_id)


def test_reversal_is_refused_twice_and_needs_a_reason(engine: Engine) -> None:
    with transaction(engine) as s:
        acc = factories.invoice(s)
        p, _ = service.post_payment(
            s, account_id=acc.id, external_ref="P", amount=100, value_date=dt.date(2026, 6, 20)
        )
        with pytest.raises(Invalid, match="reason"):
            service.reverse_payment(s, p.id, " ")
        service.reverse_payment(s, p.id, "returned")
        with pytest.raises(Conflict):
            service.reverse_payment(s, p.id, "returned")
        kinds = s.scalars(select(LedgerEntry.kind).where(LedgerEntry.payment_id == p.id)).all()
        assert sorted(kinds) == ["payment", "reversal"]
