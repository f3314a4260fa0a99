"""Arrangements and waivers on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from recoup.access.models import AppUser
from recoup.access.service import Principal, principal_of
from recoup.arrangements import rules, service
from recoup.arrangements.models import Arrangement, ArrangementInstalment
from recoup.arrangements.rules import PlannedInstalment as P
from recoup.core.db import transaction
from recoup.core.errors import Conflict, Forbidden, Invalid
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.ledger.models import Account, LedgerEntry
from recoup.workspace.models import Assignment, WorkTask
from tests import factories
from tests.auth import make_user

DAY = dt.date(2026, 8, 1)


def principal(engine: Engine, role: str) -> Principal:
    user = make_user(engine, role)
    with Session(engine) as s:
        return principal_of(s.get_one(AppUser, user.id))


def overdue_invoice(engine: Engine, collector: Principal | None = None) -> int:
    """An invoice due 2026-07-01, aged by the cycle to DAY: penalty and a late fee owed."""
    with transaction(engine) as s:
        acc = factories.invoice(s, late_fee_fixed=10_000)
        if collector is not None:
            s.add(Assignment(account_id=acc.id, user_id=collector.user_id, stage="early"))
        acc_id = acc.id
    run_cycle(engine, DAY)
    return acc_id


def account(engine: Engine, acc_id: int) -> Account:
    with Session(engine) as s:
        return s.get_one(Account, acc_id)


def consistent(engine: Engine, acc_id: int) -> bool:
    with Session(engine) as s:
        acc = s.get_one(Account, acc_id)
        return ledger.cached_balances(acc) == ledger.derive_balances(s, acc_id)


def owed(acc: Account) -> int:
    return (
        acc.principal_balance
        + acc.interest_balance
        + acc.fee_balance
        + acc.penalty_balance
        + acc.late_fee_balance
    )


def propose(engine: Engine, who: Principal, acc_id: int, **kw: object) -> Arrangement:
    args: dict[str, object] = {
        "kind": "waiver",
        "waivers": {},
        "instalments": [],
        "total_amount": 0,
        "reason": "hardship",
        "today": DAY,
    }
    args.update(kw)
    with transaction(engine) as s:
        arr = service.propose(s, who, acc_id, **args)  # type: ignore[arg-type]
        s.expunge(arr)
    return arr


def test_a_collector_waiver_within_limit_is_posted_at_once(engine: Engine) -> None:
    collector = principal(engine, "collector")
    acc_id = overdue_invoice(engine, collector)
    before = account(engine, acc_id)
    assert before.penalty_balance > 0 and before.late_fee_balance == 10_000
    pen = before.penalty_balance * 20 // 100
    arr = propose(engine, collector, acc_id, waivers={"late_fee": 2_000, "penalty": pen})
    assert arr.status == "completed"
    after = account(engine, acc_id)
    assert after.late_fee_balance == 8_000
    assert after.penalty_balance == before.penalty_balance - pen
    assert owed(after) == owed(before) - 2_000 - pen
    assert after.status == "delinquent"  # a pure waiver leaves the account to its strategy
    assert consistent(engine, acc_id)
    with Session(engine) as s:
        entries = s.scalars(
            select(LedgerEntry).where(
                LedgerEntry.account_id == acc_id, LedgerEntry.kind == "waiver"
            )
        ).all()
        assert sorted((e.component, e.amount) for e in entries) == sorted(
            [("late_fee", -2_000), ("penalty", -pen)]
        )


def test_above_the_collector_limit_it_is_queued_and_a_manager_approves(engine: Engine) -> None:
    collector = principal(engine, "collector")
    manager = principal(engine, "manager")
    acc_id = overdue_invoice(engine, collector)
    before = account(engine, acc_id)
    arr = propose(engine, collector, acc_id, waivers={"late_fee": 10_000})
    assert arr.status == "proposed"
    assert account(engine, acc_id).late_fee_balance == 10_000  # nothing posted yet
    with transaction(engine) as s:
        with pytest.raises(Forbidden):
            service.queue(s, collector)
        assert [a.id for a in service.queue(s, manager)] == [arr.id]
        with pytest.raises(Forbidden):
            service.approve(s, collector, arr.id, None, DAY)
    with transaction(engine) as s:
        done = service.approve(s, manager, arr.id, "ok", DAY)
        assert (done.status, done.decided_by) == ("completed", manager.username)
    after = account(engine, acc_id)
    assert after.late_fee_balance == 0 and owed(after) == owed(before) - 10_000
    assert consistent(engine, acc_id)
    with Session(engine) as s:
        assert service.queue(s, manager) == []


def test_an_approval_above_the_manager_limit_is_refused(engine: Engine) -> None:
    collector = principal(engine, "collector")
    manager = principal(engine, "manager")
    admin = principal(engine, "admin")
    acc_id = overdue_invoice(engine, collector)
    # 15% of the principal: above a manager's 10%, within an admin's.
    arr = propose(engine, collector, acc_id, waivers={"principal": 750_000})
    assert arr.status == "proposed"
    with transaction(engine) as s, pytest.raises(Forbidden, match="principal"):
        service.approve(s, manager, arr.id, None, DAY)
    assert account(engine, acc_id).principal_balance == 5_000_000
    with transaction(engine) as s:
        assert service.approve(s, admin, arr.id, None, DAY).status == "completed"
    assert account(engine, acc_id).principal_balance == 4_250_000
    assert consistent(engine, acc_id)


def test_above_every_limit_it_is_refused_naming_component_amount_and_limit(
    engine: Engine,
) -> None:
    manager = principal(engine, "manager")
    acc_id = overdue_invoice(engine)
    tight = service.get_settings().model_copy(
        update={"approval_limits": {**service.get_settings().approval_limits, "admin": {}}}
    )
    with transaction(engine) as s, pytest.raises(Invalid) as exc:
        service.propose(
            s, manager, acc_id, "waiver", {"principal": 600_000}, [], 0, None, DAY, tight
        )
    err = exc.value.errors[0]
    assert err.field == "waivers.principal" and err.value == 600_000
    assert "500000" in err.why and "10%" in err.why
    with Session(engine) as s:
        assert s.scalar(select(func.count(Arrangement.id))) == 0


def test_a_waiver_of_more_than_is_now_owed_is_refused(engine: Engine) -> None:
    collector = principal(engine, "collector")
    manager = principal(engine, "manager")
    acc_id = overdue_invoice(engine, collector)
    arr = propose(engine, collector, acc_id, waivers={"late_fee": 10_000})
    with transaction(engine) as s:
        ledger.post_payment(
            s, account_id=acc_id, external_ref="P-stale", amount=1_000, value_date=DAY
        )
    with transaction(engine) as s, pytest.raises(Conflict, match="owes less"):
        service.approve(s, manager, arr.id, None, DAY)


def test_instalments_that_do_not_add_up_are_refused_with_nothing_written(engine: Engine) -> None:
    manager = principal(engine, "manager")
    acc_id = overdue_invoice(engine)
    total = owed(account(engine, acc_id))
    with Session(engine) as s:
        entries = s.scalar(select(func.count(LedgerEntry.id)))
    with transaction(engine) as s, pytest.raises(Invalid) as exc:
        service.propose(
            s,
            manager,
            acc_id,
            "instalment_plan",
            {},
            [P(DAY + dt.timedelta(10), 1_000), P(DAY + dt.timedelta(40), total - 1_001)],
            total,
            None,
            DAY,
        )
    assert exc.value.errors[0].field == "instalments"
    with transaction(engine) as s, pytest.raises(Invalid) as exc:  # adds up, but not to the debt
        service.propose(
            s,
            manager,
            acc_id,
            "instalment_plan",
            {},
            [P(DAY + dt.timedelta(10), 1_000), P(DAY + dt.timedelta(40), total - 1_001)],
            total - 1,
            None,
            DAY,
        )
    assert exc.value.errors[0].field == "total_amount"
    with Session(engine) as s:
        assert s.scalar(select(func.count(Arrangement.id))) == 0
        assert s.scalar(select(func.count(ArrangementInstalment.id))) == 0
        assert s.scalar(select(func.count(LedgerEntry.id))) == entries
        assert s.get_one(Account, acc_id).status == "delinquent"


def _plan(engine: Engine, who: Principal, acc_id: int) -> tuple[Arrangement, int, int]:
    total = owed(account(engine, acc_id))
    first = 1_000_000
    arr = propose(
        engine,
        who,
        acc_id,
        kind="instalment_plan",
        instalments=[P(dt.date(2026, 8, 10), first), P(dt.date(2026, 9, 10), total - first)],
        total_amount=total,
    )
    return arr, first, total


def test_a_plan_holds_the_account_and_a_missed_instalment_breaks_it_once(engine: Engine) -> None:
    collector = principal(engine, "collector")
    acc_id = overdue_invoice(engine, collector)
    arr, first, _ = _plan(engine, collector, acc_id)
    assert arr.status == "active"
    acc = account(engine, acc_id)
    assert (acc.status, acc.status_since) == ("in_arrangement", DAY)
    penalty = acc.penalty_balance

    run_cycle(engine, dt.date(2026, 8, 5))
    acc = account(engine, acc_id)
    assert acc.status == "in_arrangement" and acc.penalty_balance == penalty  # not chased
    with transaction(engine) as s:
        ledger.post_payment(
            s, account_id=acc_id, external_ref="A1", amount=first, value_date=dt.date(2026, 8, 9)
        )
    run_cycle(engine, dt.date(2026, 8, 20))
    with Session(engine) as s:
        assert s.get_one(Account, acc_id).status == "in_arrangement"
        paid = s.scalars(
            select(ArrangementInstalment.paid_amount)
            .where(ArrangementInstalment.arrangement_id == arr.id)
            .order_by(ArrangementInstalment.seq)
        ).all()
        assert paid == [first, 0]
        assert s.get_one(Arrangement, arr.id).status == "active"

    run_cycle(engine, dt.date(2026, 9, 13))  # due 9-10, grace 3 days: not yet broken
    assert account(engine, acc_id).status == "in_arrangement"
    run_cycle(engine, dt.date(2026, 9, 14))
    run_cycle(engine, dt.date(2026, 9, 15))
    with Session(engine) as s:
        got = s.get_one(Arrangement, arr.id)
        assert (got.status, got.ended_on) == ("broken", dt.date(2026, 9, 14))
        acc = s.get_one(Account, acc_id)
        assert acc.status == "delinquent" and acc.dpd > 0
        accruals = s.execute(
            select(LedgerEntry.entry_date, LedgerEntry.amount).where(
                LedgerEntry.account_id == acc_id,
                LedgerEntry.kind == "accrual",
                LedgerEntry.entry_date > DAY,
            )
        ).all()
        # No penalty while in the arrangement; back to its strategy, penalty accrues again.
        assert [d for d, _ in accruals] == [dt.date(2026, 9, 15)]
        tasks = s.scalars(select(WorkTask).where(WorkTask.arrangement_id == arr.id)).all()
        assert [(t.kind, t.user_id, t.status) for t in tasks] == [
            ("broken_arrangement", collector.user_id, "open")
        ]
    assert consistent(engine, acc_id)


def test_a_plan_paid_in_full_completes_and_the_account_settles(engine: Engine) -> None:
    manager = principal(engine, "manager")
    acc_id = overdue_invoice(engine)
    arr, first, total = _plan(engine, manager, acc_id)
    with transaction(engine) as s:
        ledger.post_payment(
            s, account_id=acc_id, external_ref="B1", amount=first, value_date=dt.date(2026, 8, 10)
        )
        ledger.post_payment(
            s,
            account_id=acc_id,
            external_ref="B2",
            amount=total - first,
            value_date=dt.date(2026, 9, 1),
        )
    run_cycle(engine, dt.date(2026, 9, 2))
    run_cycle(engine, dt.date(2026, 9, 3))
    with Session(engine) as s:
        got = s.get_one(Arrangement, arr.id)
        assert (got.status, got.ended_on) == ("completed", dt.date(2026, 9, 2))
        assert s.get_one(Account, acc_id).status == "settled"
        assert s.scalar(select(func.count(WorkTask.id))) == 0
    assert consistent(engine, acc_id)


def test_a_settlement_paid_forgives_the_rest(engine: Engine) -> None:
    admin = principal(engine, "admin")
    acc_id = overdue_invoice(engine)
    before = account(engine, acc_id)
    arr = propose(
        engine,
        admin,
        acc_id,
        kind="settlement",
        instalments=[P(dt.date(2026, 8, 20), 4_000_000)],
        total_amount=4_000_000,
    )
    assert arr.status == "active"
    assert arr.waive_late_fee == 10_000 and arr.waive_penalty == before.penalty_balance
    assert owed(account(engine, acc_id)) == owed(before)  # forgiven only when paid
    with transaction(engine) as s:
        ledger.post_payment(
            s,
            account_id=acc_id,
            external_ref="S1",
            amount=4_000_000,
            value_date=dt.date(2026, 8, 15),
        )
    run_cycle(engine, dt.date(2026, 8, 16))
    with Session(engine) as s:
        assert s.get_one(Arrangement, arr.id).status == "completed"
        acc = s.get_one(Account, acc_id)
        assert (acc.status, owed(acc)) == ("settled", 0)
        waived = s.scalar(
            select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.account_id == acc_id, LedgerEntry.kind == "waiver"
            )
        )
        assert waived == -(owed(before) - 4_000_000)
    assert consistent(engine, acc_id)


def test_an_extension_and_its_cancellation(engine: Engine) -> None:
    collector = principal(engine, "collector")
    acc_id = overdue_invoice(engine, collector)
    overdue = account(engine, acc_id).overdue_amount
    arr = propose(
        engine,
        collector,
        acc_id,
        kind="extension",
        instalments=[P(dt.date(2026, 8, 31), overdue)],
        total_amount=overdue,
    )
    assert arr.status == "active"
    with transaction(engine) as s, pytest.raises(Conflict):  # one open arrangement at a time
        service.propose(s, collector, acc_id, "waiver", {"late_fee": 1}, [], 0, None, DAY)
    with transaction(engine) as s:
        assert service.cancel(s, collector, arr.id, "debtor asked", DAY).status == "cancelled"
    assert account(engine, acc_id).status == "delinquent"


def test_a_collector_cannot_touch_an_account_assigned_elsewhere(engine: Engine) -> None:
    collector = principal(engine, "collector")
    acc_id = overdue_invoice(engine)
    with transaction(engine) as s, pytest.raises(Forbidden):
        service.propose(s, collector, acc_id, "waiver", {"late_fee": 1}, [], 0, None, DAY)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_waiver_changes_what_is_owed_by_exactly_the_waived_total(
    engine: Engine, data: st.DataObject
) -> None:
    with transaction(engine) as s:
        acc = factories.loan(s, start_date=dt.date(2025, 1, 15))
        acc.recognised_through = None
        ledger.recognise_dues(s, acc, dt.date(2025, 6, 1))
        acc.penalty_balance += 3_000  # as if accrued, with its ledger line
        s.add(
            LedgerEntry(
                account_id=acc.id,
                entry_date=dt.date(2025, 6, 1),
                kind="accrual",
                component="penalty",
                amount=3_000,
            )
        )
        s.flush()
        balances = {
            "late_fee": acc.late_fee_balance,
            "penalty": acc.penalty_balance,
            "interest": acc.interest_balance,
            "fee": acc.fee_balance,
            "principal": acc.principal_balance,
        }
        waivers = {c: data.draw(st.integers(0, b), label=c) for c, b in balances.items()}
        total_before = owed(acc)
        ledger.post_waiver(s, acc.id, waivers, dt.date(2025, 6, 1))
        assert owed(acc) == total_before - rules.waived_total(waivers)
        assert ledger.cached_balances(acc) == ledger.derive_balances(s, acc.id)
        for inst in ledger.instalments_of(s, acc.id):
            assert 0 <= inst.principal_paid <= inst.principal_due
            assert 0 <= inst.interest_paid <= inst.interest_due


def _queued_plan(engine: Engine, collector: Principal, acc_id: int, total: int) -> Arrangement:
    """A plan of everything owed less the late fee, which is above a collector's limit to
    waive: queued for approval."""
    return propose(
        engine,
        collector,
        acc_id,
        kind="instalment_plan",
        waivers={"late_fee": 10_000},
        instalments=[
            P(dt.date(2026, 8, 10), 1_000_000),
            P(dt.date(2026, 9, 10), total - 10_000 - 1_000_000),
        ],
        total_amount=total - 10_000,
    )


def test_a_queued_plan_is_approved_after_a_night_of_accrual_and_forgives_it(
    engine: Engine,
) -> None:
    """Penalty interest accrued while the proposal waited is forgiven with it (within the
    approver's limit), so that the agreed instalments still pay everything off."""
    collector = principal(engine, "collector")
    manager = principal(engine, "manager")
    acc_id = overdue_invoice(engine, collector)
    total = owed(account(engine, acc_id))
    arr = _queued_plan(engine, collector, acc_id, total)
    assert arr.status == "proposed"
    penalty = account(engine, acc_id).penalty_balance
    next_day = DAY + dt.timedelta(days=1)
    run_cycle(engine, next_day)  # the night: penalty interest accrues
    grown = account(engine, acc_id).penalty_balance - penalty
    assert grown > 0
    with transaction(engine) as s:
        done = service.approve(s, manager, arr.id, None, next_day)
        assert done.status == "active"
        assert (done.waive_late_fee, done.waive_penalty) == (10_000, grown)
        assert done.basis["accrued_since_proposal"] == {"penalty": grown}
    after = account(engine, acc_id)
    assert after.status == "in_arrangement"
    assert owed(after) == total - 10_000  # what the instalments add up to
    assert consistent(engine, acc_id)


def test_a_queued_plan_is_stale_after_a_payment(engine: Engine) -> None:
    collector = principal(engine, "collector")
    manager = principal(engine, "manager")
    acc_id = overdue_invoice(engine, collector)
    total = owed(account(engine, acc_id))
    arr = _queued_plan(engine, collector, acc_id, total)
    with transaction(engine) as s:
        ledger.post_payment(s, account_id=acc_id, external_ref="P-1", amount=5_000, value_date=DAY)
    with transaction(engine) as s, pytest.raises(Conflict, match="changed since the proposal"):
        service.approve(s, manager, arr.id, None, DAY)
