"""Pure ledger decisions: schedules, allocation, DPD, buckets, stages, accrual and the cap.

No database, no clock, no I/O. Amounts are integer minor units, rates are annual parts per
million (ppm). Each rule that the daily cycle also runs in SQL has its scalar form here; tests
assert both forms agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, getcontext

from dateutil.relativedelta import relativedelta

from recoup.core.money import div_round_half_up

PPM = 1_000_000
DAYS_PER_YEAR = 365  # day-count basis ACT/365F for penalty and the cap
YEAR_PPM = DAYS_PER_YEAR * PPM

COMPONENTS = ("late_fee", "penalty", "fee", "interest", "principal")
DEFAULT_WATERFALL = ("late_fee", "penalty", "fee", "interest", "principal")
METHODS = ("annuity", "equal_principal", "bullet", "interest_only")
STOP_FLAGS = (
    "dispute",
    "cease_communication",
    "bankrupt",
    "deceased",
    "litigation_hold",
    "vulnerable",
)
CONTACT_OWNERS = ("self", "spouse", "relative", "employer", "guarantor", "emergency")
CONTACT_KINDS = ("phone", "email", "address")
STATUSES = (
    "current",
    "delinquent",
    "in_arrangement",
    "placed",
    "legal",
    "settled",
    "written_off",
)
# Statuses the daily cycle may move between by itself; the others are set by people or by
# later capabilities (arrangements, placements, legal cases) and the cycle leaves them be.
CYCLE_STATUSES = ("current", "delinquent")

getcontext().prec = 50


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True)
class ScheduledInstalment:
    seq: int
    due_date: dt.date
    principal: int
    interest: int
    fee: int = 0

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.fee


def due_dates(start: dt.date, term: int) -> list[dt.date]:
    """Monthly due dates: the same day of month as the start, clamped to the month's end."""
    return [start + relativedelta(months=k) for k in range(1, term + 1)]


def monthly_interest(balance: int, rate_ppm: int) -> int:
    """One month's interest on a balance at an annual rate (rate / 12), rounded half up."""
    return div_round_half_up(balance * rate_ppm, 12 * PPM)


ANNUITY_FACTOR_PLACES = Decimal("1e-20")


def annuity_factor(rate_ppm: int, term: int) -> Decimal:
    """r/(1-(1+r)^-n) with r = annual rate / 12, fixed to 20 decimal places so that the scalar
    and the vectorised (bulk import) schedule generators agree to the unit."""
    if rate_ppm == 0:
        return (Decimal(1) / Decimal(term)).quantize(ANNUITY_FACTOR_PLACES, rounding=ROUND_HALF_UP)
    r = Decimal(rate_ppm) / Decimal(12 * PPM)
    return (r / (1 - (1 + r) ** -term)).quantize(ANNUITY_FACTOR_PLACES, rounding=ROUND_HALF_UP)


def annuity_payment(principal: int, rate_ppm: int, term: int) -> int:
    """Equal instalment (等额本息) P*r/(1-(1+r)^-n), rounded half up to the minor unit."""
    product = Decimal(principal) * annuity_factor(rate_ppm, term)
    return int(product.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def generate_schedule(
    principal: int, rate_ppm: int, term: int, method: str, start: dt.date
) -> list[ScheduledInstalment]:
    """Instalments of a loan. Principal always sums exactly to `principal` (the last absorbs it)."""
    if principal <= 0:
        raise ValueError("principal must be positive")
    if term < 1 or term > 600:
        raise ValueError("term must be between 1 and 600 months")
    if rate_ppm < 0:
        raise ValueError("rate must not be negative")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    dates = due_dates(start, term)
    out: list[ScheduledInstalment] = []
    balance = principal
    if method == "bullet":
        # 到期一次还本付息: simple interest for the whole term, paid with the principal.
        interest = div_round_half_up(principal * rate_ppm * term, 12 * PPM)
        return [ScheduledInstalment(1, dates[-1], principal, interest)]
    payment = annuity_payment(principal, rate_ppm, term) if method == "annuity" else 0
    for k, due in enumerate(dates, start=1):
        interest = monthly_interest(balance, rate_ppm)
        if k == term:
            part = balance
        elif method == "annuity":
            part = min(max(payment - interest, 0), balance)
        elif method == "equal_principal":  # 等额本金
            part = min(principal // term, balance)
        else:  # interest_only, 先息后本
            part = 0
        out.append(ScheduledInstalment(k, due, part, interest))
        balance -= part
    return out


# --------------------------------------------------------------------------- allocation


@dataclass(frozen=True, slots=True)
class DueItem:
    """Something payable now: a component of an instalment, or an account-level charge
    (penalty, late fee) with seq None. `due_date` orders instalments oldest first."""

    component: str
    seq: int | None
    due_date: dt.date
    outstanding: int


@dataclass(frozen=True, slots=True)
class Allocation:
    component: str
    seq: int | None
    amount: int


@dataclass(slots=True)
class AllocationResult:
    allocations: list[Allocation] = field(default_factory=list)
    credit: int = 0

    @property
    def allocated(self) -> int:
        return sum(a.amount for a in self.allocations)


def allocate(
    amount: int,
    due_items: Sequence[DueItem],
    waterfall: Sequence[str] = DEFAULT_WATERFALL,
    future_principal: Sequence[DueItem] = (),
) -> AllocationResult:
    """Split a payment across what is due by the waterfall, oldest instalment first within each
    component; then prepay principal not yet due (oldest first); the rest is kept as credit."""
    if amount <= 0:
        raise ValueError("payment amount must be positive")
    unknown = [c for c in waterfall if c not in COMPONENTS]
    if unknown or sorted(waterfall) != sorted(COMPONENTS):
        raise ValueError(f"waterfall must order exactly these components: {', '.join(COMPONENTS)}")
    rank = {c: i for i, c in enumerate(waterfall)}
    ordered = sorted(
        (d for d in due_items if d.outstanding > 0),
        key=lambda d: (rank[d.component], d.due_date, d.seq or 0),
    )
    ordered += sorted(
        (d for d in future_principal if d.outstanding > 0), key=lambda d: (d.due_date, d.seq or 0)
    )
    left = amount
    result = AllocationResult()
    for item in ordered:
        if left == 0:
            break
        take = min(left, item.outstanding)
        result.allocations.append(Allocation(item.component, item.seq, take))
        left -= take
    result.credit = left
    return result


# --------------------------------------------------------------------------- delinquency


def days_past_due(oldest_unpaid_due: dt.date | None, as_of: dt.date) -> int:
    if oldest_unpaid_due is None:
        return 0
    return max(0, (as_of - oldest_unpaid_due).days)


def bucket_for(dpd: int, bounds: Sequence[int]) -> str:
    """M0 for dpd <= bounds[0] (0), M1 up to bounds[1], … and M<n>+ above the last bound."""
    for i, upper in enumerate(bounds):
        if dpd <= upper:
            return f"M{i}"
    return f"M{len(bounds)}+"


def stage_after(current: str, dpd: int, thresholds: Mapping[str, int]) -> str:
    """The stage after aging: the DPD's stage, except that a stage the strategy moved the
    account into (a transition) is kept while the account is overdue; a paid-up account is
    current again."""
    by_dpd = stage_for(dpd, thresholds)
    if dpd <= 0:
        return by_dpd
    order = ["current", *sorted(thresholds, key=lambda k: thresholds[k])]
    rank = {name: i for i, name in enumerate(order)}
    return by_dpd if rank[by_dpd] >= rank.get(current, 0) else current


def stage_for(dpd: int, thresholds: Mapping[str, int]) -> str:
    """The last stage whose threshold the DPD has reached; 'current' below the first."""
    stage = "current"
    for name, lower in thresholds.items():
        if dpd >= lower:
            stage = name
    return stage


def next_status(status: str, dpd: int, fully_paid: bool) -> str:
    if fully_paid and status in (*CYCLE_STATUSES, "in_arrangement"):
        return "settled"
    if status not in CYCLE_STATUSES:
        return status
    return "delinquent" if dpd > 0 else "current"


# --------------------------------------------------------------------------- accrual and cap


def scaled_rate_amount(base_days: int, rate_ppm: int, round_up_half: bool = True) -> int:
    """base_days * rate_ppm / (365 * 1e6), exactly, without 64-bit overflow in SQL.

    The cycle's SQL uses this same decomposition: (S // K) * r + ((S % K) * r + K/2) // K.
    """
    k = YEAR_PPM
    whole, rest = divmod(base_days, k)
    half = k // 2 if round_up_half else 0
    return whole * rate_ppm + (rest * rate_ppm + half) // k


@dataclass(frozen=True, slots=True)
class OpenInstalment:
    """An unpaid instalment, as the accrual rule sees it."""

    seq: int
    due_date: dt.date
    principal_unpaid: int
    total_unpaid: int


def penalty_days(
    due: dt.date, grace_days: int, accrued_through: dt.date | None, as_of: dt.date
) -> int:
    """Days in (accrued_through, as_of] that lie after the grace period of an instalment."""
    start = due + dt.timedelta(days=grace_days)
    if accrued_through is not None and accrued_through > start:
        start = accrued_through
    return max(0, (as_of - start).days)


def crossed_grace(
    due: dt.date, grace_days: int, accrued_through: dt.date | None, as_of: dt.date
) -> bool:
    """Whether the instalment's grace period ended within (accrued_through, as_of]: the late
    fee (滞纳金) is charged once, on the first run that sees the instalment past its grace."""
    end = due + dt.timedelta(days=grace_days)
    return end < as_of and (accrued_through is None or end >= accrued_through)


def cap_total(
    principal: int, cap_rate_ppm: int | None, start: dt.date, as_of: dt.date
) -> int | None:
    """Most that interest + penalty + fees may add up to by `as_of` (rounded down)."""
    if cap_rate_ppm is None:
        return None
    elapsed = max(0, (as_of - start).days)
    return scaled_rate_amount(principal * elapsed, cap_rate_ppm, round_up_half=False)


@dataclass(frozen=True, slots=True)
class Accrual:
    penalty: int
    late_fee: int


def accrue(
    open_instalments: Sequence[OpenInstalment],
    *,
    as_of: dt.date,
    accrued_through: dt.date | None,
    penalty_rate_ppm: int,
    late_fee_fixed: int,
    late_fee_rate_ppm: int,
    grace_days: int,
    principal: int,
    cap_rate_ppm: int | None,
    start_date: dt.date,
    charges_total: int,
) -> Accrual:
    """Penalty (罚息) on unpaid principal for each day past grace, and a late fee (滞纳金) once per
    instalment, limited so that all charges never exceed the annualised cap."""
    base_days = 0
    late_fee = 0
    for inst in open_instalments:
        if inst.due_date >= as_of:
            continue
        base_days += inst.principal_unpaid * penalty_days(
            inst.due_date, grace_days, accrued_through, as_of
        )
        if crossed_grace(inst.due_date, grace_days, accrued_through, as_of):
            late_fee += late_fee_fixed + div_round_half_up(
                inst.total_unpaid * late_fee_rate_ppm, PPM
            )
    penalty = scaled_rate_amount(base_days, penalty_rate_ppm)
    limit = cap_total(principal, cap_rate_ppm, start_date, as_of)
    if limit is not None:
        room = max(0, limit - charges_total)
        penalty = min(penalty, room)
        late_fee = min(late_fee, room - penalty)
    return Accrual(penalty, late_fee)


def lpr_at(day: dt.date, table: Sequence[tuple[dt.date, int]]) -> int:
    """The one-year LPR (basis points) in force on `day`."""
    rate: int | None = None
    for effective, bp in sorted(table):
        if effective <= day:
            rate = bp
    if rate is None:
        raise ValueError(f"no LPR value configured on or before {day.isoformat()}")
    return rate


def resolve_cap(
    preset: str,
    cap_rate_ppm: int | None,
    contract_date: dt.date,
    lpr_table: Sequence[tuple[dt.date, int]],
) -> int | None:
    """Annual cap in ppm for an account, fixed at its contract date."""
    if preset == "none":
        return None
    if preset == "annual_rate":
        if cap_rate_ppm is None:
            raise ValueError("cap preset 'annual_rate' needs cap_rate")
        return cap_rate_ppm
    if preset == "cn_private_lending":
        # SPC 2020 interpretation on private lending (法释〔2020〕17号), art. 25:
        # four times the one-year LPR at the time the contract was made.
        return 4 * lpr_at(contract_date, lpr_table) * 100
    raise ValueError(f"unknown cap preset {preset!r}")
