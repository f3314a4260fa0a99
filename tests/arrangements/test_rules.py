"""Pure rules of arrangements: limits at their edges, instalments that add up."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from recoup.arrangements import rules
from recoup.arrangements.rules import PlannedInstalment as P

LIMITS = {
    "collector": {"late_fee": 20, "penalty": 20, "interest": 0, "fee": 0, "principal": 0},
    "manager": {"late_fee": 100, "penalty": 100, "interest": 100, "fee": 100, "principal": 10},
    "admin": dict.fromkeys(rules.WAIVABLE, 100),
}
BAL = {"late_fee": 5_000, "penalty": 10_001, "interest": 0, "fee": 0, "principal": 1_000_000}
TODAY = dt.date(2026, 8, 1)


def test_a_collector_may_waive_exactly_20_percent_of_the_penalty_and_not_one_unit_more() -> None:
    assert rules.within_limit("collector", {"penalty": 2_000}, BAL, LIMITS)[0]
    ok, en, zh = rules.within_limit("collector", {"penalty": 2_001}, BAL, LIMITS)
    assert not ok
    assert "penalty" in en and "2001" in en and "2000" in en and "20%" in en
    assert "penalty" in zh and "2000" in zh


def test_an_unknown_role_may_waive_nothing() -> None:
    assert not rules.within_limit("analyst", {"late_fee": 1}, BAL, LIMITS)[0]
    assert rules.within_limit("analyst", {}, BAL, LIMITS)[0]


def test_manager_principal_limit_is_ten_percent() -> None:
    assert rules.within_limit("manager", {"principal": 100_000}, BAL, LIMITS)[0]
    assert not rules.within_limit("manager", {"principal": 100_001}, BAL, LIMITS)[0]


def test_route_approves_within_own_limit_queues_for_an_approver_refuses_above_all() -> None:
    approvers = ["manager", "admin"]
    assert rules.decide_route("collector", {"late_fee": 1_000}, BAL, LIMITS, approvers)[0] == (
        "approve"
    )
    assert rules.decide_route("collector", {"late_fee": 1_001}, BAL, LIMITS, approvers)[0] == (
        "queue"
    )
    route, over, en, _ = rules.decide_route(
        "collector", {"late_fee": 1_000, "principal": 200_000}, BAL, LIMITS, ["manager"]
    )
    assert (route, over) == ("refuse", "principal") and "100000" in en


def test_a_settlement_discount_counts_as_late_fee_then_penalty_then_principal() -> None:
    owed = rules.owed_total(BAL)
    w = rules.settlement_waivers(BAL, owed - 20_000)
    assert w == {"late_fee": 5_000, "penalty": 10_001, "interest": 0, "fee": 0, "principal": 4_999}
    assert rules.waived_total(w) == 20_000


def test_instalments_must_add_up_to_the_total() -> None:
    errors = rules.validate_instalments(
        "instalment_plan", [P(TODAY, 500), P(TODAY + dt.timedelta(30), 499)], 1_000, TODAY
    )
    assert [e.field for e in errors] == ["instalments"]
    assert "999" in errors[0].why and "1000" in errors[0].why
    assert not rules.validate_instalments(
        "instalment_plan", [P(TODAY, 500), P(TODAY + dt.timedelta(30), 500)], 1_000, TODAY
    )


def test_instalment_dates_strictly_increase_from_today_and_amounts_are_positive() -> None:
    errors = rules.validate_instalments(
        "instalment_plan",
        [P(TODAY - dt.timedelta(1), 600), P(TODAY - dt.timedelta(1), 400), P(TODAY, 0)],
        1_000,
        TODAY,
    )
    fields = {e.field for e in errors}
    assert {"instalments[0].due_date", "instalments[1].due_date", "instalments[2].amount"} <= fields


def test_kinds_have_their_shapes() -> None:
    assert rules.validate_instalments("waiver", [], 0, TODAY) == []
    assert rules.validate_instalments("waiver", [P(TODAY, 1)], 1, TODAY)
    assert rules.validate_instalments("extension", [P(TODAY, 1), P(TODAY, 1)], 2, TODAY)
    assert rules.validate_instalments("instalment_plan", [P(TODAY, 1)], 1, TODAY)
    assert rules.validate_instalments("extension", [], 0, TODAY)
    assert rules.validate_instalments("barter", [], 0, TODAY)[0].field == "kind"


def test_expected_totals() -> None:
    waivers = {"penalty": 1}
    assert rules.expected_total("instalment_plan", BAL, 7, waivers) == rules.owed_total(BAL) - 1
    assert rules.expected_total("extension", BAL, 7, waivers) == 6
    assert rules.expected_total("settlement", BAL, 7, waivers) is None


@given(
    st.dictionaries(st.sampled_from(rules.WAIVABLE), st.integers(0, 10**9)),
    st.integers(0, 5 * 10**9),
)
def test_a_settlement_discount_never_exceeds_what_is_owed_and_sums_exactly(
    balances: dict[str, int], total: int
) -> None:
    w = rules.settlement_waivers(balances, total)
    owed = rules.owed_total(balances)
    assert rules.waived_total(w) == max(0, owed - total)
    assert all(0 <= w[c] <= balances.get(c, 0) for c in rules.WAIVABLE)
