"""API shapes of the compliance guard."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from recoup.ledger.schemas import STORABLE, Code, Input, Output, PageQuery, Reason, Ref, Word

LongText = Annotated[str, StringConstraints(max_length=20_000), STORABLE]

Channel = Literal["sms", "email", "call", "voice", "letter", "visit"]


class BlockQuery(PageQuery):
    rule_id: Code | None = None
    account_id: int | None = Field(None, ge=1, le=2**31 - 1)
    since: AwareDatetime | None = None


class BlockOut(Output):
    id: int
    checked_at: dt.datetime
    subject: str
    subject_id: int | None
    account_id: int | None
    debtor_id: int | None
    portfolio_id: int | None
    channel: str
    jurisdiction: str
    rule_id: str
    reason_en: str
    reason_zh: str
    context: dict[str, Any]


class RuleCountOut(Output):
    rule_id: str
    blocked: int


class ContactCheckIn(Input):
    account_id: int = Field(ge=1, le=2**31 - 1)
    channel: Channel
    at: AwareDatetime
    contact_point_id: int | None = Field(None, ge=1, le=2**31 - 1)
    purpose: Literal["collect", "locate"] = "collect"
    text: LongText | None = None
    collectors: int = Field(1, ge=1, le=20)
    threatens_suit: bool = Field(
        False, description="the contact brings or threatens legal action (also read from text)"
    )


class VerdictOut(Output):
    allowed: bool
    rule_id: str | None
    reason_en: str
    reason_zh: str


class ContactEventIn(Input):
    account_id: int = Field(ge=1, le=2**31 - 1)
    channel: Channel
    at: AwareDatetime
    contact_point_id: int | None = Field(None, ge=1, le=2**31 - 1)
    party: Literal["self", "spouse", "relative", "employer", "guarantor", "emergency"] = "self"
    automated: bool = False
    connected: bool = False
    conversation: bool = False
    agency: Code | None = None
    source: Word = "manual"


class ContactEventOut(Output):
    id: int
    account_id: int
    debtor_id: int
    channel: str
    at: dt.datetime
    connected: bool
    conversation: bool


class OverridesIn(Input):
    overrides: dict[str, Any]
    note: Reason | None = None
    by: Ref = "api"
