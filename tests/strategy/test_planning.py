"""Planning inside the daily cycle, on a real database (SQLite and PostgreSQL): a scripted
account timeline under the default strategy, paid accounts, disputes, idempotency, the stage
transition, champion/challenger arms, and the set-based and one-account forms agreeing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from recoup.compliance.models import ComplianceBlock
from recoup.core.errors import Invalid
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.ledger.models import Account, DebtorFlag
from recoup.strategy import rules, service
from recoup.strategy.models import PlannedAction
from tests import factories

DUE = dt.date(2026, 7, 1)


def _book(engine: Engine, *, amount: int = 500_000, flags: tuple[str, ...] = ()) -> int:
    """One invoice due on DUE to a debtor with a phone, an email and an address, in a
    portfolio under the default strategy. Returns the account id."""
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        d = factories.debtor(
            s, kind="company", name="华东贸易有限公司", address="上海市浦东新区1号"
        )
        ledger.add_contact_point(s, d.id, "phone", "+8613800138000")
        ledger.add_contact_point(s, d.id, "email", "ap@example.com")
        for flag in flags:
            ledger.set_flag(s, d.id, flag, "test", by="test")
        acc = factories.invoice(
            s, pf, debtor=d, principal=amount, due_date=DUE, start_date=dt.date(2026, 6, 1)
        )
        service.load_default(s)
        service.activate(s, pf.code, [service.ArmSpec("default", None, 1, "champion")], "test")
        return acc.id


def _run(engine: Engine, first: dt.date, last: dt.date, *, work: bool = False) -> None:
    """Run the cycle for each date; with `work`, each day's planned actions are then carried
    out (status done), as the channels and the collectors would."""
    day = first
    while day <= last:
        run_cycle(engine, day, partitions=2)
        if work:
            with Session(engine) as s, s.begin():
                s.execute(
                    update(PlannedAction)
                    .where(PlannedAction.cycle_date == day, PlannedAction.status == "planned")
                    .values(status="done")
                )
        day += dt.timedelta(days=1)


def _actions(engine: Engine, account_id: int) -> list[tuple[Any, ...]]:
    with Session(engine) as s:
        return [
            (a.planned_date, a.step, a.action_type, a.status, a.rule_id)
            for a in s.scalars(
                select(PlannedAction)
                .where(PlannedAction.account_id == account_id)
                .order_by(PlannedAction.planned_date, PlannedAction.step)
            )
        ]


def test_timeline_under_the_default_strategy(engine: Engine) -> None:
    acc = _book(engine)
    _run(engine, dt.date(2026, 6, 20), dt.date(2026, 7, 12), work=True)
    assert _actions(engine, acc) == [
        (dt.date(2026, 6, 24), "pre_due.reminder_7", "sms", "done", None),
        (dt.date(2026, 6, 30), "pre_due.reminder_1", "sms", "done", None),
        (dt.date(2026, 7, 2), "m1_early.reminder", "sms", "done", None),
        (dt.date(2026, 7, 4), "m1_early.call", "call_task", "done", None),
        (dt.date(2026, 7, 11), "m1_early.formal_notice_email", "email", "done", None),
        (dt.date(2026, 7, 11), "m1_early.formal_notice_letter", "letter", "done", None),
    ]
    with Session(engine) as s:
        first = s.scalars(select(PlannedAction).order_by(PlannedAction.id)).first()
        assert first is not None
        # 10:00 in Shanghai (the debtor's zone) is 02:00 UTC
        assert first.scheduled_at == dt.datetime(2026, 6, 24, 2, 0, tzinfo=dt.UTC)
        assert first.cycle_date == dt.date(2026, 6, 24)


def test_a_paid_account_receives_nothing_more(engine: Engine) -> None:
    acc = _book(engine)
    _run(engine, dt.date(2026, 6, 28), dt.date(2026, 7, 3), work=True)
    _run(engine, dt.date(2026, 7, 4), dt.date(2026, 7, 4))  # the call is not made that day
    with Session(engine) as s, s.begin():
        account = s.get_one(Account, acc)
        ledger.post_payment(
            s,
            account_id=acc,
            external_ref="P1",
            amount=account.principal + 100_000,
            value_date=dt.date(2026, 7, 5),
        )
    _run(engine, dt.date(2026, 7, 5), dt.date(2026, 7, 20))
    actions = _actions(engine, acc)
    assert all(a[0] <= dt.date(2026, 7, 4) for a in actions)
    # the call task planned for D+3 had not been worked: cancelled because the account was paid
    assert (dt.date(2026, 7, 4), "m1_early.call", "call_task", "cancelled", None) in actions
    with Session(engine) as s:
        assert (
            s.scalar(select(PlannedAction.reason).where(PlannedAction.step == "m1_early.call"))
            == "paid"
        )


def test_a_disputed_account_receives_nothing_until_the_dispute_is_answered(
    engine: Engine,
) -> None:
    acc = _book(engine, flags=("dispute",))
    _run(engine, dt.date(2026, 6, 28), dt.date(2026, 7, 5), work=True)
    actions = _actions(engine, acc)
    assert actions and all(a[3] == "blocked" and a[4] == "stop.dispute" for a in actions)
    with Session(engine) as s:
        blocks = s.scalars(select(ComplianceBlock).order_by(ComplianceBlock.id)).all()
        assert [b.rule_id for b in blocks] == ["stop.dispute"] * len(actions)
        assert all(b.subject == "planned_action" and b.reason_zh for b in blocks)
    # the dispute is answered: the flag is cleared, and the strategy goes on from there
    with Session(engine) as s, s.begin():
        account = s.get_one(Account, acc)
        flag = s.scalar(select(DebtorFlag).where(DebtorFlag.debtor_id == account.debtor_id))
        assert flag is not None
        ledger.clear_flag(s, flag.id, "dispute answered: debt verified", by="test")
    _run(engine, dt.date(2026, 7, 6), dt.date(2026, 7, 11), work=True)
    later = [a for a in _actions(engine, acc) if a[0] > dt.date(2026, 7, 5)]
    assert [(a[1], a[3]) for a in later] == [
        ("m1_early.formal_notice_email", "done"),
        ("m1_early.formal_notice_letter", "done"),
    ]


def test_no_contact_point_blocks_with_its_own_rule(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        acc = factories.invoice(s, pf, due_date=DUE, principal=500_000)
        service.load_default(s)
        service.activate(s, pf.code, [service.ArmSpec("default", None, 1, "champion")], "t")
        acc_id = acc.id
    _run(engine, dt.date(2026, 6, 29), dt.date(2026, 7, 2))
    assert [(a[1], a[3], a[4]) for a in _actions(engine, acc_id)] == [
        ("pre_due.reminder_1", "blocked", "contact.no_contact_point"),
        ("m1_early.reminder", "blocked", "contact.no_contact_point"),
    ]


def test_re_running_a_date_plans_nothing_new_and_skipped_dates_are_caught_up(
    engine: Engine,
) -> None:
    acc = _book(engine)
    run_cycle(engine, dt.date(2026, 7, 1), partitions=2)
    # three days skipped: D+1 and D+3 are both planned on the 4th
    run_cycle(engine, dt.date(2026, 7, 4), partitions=2)
    run_cycle(engine, dt.date(2026, 7, 4), partitions=2)
    assert [(a[0], a[1]) for a in _actions(engine, acc)] == [
        (dt.date(2026, 7, 2), "m1_early.reminder"),
        (dt.date(2026, 7, 4), "m1_early.call"),
    ]


def test_lawyer_letter_moves_the_stage_forward_and_the_cycle_keeps_it(engine: Engine) -> None:
    acc = _book(engine, amount=500_000)
    # M4 starts at DPD 91: the lawyer letter's transition is "hard" (the DPD's stage too);
    # agency placement at DPD 121 moves the account to "recovery" before DPD 151 would.
    _run(engine, dt.date(2026, 10, 28), dt.date(2026, 11, 2))
    with Session(engine) as s:
        account = s.get_one(Account, acc)
        assert account.dpd == 124
        assert account.stage == "recovery"
        assert account.stage_since == dt.date(2026, 10, 30)
    steps = [a[1] for a in _actions(engine, acc)]
    assert "m5_agency.agency_placement" in steps


def test_champion_challenger_split_is_stable_and_recorded(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        ids = []
        for i in range(40):
            d = factories.debtor(s, address="北京市1号")
            ledger.add_contact_point(s, d.id, "phone", f"+86138001{i:05d}")
            ids.append(factories.invoice(s, pf, debtor=d, due_date=DUE, principal=300_000).id)
        v1 = service.load_default(s)
        source2 = service.default_source().replace("priority: 40, time:", "priority: 45, time:")
        v2, _ = service.load(s, source2, "t")
        assert v2.version == v1.version + 1
        service.activate(
            s,
            pf.code,
            [service.ArmSpec.parse("default@1:50", 0), service.ArmSpec.parse("default@2:50", 1)],
            "t",
            experiment="exp-1",
        )
        pf_id, v1_id, v2_id = pf.id, v1.id, v2.id
    run_cycle(engine, dt.date(2026, 7, 2), partitions=3)
    arms = [rules.Arm("champion", v1_id, 50), rules.Arm("challenger", v2_id, 50)]
    with Session(engine) as s:
        rows = s.execute(
            select(
                PlannedAction.account_id, PlannedAction.arm, PlannedAction.strategy_version_id
            ).where(PlannedAction.portfolio_id == pf_id)
        ).all()
    assert len(rows) == 40
    for account_id, arm, version_id in rows:
        expected = rules.arm_for(account_id, "exp-1", arms)
        assert (arm, version_id) == (expected.name, expected.version_id)
    assert {r[1] for r in rows} == {"champion", "challenger"}


def test_an_invalid_file_never_replaces_the_active_strategy(engine: Engine) -> None:
    _book(engine)
    with Session(engine) as s:
        before = service.assignments(s)[0][1].arms
        broken = service.default_source().replace("action: call_task", "action: phone_call", 1)
        with pytest.raises(Invalid) as err:
            service.load(s, broken, "t")
        assert err.value.errors[0].field == "segments[0].path[0].action"
        assert service.assignments(s)[0][1].arms == before
        assert len(service.list_versions(s)) == 1


def test_portfolio_without_strategy_plans_nothing(engine: Engine) -> None:
    planned_acc = _book(engine)  # a portfolio under the default strategy
    with Session(engine) as s, s.begin():
        other = factories.invoice(s, factories.portfolio(s), due_date=DUE)
        other_id = other.id
    result = run_cycle(engine, dt.date(2026, 7, 2))
    assert _actions(engine, other_id) == []
    assert [a[1] for a in _actions(engine, planned_acc)] == ["m1_early.reminder"]
    assert result.counts["actions_planned"] == 1


def test_a_time_barred_debt_gets_no_lawyer_letter(engine: Engine) -> None:
    """Once the limitation period has run out, the guard refuses what brings or threatens suit
    (the lawyer letter, legal review) and lets the ordinary reminders through."""
    barred = _book(engine, amount=500_000)
    with Session(engine) as s, s.begin():
        ledger.set_time_bar(s, barred, dt.date(2026, 9, 1), by="test")
    _run(engine, dt.date(2026, 9, 29), dt.date(2026, 10, 1))
    actions = {a[1]: (a[3], a[4]) for a in _actions(engine, barred)}
    assert actions["m4_lawyer.lawyer_letter"] == ("blocked", "us.time_barred_suit")
    assert all(
        rule != "us.time_barred_suit" for step, (_, rule) in actions.items() if "lawyer" not in step
    )
    with Session(engine) as s:
        block = s.scalars(
            select(ComplianceBlock).where(ComplianceBlock.rule_id == "us.time_barred_suit")
        ).one()
        assert block.account_id == barred and "time-barred" in block.reason_en


def test_the_lawyer_letter_goes_out_before_the_debt_is_time_barred(engine: Engine) -> None:
    acc = _book(engine, amount=500_000)
    with Session(engine) as s, s.begin():
        ledger.set_time_bar(s, acc, dt.date(2027, 7, 1), by="test")
    _run(engine, dt.date(2026, 9, 29), dt.date(2026, 10, 1))
    actions = {a[1]: (a[3], a[4]) for a in _actions(engine, acc)}
    assert actions["m4_lawyer.lawyer_letter"] == ("planned", None)
