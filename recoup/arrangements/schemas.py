"""Pydantic models at the edge of the arrangements API. Money is integer minor units in fields
named `*_minor`; dates are YYYY-MM-DD."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from recoup.arrangements import rules
from recoup.ledger.schemas import (
    BusinessDate,
    Input,
    MinorUnits,
    PositiveMinorUnits,
    Str2000,
)

Kind = Literal["waiver", "settlement", "instalment_plan", "extension"]


class WaiversIn(Input):
    """Amounts to forgive, by component, in minor units."""

    late_fee_minor: MinorUnits = 0
    penalty_minor: MinorUnits = 0
    interest_minor: MinorUnits = 0
    fee_minor: MinorUnits = 0
    principal_minor: MinorUnits = 0

    def by_component(self) -> dict[str, int]:
        return {c: getattr(self, f"{c}_minor") for c in rules.WAIVABLE}


class InstalmentIn(Input):
    due_date: BusinessDate
    amount_minor: PositiveMinorUnits


class ArrangementIn(Input):
    """An arrangement to propose. A `waiver` has no instalments; a `settlement` gives the agreed
    `total_amount_minor` (its discount is the waiver); a plan or an extension gives instalments
    adding up to what is owed (a plan) or overdue (an extension) less the waivers."""

    kind: Kind
    waivers: WaiversIn = Field(default_factory=WaiversIn)
    instalments: list[InstalmentIn] = Field(default_factory=list, max_length=600)
    total_amount_minor: MinorUnits = 0
    reason: Str2000 | None = None

    def to_service(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "waivers": self.waivers.by_component(),
            "instalments": [
                rules.PlannedInstalment(i.due_date, i.amount_minor) for i in self.instalments
            ],
            "total_amount": self.total_amount_minor,
            "reason": self.reason,
        }


class DecisionIn(Input):
    note: Str2000 | None = None


class WaiversOut(BaseModel):
    late_fee_minor: int
    penalty_minor: int
    interest_minor: int
    fee_minor: int
    principal_minor: int


class InstalmentOut(BaseModel):
    seq: int
    due_date: dt.date
    amount_minor: int
    paid_amount_minor: int


class ArrangementOut(BaseModel):
    id: int
    account_id: int
    kind: str
    status: str
    currency: str
    total_amount_minor: int
    waivers: WaiversOut
    instalments: list[InstalmentOut]
    basis: dict[str, Any] = Field(description="the account's balances when proposed")
    reason: str | None
    proposed_by: str
    proposed_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_note: str | None
    ended_on: dt.date | None

    @classmethod
    def of(cls, arr: Any, instalments: list[Any]) -> ArrangementOut:
        return cls(
            id=arr.id,
            account_id=arr.account_id,
            kind=arr.kind,
            status=arr.status,
            currency=arr.currency,
            total_amount_minor=arr.total_amount,
            waivers=WaiversOut(
                **{f"{c}_minor": int(getattr(arr, f"waive_{c}")) for c in rules.WAIVABLE}
            ),
            instalments=[
                InstalmentOut(
                    seq=i.seq,
                    due_date=i.due_date,
                    amount_minor=i.amount,
                    paid_amount_minor=i.paid_amount,
                )
                for i in instalments
            ],
            basis=dict(arr.basis or {}),
            reason=arr.reason,
            proposed_by=arr.proposed_by,
            proposed_at=arr.proposed_at,
            decided_by=arr.decided_by,
            decided_at=arr.decided_at,
            decision_note=arr.decision_note,
            ended_on=arr.ended_on,
        )
