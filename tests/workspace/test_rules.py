"""Pure rules of the workspace: the worklist's expected value and the dealing of accounts."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from recoup.core.settings import Settings
from recoup.workspace import rules

S = Settings()
KW = {
    "probabilities": S.worklist_probability,
    "stage_weights": S.worklist_stage_weight,
    "efforts": S.worklist_effort,
}


def test_score_is_overdue_times_probability_times_stage_weight_over_effort() -> None:
    # 10,000.00 overdue, band B (0.45), hard stage (1.4), a call task (effort 1.0)
    assert (
        rules.expected_value(1_000_000, "B", "hard", ["call_task"], **KW) == 1_000_000 * 0.45 * 1.4
    )
    # a visit costs four times a call: the same account scores a quarter
    assert rules.expected_value(1_000_000, "B", "hard", ["field_visit"], **KW) == (
        1_000_000 * 0.45 * 1.4 / 4.0
    )


def test_the_cheapest_work_leads_and_unknown_bands_take_the_default() -> None:
    kinds = ["field_visit", "call_task", "promise_due"]
    assert rules.leading_kind(kinds, S.worklist_effort) == "promise_due"
    assert rules.expected_value(100, None, "early", kinds, **KW) == 100 * 0.25 * 1.0 / 0.7
    assert rules.expected_value(100, "Z", "early", kinds, **KW) == 100 * 0.25 / 0.7
    assert rules.expected_value(100, "A", "early", [], **KW) == 0.0
    # equal effort: a broken promise comes before a plain call
    assert rules.leading_kind(["call_task", "broken_promise"], S.worklist_effort) == (
        "broken_promise"
    )


def test_a_smaller_overdue_with_a_better_band_can_outrank_a_larger_one() -> None:
    small_good = rules.expected_value(500_000, "A", "early", ["call_task"], **KW)
    large_bad = rules.expected_value(1_500_000, "E", "early", ["call_task"], **KW)
    assert small_good > large_bad


def test_rule_matching_and_who_may_take_an_account() -> None:
    rule = rules.RuleSpec(
        id=1,
        stages=("early",),
        buckets=("M1",),
        regions=("北京市",),
        min_overdue=100,
        skill="english",
        match_language=True,
        team_id=7,
    )
    acc = rules.AccountFacts("early", "M1", 3, 150, region="北京市", language="en")
    assert rules.rule_matches(rule, acc)
    assert not rules.rule_matches(rule, rules.AccountFacts("hard", "M1", 3, 150, "北京市", "en"))
    assert not rules.rule_matches(rule, rules.AccountFacts("early", "M1", 3, 99, "北京市", "en"))
    assert not rules.rule_matches(rule, rules.AccountFacts("early", "M1", 3, 150, "上海市", "en"))
    ok = rules.CollectorFacts(1, 7, skills=("english",), languages=("en",))
    assert rules.can_take(rule, ok, "en", None)
    assert not rules.can_take(rule, ok, "zh-CN", None)  # match_language
    assert not rules.can_take(rule, rules.CollectorFacts(2, 8, ("english",), ("en",)), "en", None)
    assert not rules.can_take(rule, rules.CollectorFacts(3, 7, (), ("en",)), "en", None)
    agency_in_internal = rules.CollectorFacts(4, 7, ("english",), ("en",), role="agency")
    assert not rules.can_take(rule, agency_in_internal, "en", None)
    later = rules.RuleSpec(id=2, priority=200)
    assert rules.first_rule([later, rule], acc) == rule
    assert rules.first_rule([later, rule], rules.AccountFacts("hard", "M4", 1, 0)) == later


def test_deal_goes_to_the_least_loaded_and_respects_caps() -> None:
    assert rules.deal([0, 0, 0], [None, None, None], 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    # the loaded user gets nothing until the others catch up
    assert rules.deal([5, 0], [None, None], 6).tolist() == [1, 1, 1, 1, 1, 0]
    # caps: user 1 takes at most 3, then everyone is full
    assert rules.deal([0, 0], [2, 3], 7).tolist() == [0, 1, 0, 1, 1, -1, -1]
    assert rules.deal([], [], 2).tolist() == [-1, -1]
    assert rules.deal([9], [4], 1).tolist() == [-1]  # already above the cap


@given(
    loads=st.lists(st.integers(0, 50), min_size=1, max_size=8),
    caps=st.lists(st.one_of(st.none(), st.integers(0, 60)), min_size=8, max_size=8),
    n=st.integers(0, 300),
)
def test_deal_agrees_with_dealing_one_by_one(
    loads: list[int], caps: list[int | None], n: int
) -> None:
    caps = caps[: len(loads)]
    got = rules.deal(loads, caps, n)
    cur = list(loads)
    expected = []
    for _ in range(n):
        free = [u for u in range(len(cur)) if caps[u] is None or cur[u] < caps[u]]
        if not free:
            expected.append(-1)
            continue
        u = min(free, key=lambda u: (cur[u], u))
        cur[u] += 1
        expected.append(u)
    assert got.tolist() == expected
    assert isinstance(got, np.ndarray)
