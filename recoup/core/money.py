"""Exact money: integer minor units plus an ISO 4217 currency.

Amounts are stored in the database as integers in the currency's minor unit (fen, cent).
There is deliberately no constructor from float: a float amount is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

# ISO 4217 minor-unit exponents for the currencies Recoup is expected to meet; anything not listed
# has two decimals, which is true of almost every currency.
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3, "JOD": 3}

RoundingMode = Literal["half_up", "half_even"]
_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}


def exponent(currency: str) -> int:
    """Number of decimals of the currency's minor unit."""
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor(value: Decimal | int | str, currency: str, rounding: RoundingMode = "half_up") -> int:
    """Major-unit decimal -> integer minor units, rounded with the named mode."""
    if isinstance(value, float):  # pragma: no cover - defensive, typing forbids it
        raise TypeError("money is never built from float")
    try:
        dec = Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not dec.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    scaled = dec.scaleb(exponent(currency)).quantize(Decimal(1), rounding=_MODES[rounding])
    return int(scaled)


def to_major(minor: int, currency: str) -> Decimal:
    """Integer minor units -> exact Decimal in major units."""
    return Decimal(minor).scaleb(-exponent(currency))


def div_round_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounding half away from zero (exact, no floats)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    q, r = divmod(abs(numerator), denominator)
    if 2 * r >= denominator:
        q += 1
    return q if numerator >= 0 else -q


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("Money.minor must be an int (minor units)")
        if len(self.currency) != 3:
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    @classmethod
    def of(cls, value: Decimal | int | str, currency: str) -> Money:
        """Build from a major-unit amount, e.g. Money.of("12.34", "CNY")."""
        return cls(to_minor(value, currency), currency.upper())

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    @property
    def major(self) -> Decimal:
        return to_major(self.minor, self.currency)

    def __str__(self) -> str:
        return f"{self.major:,.{exponent(self.currency)}f} {self.currency}"
