"""Pydantic models at the edge of the workspace API: assignment rules, manual assignment and
its history, the worklist and follow-up tasks."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from recoup.ledger.schemas import MAX_ID, MAX_MINOR, STORABLE, Input, Name, Output, Page

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# STORABLE: no NUL or lone surrogate, which a database cannot keep (422, not 500).
Code = Annotated[str, Field(min_length=1, max_length=64), STORABLE]
Note = Annotated[str, Field(max_length=2000), STORABLE]
WorkKind = Literal[
    "broken_promise",
    "broken_arrangement",
    "promise_due",
    "callback",
    "follow_up",
    "call_task",
    "field_visit",
]
TaskKind = Literal["callback", "broken_promise", "broken_arrangement", "follow_up"]

__all__ = ["Page"]


class RuleBase(Input):
    priority: int = Field(100, ge=0, le=1_000_000, description="lower is tried first")
    stages: list[Code] = Field(default_factory=list, max_length=20)
    buckets: list[Code] = Field(default_factory=list, max_length=20)
    portfolio_ids: list[Id] = Field(default_factory=list, max_length=1000)
    regions: list[Code] = Field(default_factory=list, max_length=1000)
    languages: list[Code] = Field(default_factory=list, max_length=50)
    min_overdue: int | None = Field(None, ge=0, le=MAX_MINOR, description="minor units")
    skill: Code | None = None
    match_language: bool = False
    match_region: bool = False
    team_id: Id | None = None
    is_active: bool = True


class RuleIn(RuleBase):
    name: Name


class RulePatch(Input):
    """Only the fields sent are changed."""

    name: Name | None = None
    priority: int | None = Field(None, ge=0, le=1_000_000)
    stages: list[Code] | None = Field(None, max_length=20)
    buckets: list[Code] | None = Field(None, max_length=20)
    portfolio_ids: list[Id] | None = Field(None, max_length=1000)
    regions: list[Code] | None = Field(None, max_length=1000)
    languages: list[Code] | None = Field(None, max_length=50)
    min_overdue: int | None = Field(None, ge=0, le=MAX_MINOR)
    skill: Code | None = None
    match_language: bool | None = None
    match_region: bool | None = None
    team_id: Id | None = None
    is_active: bool | None = None


class RuleOut(Output):
    id: int
    name: str
    priority: int
    stages: list[str]
    buckets: list[str]
    portfolio_ids: list[int]
    regions: list[str]
    languages: list[str]
    min_overdue: int | None
    skill: str | None
    match_language: bool
    match_region: bool
    team_id: int | None
    is_active: bool
    created_at: dt.datetime


class RunIn(Input):
    as_of: dt.date | None = Field(None, description="business date (default: today)")


class RunOut(BaseModel):
    as_of: dt.date
    counts: dict[str, int]


class ReassignIn(Input):
    account_ids: list[Id] = Field(min_length=1, max_length=10_000)
    user_id: Id | None = None
    team_id: Id | None = None
    note: Note | None = None


class ReassignOut(BaseModel):
    moved: int


class HistoryOut(Output):
    id: int
    account_id: int
    user_id: int | None
    team_id: int | None
    previous_user_id: int | None
    stage: str
    reason: str
    rule_id: int | None
    note: str | None
    at: dt.datetime
    by: str


class WorkItemOut(Output):
    account_id: int
    external_ref: str
    debtor_name: str
    dpd: int
    bucket: str
    stage: str
    overdue_amount_minor: int = Field(validation_alias="overdue_amount", description="minor units")
    currency: str
    risk_band: str | None
    reason: str = Field(description="the kind of work that leads")
    reasons: list[str]
    due_at: dt.datetime | None
    score: float = Field(description="expected value: overdue x probability x stage / effort")


class WorklistPage(BaseModel):
    items: list[WorkItemOut]
    total: int
    limit: int
    offset: int


class TaskIn(Input):
    account_id: Id
    kind: TaskKind
    due_at: dt.datetime = Field(description="with its zone, e.g. 2026-11-24T15:00:00+08:00")
    user_id: Id | None = None
    note: Note | None = None


class TaskOut(Output):
    id: int
    account_id: int
    kind: str
    due_at: dt.datetime
    user_id: int | None
    status: str
    note: str | None
    created_by: str
    created_at: dt.datetime
    done_at: dt.datetime | None


class TaskDoneIn(Input):
    status: Literal["done", "cancelled"] = "done"
