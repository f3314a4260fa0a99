"""Pydantic models at the edge of the promises API. Money is integer minor units in fields named
`*_minor`, with its currency; dates are YYYY-MM-DD (the input rules of recoup.ledger.schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from recoup.ledger.schemas import (
    BusinessDate,
    Currency,
    Id,
    Input,
    Notes,
    PageQuery,
    PositiveMinorUnits,
    Reason,
)

Channel = Literal["bank_transfer", "card", "alipay", "wechat_pay", "cash", "other"]
Status = Literal["open", "kept", "partly_kept", "broken", "cancelled"]


class PromiseIn(Input):
    amount_minor: PositiveMinorUnits
    currency: Currency | None = Field(None, description="if given, the account's currency")
    due_date: BusinessDate = Field(
        description="not before today, at most `promise_max_days` (default 30) ahead"
    )
    channel: Channel | None = None
    interaction_id: Id | None = Field(None, description="the contact in which it was made")
    note: Notes | None = None


class PromiseCancel(Input):
    reason: Reason


class PromiseQuery(PageQuery):
    account_id: Id | None = None
    status: Status | None = None
    due_from: BusinessDate | None = None
    due_to: BusinessDate | None = None


class AccountPromiseQuery(PageQuery):
    status: Status | None = None


class PromiseStatsQuery(Input):
    group_by: Literal["user", "team"] = "user"
    date_from: BusinessDate = Field(description="promises due from this date")
    date_to: BusinessDate = Field(description="through this date")

    @model_validator(mode="after")
    def _ordered(self) -> PromiseStatsQuery:
        if self.date_to < self.date_from:
            raise ValueError("date_to is before date_from / 结束日期早于开始日期")
        return self


class PromiseOut(BaseModel):
    id: int
    account_id: int
    amount_minor: int
    currency: str
    created_on: dt.date
    due_date: dt.date
    channel: str | None
    status: str = Field(description="open | kept | partly_kept | broken | cancelled")
    paid_amount_minor: int = Field(description="paid since the promise was made, at the last check")
    checked_on: dt.date | None
    interaction_id: int | None
    user_id: int | None
    team_id: int | None
    created_by: str
    created_at: dt.datetime
    note: str | None

    @classmethod
    def of(cls, row: Any) -> PromiseOut:
        return cls(
            id=row.id,
            account_id=row.account_id,
            amount_minor=row.amount,
            currency=row.currency,
            created_on=row.created_on,
            due_date=row.due_date,
            channel=row.channel,
            status=row.status,
            paid_amount_minor=row.paid_amount,
            checked_on=row.checked_on,
            interaction_id=row.interaction_id,
            user_id=row.user_id,
            team_id=row.team_id,
            created_by=row.created_by,
            created_at=row.created_at,
            note=row.note,
        )


class PromiseStatsOut(BaseModel):
    user_id: int | None
    team_id: int | None
    name: str
    currency: str
    made: int
    kept: int
    partly_kept: int
    broken: int
    open: int
    kept_rate: str | None = Field(
        description='kept / (kept + partly kept + broken) as a decimal string, e.g. "0.7500"; '
        "null when none was resolved"
    )
    promised_amount_minor: int
    paid_amount_minor: int

    @classmethod
    def of(cls, row: Any) -> PromiseStatsOut:
        return cls(
            user_id=row.user_id,
            team_id=row.team_id,
            name=row.name,
            currency=row.currency,
            made=row.made,
            kept=row.kept,
            partly_kept=row.partly_kept,
            broken=row.broken,
            open=row.open,
            kept_rate=None if row.kept_rate is None else str(row.kept_rate),
            promised_amount_minor=row.promised_amount,
            paid_amount_minor=row.paid_amount,
        )
