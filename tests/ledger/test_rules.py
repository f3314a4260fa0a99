"""Pure ledger rules: schedules, allocation, buckets, stages, accrual, the cap."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recoup.ledger import rules
from recoup.ledger.vectorised import generate_schedules

BOUNDS = [0, 30, 60, 90, 120, 150, 180]
STAGES = {"early": 1, "negotiation": 31, "hard": 91, "recovery": 151}


# --------------------------------------------------------------------------- schedules


def test_annuity_matches_the_textbook_instalment() -> None:
    # 12,000.00 over 12 months at 12% a year: the equal instalment is 1,066.19 (等额本息).
    plan = rules.generate_schedule(1_200_000, 120_000, 12, "annuity", dt.date(2026, 1, 15))
    assert [p.total for p in plan[:-1]] == [106_619] * 11
    assert plan[0].interest == 12_000  # 1% of the full balance in month one
    assert sum(p.principal for p in plan) == 1_200_000
    assert abs(plan[-1].total - 106_619) <= 12  # the last instalment absorbs rounding
    assert plan[0].due_date == dt.date(2026, 2, 15)


def test_equal_principal_and_bullet_and_interest_only() -> None:
    ep = rules.generate_schedule(1_000_000, 120_000, 4, "equal_principal", dt.date(2026, 1, 1))
    assert [p.principal for p in ep] == [250_000] * 4
    assert [p.interest for p in ep] == [10_000, 7_500, 5_000, 2_500]
    bullet = rules.generate_schedule(1_000_000, 120_000, 6, "bullet", dt.date(2026, 1, 1))
    assert len(bullet) == 1 and bullet[0].interest == 60_000
    assert bullet[0].due_date == dt.date(2026, 7, 1)
    io = rules.generate_schedule(1_000_000, 120_000, 3, "interest_only", dt.date(2026, 1, 1))
    assert [p.principal for p in io] == [0, 0, 1_000_000]


def test_due_dates_clamp_to_month_end() -> None:
    assert rules.due_dates(dt.date(2026, 1, 31), 3) == [
        dt.date(2026, 2, 28),
        dt.date(2026, 3, 31),
        dt.date(2026, 4, 30),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1000, 12, "annuity"), "principal"),
        ((100, 1000, 0, "annuity"), "term"),
        ((100, -1, 12, "annuity"), "rate"),
        ((100, 1000, 12, "balloon"), "unknown method"),
    ],
)
def test_bad_schedule_terms_are_refused(args: tuple[int, int, int, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rules.generate_schedule(*args, start=dt.date(2026, 1, 1))


loan_terms = st.tuples(
    st.integers(1, 10**10),
    st.sampled_from([0, 1, 35_000, 120_000, 182_500, 240_000, 999_999]),
    st.integers(1, 60),
    st.sampled_from(rules.METHODS),
    st.dates(dt.date(2000, 1, 1), dt.date(2040, 12, 31)),
)


@given(loan_terms)
def test_schedule_principal_always_adds_up(terms: tuple[int, int, int, str, dt.date]) -> None:
    principal, rate, term, method, start = terms
    plan = rules.generate_schedule(principal, rate, term, method, start)
    assert sum(p.principal for p in plan) == principal
    assert all(p.principal >= 0 and p.interest >= 0 for p in plan)
    assert [p.due_date for p in plan] == sorted(p.due_date for p in plan)


@settings(max_examples=30, deadline=None)
@given(st.lists(loan_terms, min_size=1, max_size=40))
def test_vectorised_schedules_equal_scalar(loans: list[tuple[int, int, int, str, dt.date]]) -> None:
    frame = pl.DataFrame(
        {
            "account_id": list(range(len(loans))),
            "principal": [t[0] for t in loans],
            "interest_rate_ppm": [t[1] for t in loans],
            "term": [t[2] for t in loans],
            "method": [t[3] for t in loans],
            "start_date": [t[4] for t in loans],
        }
    )
    expected = [
        (i, p.seq, p.due_date, p.principal, p.interest, p.fee)
        for i, t in enumerate(loans)
        for p in rules.generate_schedule(t[0], t[1], t[2], t[3], t[4])
    ]
    assert list(generate_schedules(frame).iter_rows()) == expected


# --------------------------------------------------------------------------- allocation

D = dt.date(2026, 3, 1)


def test_default_waterfall_pays_fees_then_penalty_then_interest_then_principal() -> None:
    due = [
        rules.DueItem("principal", 1, D, 1000),
        rules.DueItem("interest", 1, D, 100),
        rules.DueItem("penalty", None, dt.date.min, 30),
        rules.DueItem("late_fee", None, dt.date.min, 50),
        rules.DueItem("interest", 2, D + dt.timedelta(days=30), 90),
    ]
    result = rules.allocate(200, due)
    assert [(a.component, a.seq, a.amount) for a in result.allocations] == [
        ("late_fee", None, 50),
        ("penalty", None, 30),
        ("interest", 1, 100),
        ("interest", 2, 20),
    ]
    assert result.credit == 0


def test_overpayment_prepays_principal_then_becomes_credit() -> None:
    due = [rules.DueItem("principal", 1, D, 100)]
    future = [rules.DueItem("principal", 2, D + dt.timedelta(days=31), 100)]
    result = rules.allocate(250, due, future_principal=future)
    assert [(a.seq, a.amount) for a in result.allocations] == [(1, 100), (2, 100)]
    assert result.credit == 50


def test_waterfall_must_name_every_component_once() -> None:
    with pytest.raises(ValueError, match="waterfall"):
        rules.allocate(10, [], ["principal", "interest"])


due_items = st.lists(
    st.builds(
        rules.DueItem,
        st.sampled_from(rules.COMPONENTS),
        st.integers(1, 24),
        st.dates(dt.date(2025, 1, 1), dt.date(2027, 1, 1)),
        st.integers(0, 10**9),
    ),
    max_size=30,
)


@given(
    st.integers(1, 10**10),
    due_items,
    st.permutations(rules.COMPONENTS),
)
def test_allocation_never_creates_or_loses_money(
    amount: int, items: list[rules.DueItem], waterfall: list[str]
) -> None:
    result = rules.allocate(amount, items, waterfall)
    assert result.allocated + result.credit == amount
    assert all(a.amount > 0 for a in result.allocations)
    assert result.credit >= 0
    # nothing is paid beyond what was outstanding on any item
    owed: dict[tuple[str, int | None], int] = {}
    for item in items:
        owed[(item.component, item.seq)] = (
            owed.get((item.component, item.seq), 0) + item.outstanding
        )
    paid: dict[tuple[str, int | None], int] = {}
    for a in result.allocations:
        paid[(a.component, a.seq)] = paid.get((a.component, a.seq), 0) + a.amount
    assert all(paid[k] <= owed[k] for k in paid)
    # credit only when everything outstanding was paid
    if result.credit:
        assert result.allocated == sum(owed.values())


# --------------------------------------------------------------------------- delinquency


@pytest.mark.parametrize(
    ("dpd", "bucket", "stage"),
    [
        (0, "M0", "current"),
        (1, "M1", "early"),
        (30, "M1", "early"),
        (31, "M2", "negotiation"),
        (90, "M3", "negotiation"),
        (91, "M4", "hard"),
        (150, "M5", "hard"),
        (151, "M6", "recovery"),
        (180, "M6", "recovery"),
        (181, "M7+", "recovery"),
    ],
)
def test_bucket_and_stage(dpd: int, bucket: str, stage: str) -> None:
    assert rules.bucket_for(dpd, BOUNDS) == bucket
    assert rules.stage_for(dpd, STAGES) == stage


def test_status_transitions() -> None:
    assert rules.next_status("current", 5, False) == "delinquent"
    assert rules.next_status("delinquent", 0, False) == "current"  # cured
    assert rules.next_status("delinquent", 0, True) == "settled"
    assert rules.next_status("legal", 0, False) == "legal"  # set by people, kept


def test_days_past_due() -> None:
    assert rules.days_past_due(None, D) == 0
    assert rules.days_past_due(D, D) == 0
    assert rules.days_past_due(dt.date(2026, 2, 1), D) == 28


# --------------------------------------------------------------------------- accrual and cap


def _accrue(open_: list[rules.OpenInstalment], **kw: object) -> rules.Accrual:
    args: dict[str, object] = {
        "as_of": D,
        "accrued_through": None,
        "penalty_rate_ppm": 182_500,
        "late_fee_fixed": 5_000,
        "late_fee_rate_ppm": 0,
        "grace_days": 0,
        "principal": 1_000_000,
        "cap_rate_ppm": None,
        "start_date": dt.date(2025, 1, 1),
        "charges_total": 0,
    }
    args.update(kw)
    return rules.accrue(open_, **args)  # type: ignore[arg-type]


def test_penalty_is_daily_on_unpaid_principal_after_grace() -> None:
    inst = rules.OpenInstalment(1, dt.date(2026, 2, 19), 100_000, 110_000)
    # 万分之五 a day (18.25% a year) on 1,000.00 for 10 days = 5.00
    assert _accrue([inst]).penalty == 500
    assert _accrue([inst], grace_days=3).penalty == 350
    # already accrued through Feb 25: only 4 more days
    assert _accrue([inst], accrued_through=dt.date(2026, 2, 25)).penalty == 200


def test_late_fee_is_charged_once_per_instalment() -> None:
    inst = rules.OpenInstalment(1, dt.date(2026, 2, 19), 100_000, 110_000)
    assert _accrue([inst]).late_fee == 5_000
    assert _accrue([inst], accrued_through=dt.date(2026, 2, 25)).late_fee == 0
    assert _accrue([inst], late_fee_fixed=0, late_fee_rate_ppm=50_000).late_fee == 5_500


def test_cap_limits_penalty_and_fees() -> None:
    inst = rules.OpenInstalment(1, dt.date(2025, 2, 1), 1_000_000, 1_000_000)
    capped = _accrue([inst], cap_rate_ppm=120_000, charges_total=100_000)
    limit = rules.cap_total(1_000_000, 120_000, dt.date(2025, 1, 1), D)
    assert limit is not None
    assert 100_000 + capped.penalty + capped.late_fee == limit


def test_cn_private_lending_cap_is_four_times_lpr_at_contract_date() -> None:
    table = [(dt.date(2023, 8, 21), 345), (dt.date(2024, 7, 22), 335)]
    assert rules.resolve_cap("cn_private_lending", None, dt.date(2024, 1, 1), table) == 138_000
    assert rules.resolve_cap("cn_private_lending", None, dt.date(2024, 8, 1), table) == 134_000
    assert rules.resolve_cap("annual_rate", 240_000, dt.date(2024, 8, 1), table) == 240_000
    assert rules.resolve_cap("none", None, dt.date(2024, 8, 1), table) is None
    with pytest.raises(ValueError, match="no LPR"):
        rules.resolve_cap("cn_private_lending", None, dt.date(2020, 1, 1), table)


@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 10**9)),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 1_000_000),
    st.integers(0, 400_000),
    st.integers(0, 10**8),
    st.integers(0, 10),
)
def test_accrual_never_exceeds_the_cap(
    insts: list[tuple[int, int]], penalty: int, cap: int, charged: int, grace: int
) -> None:
    opens = [
        rules.OpenInstalment(i, D - dt.timedelta(days=age), p, p)
        for i, (age, p) in enumerate(insts)
    ]
    principal = max(1, sum(p for _, p in insts))
    start = D - dt.timedelta(days=500)
    got = _accrue(
        opens,
        penalty_rate_ppm=penalty,
        cap_rate_ppm=cap,
        charges_total=charged,
        principal=principal,
        start_date=start,
        grace_days=grace,
    )
    limit = rules.cap_total(principal, cap, start, D)
    assert limit is not None
    assert got.penalty >= 0 and got.late_fee >= 0
    assert charged + got.penalty + got.late_fee <= max(limit, charged)


@given(st.integers(0, 10**17), st.integers(0, 10**7))
def test_scaled_rate_amount_is_exact(base_days: int, rate: int) -> None:
    from decimal import ROUND_HALF_UP, Decimal

    exact = (Decimal(base_days) * rate / Decimal(rules.YEAR_PPM)).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    assert rules.scaled_rate_amount(base_days, rate) == int(exact)


STAGES = {"early": 1, "negotiation": 31, "hard": 91, "recovery": 151}


def test_stage_after_keeps_a_strategy_stage_while_overdue() -> None:
    assert rules.stage_after("recovery", 100, STAGES) == "recovery"  # moved there by a step
    assert rules.stage_after("early", 100, STAGES) == "hard"
    assert rules.stage_after("recovery", 0, STAGES) == "current"  # paid up: current again
    assert rules.stage_after("hard", 200, STAGES) == "recovery"


@given(st.sampled_from(["current", *STAGES]), st.integers(-5, 400))
def test_stage_after_vectorised_agrees(current: str, dpd: int) -> None:
    from recoup.ledger.bulk import _stage_after

    frame = pl.DataFrame({"stage": [current], "dpd": [dpd]})
    got = frame.select(_stage_after(pl.col("stage"), pl.col("dpd"), STAGES)).item()
    assert got == rules.stage_after(current, dpd, STAGES)
