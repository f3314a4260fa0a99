from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recoup.core.money import Money, div_round_half_up, to_major, to_minor


def test_to_minor_rounds_half_up_by_default() -> None:
    assert to_minor("12.345", "CNY") == 1235
    assert to_minor("12.345", "CNY", rounding="half_even") == 1234
    assert to_minor(Decimal("1000"), "JPY") == 1000
    assert to_minor("1.0005", "KWD") == 1001


def test_to_minor_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not an amount"):
        to_minor("12,34x", "CNY")
    with pytest.raises(ValueError, match="not an amount"):
        to_minor("NaN", "CNY")


def test_money_has_no_float_constructor_and_checks_currency() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="currency mismatch"):
        _ = Money(1, "CNY") + Money(1, "USD")
    assert str(Money(123456, "CNY")) == "1,234.56 CNY"


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_minor_major_round_trip(minor: int) -> None:
    assert to_minor(to_major(minor, "CNY"), "CNY") == minor


@given(st.integers(min_value=-(10**18), max_value=10**18), st.integers(1, 10**12))
def test_div_round_half_up_matches_decimal(n: int, d: int) -> None:
    expected = (Decimal(n) / Decimal(d)).quantize(Decimal(1), rounding="ROUND_HALF_UP")
    assert div_round_half_up(n, d) == int(expected)
