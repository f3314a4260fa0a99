"""Pure decisions about arrangements (还款计划) and waivers (减免): instalments that add up,
amounts owed, the discount of a settlement as waivers, and approval limits per role.

No database, no clock: `today`, balances and limits are passed in. Amounts are integer minor
units; limits are whole percentages of a component's balance at proposal time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recoup.core.errors import FieldError

KINDS = ("waiver", "settlement", "instalment_plan", "extension")
# Components in the order a settlement's discount is counted against the limits: the charges
# a creditor gives up most easily first.
WAIVABLE = ("late_fee", "penalty", "interest", "fee", "principal")
# The charges that grow day by day while an account is overdue (the daily cycle's accrual),
# unlike interest and fees, which fall due with the instalments.
ACCRUING = ("late_fee", "penalty")
STATUSES = ("proposed", "approved", "rejected", "active", "completed", "broken", "cancelled")
OPEN_STATUSES = ("proposed", "approved", "active")


@dataclass(frozen=True, slots=True)
class PlannedInstalment:
    due_date: dt.date
    amount: int


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason_en: str = ""
    reason_zh: str = ""

    @property
    def reason(self) -> str:
        return f"{self.reason_en} / {self.reason_zh}" if self.reason_en else ""


def waived_total(waivers: Mapping[str, int]) -> int:
    return sum(waivers.get(c, 0) for c in WAIVABLE)


def owed_total(balances: Mapping[str, int]) -> int:
    """What the debtor owes now: every component's balance (credit is not netted)."""
    return sum(balances.get(c, 0) for c in WAIVABLE)


def settlement_waivers(balances: Mapping[str, int], total_amount: int) -> dict[str, int]:
    """The discount of a settlement (owed - agreed total) as waivers: late fee, penalty,
    interest, fee, then principal."""
    left = max(0, owed_total(balances) - total_amount)
    out = dict.fromkeys(WAIVABLE, 0)
    for c in WAIVABLE:
        part = min(left, max(0, balances.get(c, 0)))
        out[c] = part
        left -= part
    return out


def limit_amount(balance: int, pct: int) -> int:
    """The most a `pct` % limit allows of `balance`, rounded down to the minor unit."""
    return max(0, balance) * pct // 100


def within_limit(
    role: str,
    waivers: Mapping[str, int],
    balances: Mapping[str, int],
    limits: Mapping[str, Mapping[str, int]],
) -> tuple[bool, str, str]:
    """Whether `role` may waive `waivers` of these balances: (ok, reason_en, reason_zh), the
    reasons naming the first component above the limit, its amount and the limit."""
    role_limits = limits.get(role, {})
    for c in WAIVABLE:
        amount = waivers.get(c, 0)
        if amount <= 0:
            continue
        pct = int(role_limits.get(c, 0))
        allowed = limit_amount(balances.get(c, 0), pct)
        if amount > allowed:
            return (
                False,
                f"waiving {amount} of {c} is above the {role} limit of {allowed} "
                f"({pct}% of {balances.get(c, 0)})",
                f"{c} 减免 {amount} 超出 {role} 权限 {allowed}"
                f"（余额 {balances.get(c, 0)} 的 {pct}%）",
            )
    return True, "", ""


def approvers_for(
    waivers: Mapping[str, int],
    balances: Mapping[str, int],
    limits: Mapping[str, Mapping[str, int]],
    approver_roles: Sequence[str],
) -> list[str]:
    """The roles among `approver_roles` whose limit covers these waivers."""
    return [r for r in approver_roles if within_limit(r, waivers, balances, limits)[0]]


def validate_waivers(waivers: Mapping[str, int], balances: Mapping[str, int]) -> list[FieldError]:
    errors: list[FieldError] = []
    for c, amount in waivers.items():
        if c not in WAIVABLE:
            errors.append(FieldError(f"waivers.{c}", amount, f"one of {', '.join(WAIVABLE)}"))
        elif amount < 0:
            errors.append(FieldError(f"waivers.{c}", amount, "must not be negative / 不能为负"))
        elif amount > balances.get(c, 0):
            errors.append(
                FieldError(
                    f"waivers.{c}",
                    amount,
                    f"more than the balance of {balances.get(c, 0)} / 超过余额",
                )
            )
    return errors


def validate_instalments(
    kind: str,
    instalments: Sequence[PlannedInstalment],
    total_amount: int,
    today: dt.date,
    max_instalments: int = 60,
) -> list[FieldError]:
    """Instalments of an arrangement: positive amounts adding up exactly to `total_amount`,
    due dates strictly increasing, the first not before `today`. A pure waiver has none."""
    errors: list[FieldError] = []
    if kind not in KINDS:
        return [FieldError("kind", kind, f"one of {', '.join(KINDS)}")]
    if kind == "waiver":
        if instalments:
            errors.append(
                FieldError(
                    "instalments", len(instalments), "a waiver has no instalments / 减免无分期"
                )
            )
        if total_amount:
            errors.append(
                FieldError("total_amount", total_amount, "a waiver has no total / 减免无还款总额")
            )
        return errors
    if not instalments:
        return [FieldError("instalments", 0, "at least one instalment / 至少一期")]
    if kind == "extension" and len(instalments) != 1:
        errors.append(
            FieldError(
                "instalments", len(instalments), "an extension has one instalment / 展期仅一期"
            )
        )
    if kind == "instalment_plan" and len(instalments) < 2:
        errors.append(
            FieldError(
                "instalments",
                len(instalments),
                "a plan has at least two instalments (one is an extension) / 分期至少两期",
            )
        )
    if len(instalments) > max_instalments:
        errors.append(
            FieldError("instalments", len(instalments), f"at most {max_instalments} / 期数过多")
        )
    if total_amount <= 0:
        errors.append(FieldError("total_amount", total_amount, "must be positive / 必须为正"))
    for k, inst in enumerate(instalments):
        if inst.amount <= 0:
            errors.append(
                FieldError(f"instalments[{k}].amount", inst.amount, "must be positive / 必须为正")
            )
        if k == 0 and inst.due_date < today:
            errors.append(
                FieldError(
                    f"instalments[{k}].due_date",
                    inst.due_date.isoformat(),
                    f"in the past (today is {today.isoformat()}) / 不能早于今天",
                )
            )
        if k > 0 and inst.due_date <= instalments[k - 1].due_date:
            errors.append(
                FieldError(
                    f"instalments[{k}].due_date",
                    inst.due_date.isoformat(),
                    "must be after the previous instalment's / 到期日须严格递增",
                )
            )
    paid = sum(i.amount for i in instalments)
    if paid != total_amount:
        errors.append(
            FieldError(
                "instalments",
                paid,
                f"add up to {paid}, not the total of {total_amount} / 各期金额之和与总额不符",
            )
        )
    return errors


def expected_total(
    kind: str, balances: Mapping[str, int], overdue_amount: int, waivers: Mapping[str, int]
) -> int | None:
    """What the instalments must add up to: a plan re-schedules everything owed, an extension
    the overdue amount, both less the waivers; a settlement's total is agreed (None)."""
    if kind == "instalment_plan":
        return owed_total(balances) - waived_total(waivers)
    if kind == "extension":
        return overdue_amount - waived_total(waivers)
    return None


def decide_route(
    role: str,
    waivers: Mapping[str, int],
    balances: Mapping[str, int],
    limits: Mapping[str, Mapping[str, int]],
    approver_roles: Sequence[str],
) -> tuple[str, str | None, str, str]:
    """(route, component, reason_en, reason_zh): 'approve' within the proposer's own limit,
    'queue' within some approver's, 'refuse' above every limit, naming the component above
    the highest limit."""
    ok, en, zh = within_limit(role, waivers, balances, limits)
    if ok:
        return "approve", None, "", ""
    if approvers_for(waivers, balances, limits, approver_roles):
        return "queue", None, en, zh
    roles = [role, *approver_roles]
    top = {c: max(int(limits.get(r, {}).get(c, 0)) for r in roles) for c in WAIVABLE}
    for c in WAIVABLE:
        ok, en, zh = within_limit("highest", {c: waivers.get(c, 0)}, balances, {"highest": top})
        if not ok:
            return "refuse", c, en, zh
    return "refuse", None, en, zh  # pragma: no cover - the proposer's own limit is in `top`
