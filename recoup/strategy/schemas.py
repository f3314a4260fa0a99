"""API shapes of the strategy engine."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from recoup.ledger.schemas import STORABLE, Code, Input, Output, PageQuery, Ref, Word

Source = Annotated[str, StringConstraints(min_length=1, max_length=1_000_000), STORABLE]


class StrategySourceIn(Input):
    source: Source = Field(description="the strategy file (YAML)")
    by: Ref = "api"


class StrategyVersionOut(Output):
    strategy: str
    version: int
    checksum: str
    created_by: str
    created_at: dt.datetime
    document: dict[str, Any]
    new: bool | None = None


class ArmsIn(Input):
    arms: list[str] = Field(
        min_length=1,
        max_length=10,
        description="strategy[@version][:weight], the first is the champion",
        examples=[["default@1:80", "default@2:20"]],
    )
    experiment: Code | None = None
    by: Ref = "api"


class AssignmentOut(Output):
    portfolio: str
    experiment: str
    arms: list[dict[str, Any]]
    activated_by: str
    activated_at: dt.datetime


class FindingOut(Output):
    severity: Literal["error", "warning"]
    code: str
    path: str
    message_en: str
    message_zh: str


class ActionQuery(PageQuery):
    account_id: int | None = Field(None, ge=1, le=2**31 - 1)
    status: Literal["planned", "blocked", "cancelled", "done"] | None = None
    cycle_date: dt.date | None = None
    action_type: Word | None = None


class ActionOut(Output):
    id: int
    account_id: int
    portfolio_id: int
    strategy_version_id: int
    arm: str
    segment: str
    step: str
    action_type: str
    template: str | None
    stage: str | None
    planned_date: dt.date
    scheduled_at: dt.datetime
    priority: int
    amount: int
    status: str
    rule_id: str | None
    reason: str | None
    cycle_date: dt.date
