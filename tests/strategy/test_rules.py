"""Strategy files and the pure decisions: parsing with paths, parameters, arms, and the
one-account form of planning agreeing with the set-based form on a random book."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from recoup.channels.catalog import catalog, variables
from recoup.compliance import wording
from recoup.core.errors import Invalid
from recoup.cycle.service import run_cycle
from recoup.demo import service as demo
from recoup.ledger.models import Account, Instalment, Portfolio
from recoup.strategy import rules, service
from recoup.strategy.models import PlannedAction

MINIMAL = """
strategy: s
title: {en: S, zh: 策略}
segments:
  - id: early
    when: {bucket: [M1]}
    path:
      - {id: sms, due: 1, action: sms, template: reminder_overdue}
"""


def test_the_default_strategy_is_valid_and_names_known_templates() -> None:
    doc = service.validate(service.default_source())
    assert doc.strategy == "default"
    assert [s.id for s in doc.segments][-1] == "pre_due"
    m3 = next(s for s in doc.segments if s.id == "m3_large")
    assert m3.when.overdue_amount is not None and m3.when.overdue_amount.min == 20000


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (("action: sms", "action: telegram"), "segments[0].path[0].action"),
        (("due: 1", "due: -100"), "segments[0].path[0].due"),
        (("bucket: [M1]", "bucket: [Q1]"), "segments[0].when.bucket"),
        (("{bucket: [M1]}", "{bucket: [M1], colour: red}"), "segments[0].when.colour"),
        (("template: reminder_overdue", "template: nope"), "segments[0].path[0].template"),
        (("due: 1,", "due: 1, stage_day: 2,"), "segments[0].path[0]"),
        (("strategy: s", "strategy: S-1"), "strategy"),
    ],
)
def test_errors_name_the_path_of_the_bad_key(change: tuple[str, str], path: str) -> None:
    with pytest.raises(Invalid) as err:
        service.validate(MINIMAL.replace(*change))
    assert path in [e.field for e in err.value.errors], err.value.errors


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(Invalid) as err:
        rules.parse_document("segments: [\n")
    assert "line" in str(err.value.errors[0].value)
    with pytest.raises(Invalid):
        rules.parse_document("- a\n- b\n")


def test_parameters_are_substituted_and_unknown_ones_named() -> None:
    doc = rules.parse_document(
        MINIMAL.replace("when: {bucket: [M1]}", 'when: {overdue_amount: {min: "${x}"}}').replace(
            "segments:", "parameters: {x: 500}\nsegments:"
        )
    )
    assert doc.segments[0].when.overdue_amount is not None
    assert doc.segments[0].when.overdue_amount.min == 500
    with pytest.raises(Invalid) as err:
        rules.parse_document(MINIMAL.replace("due: 1", 'due: "${nope}"'))
    assert err.value.errors[0].field == "segments[0].path[0].due"


@given(st.integers(1, 2**31 - 1), st.text(min_size=1, max_size=20))
def test_arm_slot_is_stable_and_in_range(account_id: int, experiment: str) -> None:
    slot = rules.arm_slot(account_id, experiment)
    assert 0 <= slot < rules.SLOTS
    assert slot == rules.arm_slot(account_id, experiment)


def test_arm_weights_share_the_accounts() -> None:
    arms = [rules.Arm("champion", 1, 80), rules.Arm("challenger", 2, 20)]
    got = defaultdict(int)
    for account_id in range(1, 20_001):
        got[rules.arm_for(account_id, "exp", arms).name] += 1
    assert 0.77 < got["champion"] / 20_000 < 0.83


@pytest.mark.parametrize("name", sorted(catalog()))
def test_shipped_templates_pass_the_wording_check_and_state_what_they_must(name: str) -> None:
    template = catalog()[name]
    for lang in ("zh", "en"):
        body = template[lang]["body"]
        assert wording.first_finding(body) is None, (name, lang)
        assert set(template.get("requires", [])) <= variables(body), (name, lang)


def test_planning_agrees_with_the_one_account_form(engine: Engine) -> None:
    """The set-based planning and rules.steps_due give the same steps on a random book."""
    day = dt.date(2026, 11, 23)
    demo.load_demo(engine, 400, as_of=day, seed=7)
    with Session(engine) as s, s.begin():
        service.load_default(s)
        for code in s.scalars(select(Portfolio.code)):
            service.activate(s, code, [service.ArmSpec("default", None, 1, "champion")], "t")
    doc = service.validate(service.default_source())
    for k in (1, 2, 3):
        as_of = day + dt.timedelta(days=k)
        with Session(engine) as s:
            before = {a.id: (a.stage, a.stage_since) for a in s.scalars(select(Account))}
        run_cycle(engine, as_of, partitions=3)
        with Session(engine) as s:
            planned = {
                (a.account_id, a.step, a.planned_date)
                for a in s.scalars(select(PlannedAction).where(PlannedAction.cycle_date == as_of))
            }
            expected: set[tuple[int, str, dt.date]] = set()
            upcoming: dict[int, list[dt.date]] = defaultdict(list)
            for account_id, due in s.execute(
                select(Instalment.account_id, Instalment.due_date).where(
                    Instalment.is_paid.is_(False),
                    Instalment.due_date > as_of,
                    Instalment.due_date <= as_of + dt.timedelta(days=7),
                )
            ):
                upcoming[account_id].append(due)
            flags = defaultdict(set)
            for debtor_id, flag in s.execute(
                text("SELECT debtor_id, flag FROM debtor_flag WHERE cleared_at IS NULL")
            ):
                flags[debtor_id].add(flag)
            for a in s.scalars(select(Account)):
                facts = rules.AccountFacts(
                    id=a.id,
                    bucket=a.bucket,
                    dpd=a.dpd,
                    overdue_amount=a.overdue_amount,
                    balance=a.principal_balance
                    + a.interest_balance
                    + a.fee_balance
                    + a.penalty_balance
                    + a.late_fee_balance,
                    stage=before[a.id][0]
                    if a.stage != before[a.id][0] and a.stage_since == as_of and a.dpd > 0
                    else a.stage,
                    stage_since=a.stage_since,
                    oldest_unpaid_due=a.oldest_unpaid_due,
                    upcoming_due=tuple(upcoming[a.id]),
                    kind=a.kind,
                    flags=frozenset(flags[a.debtor_id]),
                    promise=a.promise_state,
                    status=a.status,
                )
                for step in rules.steps_due(doc, facts, as_of - dt.timedelta(days=1), as_of):
                    expected.add((a.id, step.step, step.planned_date))
        assert planned == expected
        assert planned  # the book has work every day
