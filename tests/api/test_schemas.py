"""The API's value types: exact conversions, and enums that match the domain's lists."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from recoup.core.errors import Invalid
from recoup.ledger import rules
from recoup.ledger import schemas as s


@pytest.mark.parametrize(
    ("literal", "domain"),
    [
        (s.Status, rules.STATUSES),
        (s.Method, rules.METHODS),
        (s.StopFlag, rules.STOP_FLAGS),
        (s.ContactKind, rules.CONTACT_KINDS),
        (s.ContactOwner, rules.CONTACT_OWNERS),
        (s.Component, rules.COMPONENTS),
    ],
)
def test_enums_match_the_domain(literal: object, domain: tuple[str, ...]) -> None:
    assert get_args(literal) == domain


@given(st.integers(min_value=0, max_value=rules.PPM))
def test_rate_round_trips_exactly(ppm: int) -> None:
    text = s.percent(ppm)
    assert (
        s.ProductIn(
            code="c", name="n", portfolio_id=1, kind="loan", interest_rate=text
        ).interest_rate
        == ppm
    )


@pytest.mark.parametrize(
    ("text", "ppm"), [("18.25", 182_500), ("0.0365", 365), ("100", 1_000_000), (" 7 ", 70_000)]
)
def test_rate_examples(text: str, ppm: int) -> None:
    body = s.ProductIn(code="c", name="n", portfolio_id=1, kind="loan", penalty_rate=text)
    assert body.penalty_rate == ppm


@given(
    st.integers(min_value=1, max_value=s.MAX_MINOR),
    st.sampled_from(["CNY", "USD", "JPY", "KWD"]),
)
def test_major_amount_converts_exactly(minor: int, currency: str) -> None:
    from recoup.core.money import to_major

    major = format(to_major(minor, currency), "f")
    body = s.PaymentIn(
        account_id=1, external_ref="r", amount=major, currency=currency, value_date="2026-01-01"
    )
    assert body.to_service()["amount"] == minor


def test_major_amount_never_rounds() -> None:
    body = s.PaymentIn(
        account_id=1, external_ref="r", amount="0.001", currency="CNY", value_date="2026-01-01"
    )
    with pytest.raises(Invalid) as err:
        body.to_service()
    assert err.value.errors[0].field == "amount"


def test_money_is_never_a_float() -> None:
    with pytest.raises(ValidationError) as err:
        s.PaymentIn(account_id=1, external_ref="r", amount_minor=100.0, value_date="2026-01-01")
    assert err.value.errors()[0]["loc"] == ("amount_minor",)
