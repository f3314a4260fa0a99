"""Pure decisions about promises to pay (承诺还款, PTP): what may be promised, and what a
promise became given what was paid. No database, no clock: `today` and `as_of` are passed in.

The daily cycle decides the same thing in SQL (recoup.promises.service.check_promises); a test
asserts that the two agree.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from recoup.core.errors import FieldError

# How the debtor says they will pay.
CHANNELS = ("bank_transfer", "card", "alipay", "wechat_pay", "cash", "other")
# open -> kept | partly_kept | broken (by the daily cycle) | cancelled (by a person or by a newer
# promise of the same account).
STATUSES = ("open", "kept", "partly_kept", "broken", "cancelled")
FINAL = ("kept", "partly_kept", "broken", "cancelled")
# account.promise_state, read by the strategy's segments: none | pending | kept | broken.
STATE_OF_STATUS = {"open": "pending", "kept": "kept", "partly_kept": "broken", "broken": "broken"}


def owed_total(balances: dict[str, int]) -> int:
    """What the account owes in all, in minor units: every component's balance less any credit
    (an overpayment held on the account)."""
    return (
        balances.get("principal", 0)
        + balances.get("interest", 0)
        + balances.get("fee", 0)
        + balances.get("penalty", 0)
        + balances.get("late_fee", 0)
        - balances.get("credit", 0)
    )


def promise_problems(
    amount: int,
    due_date: dt.date,
    channel: str | None,
    *,
    today: dt.date,
    owed: int,
    max_days: int,
) -> list[FieldError]:
    """Every reason the promise cannot be taken, in English and Chinese; empty when it can."""
    errors: list[FieldError] = []
    if isinstance(amount, bool) or not isinstance(amount, int):
        errors.append(
            FieldError("amount", amount, "integer minor units, not a fraction / 金额须为整数（分）")
        )
    elif amount <= 0:
        errors.append(FieldError("amount", amount, "must be more than zero / 承诺金额须大于零"))
    elif amount > owed:
        errors.append(
            FieldError(
                "amount",
                amount,
                f"more than the account owes ({owed}) / 承诺金额超过欠款总额（{owed}）",
            )
        )
    if due_date < today:
        errors.append(FieldError("due_date", due_date.isoformat(), "in the past / 承诺日期已过"))
    elif (due_date - today).days > max_days:
        latest = (today + dt.timedelta(days=max_days)).isoformat()
        errors.append(
            FieldError(
                "due_date",
                due_date.isoformat(),
                f"more than {max_days} days ahead (latest {latest}) / "
                f"承诺日期不得晚于{max_days}天后（{latest}）",
            )
        )
    if channel is not None and channel not in CHANNELS:
        errors.append(
            FieldError(
                "channel",
                channel,
                f"one of {', '.join(CHANNELS)} / 还款渠道须为其中之一",
            )
        )
    return errors


def verdict(amount: int, paid: int, due_date: dt.date, as_of: dt.date, grace_days: int) -> str:
    """The status of an open promise on `as_of`, given what was paid since it was made: kept as
    soon as the amount is paid (even before the due date); after the due date and the grace days,
    partly kept if something was paid, else broken; open until then."""
    if paid >= amount:
        return "kept"
    if due_date + dt.timedelta(days=grace_days) < as_of:
        return "partly_kept" if paid > 0 else "broken"
    return "open"


def kept_rate(kept: int, partly_kept: int, broken: int) -> Decimal | None:
    """Share of the resolved promises that were kept in full, to 4 decimals (half up); None
    when none was resolved. Open and cancelled promises do not count."""
    resolved = kept + partly_kept + broken
    if resolved == 0:
        return None
    return (Decimal(kept) / Decimal(resolved)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
