"""Pydantic models at the edge of the contacts API: logging a contact, its attachments, and
call scripts (话术).

Codes (channel, party, outcome, reason) are plain strings here and checked by
`rules.validate`, because the reasons are configurable; a bad code is a 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from recoup.contacts import rules
from recoup.ledger.schemas import (
    STORABLE,
    BusinessDate,
    Id,
    Input,
    Output,
    PositiveMinorUnits,
)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("give a time with its zone, e.g. 2026-11-23T10:00+08:00")
    return value


AwareDateTime = Annotated[dt.datetime, AfterValidator(_aware)]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=rules.MAX_NOTES), STORABLE
]


class PromiseIn(Input):
    """A promise to pay taken during the contact (承诺还款)."""

    amount_minor: PositiveMinorUnits
    due_date: BusinessDate
    channel: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None


class ContactIn(Input):
    """One contact logged by a collector (登记催收记录)."""

    channel: Word = Field(examples=["call"])
    party: Word = Field(default="self", examples=["self"])
    contact_point_id: Id | None = None
    outcome: Word = Field(examples=["promise"])
    reason_code: Word | None = Field(default=None, examples=["waiting_salary"])
    willingness: int | None = Field(default=None, description="还款意愿 1 (low) … 5 (high)")
    ability: int | None = Field(default=None, description="还款能力 1 (low) … 5 (high)")
    notes: Text | None = None
    duration_seconds: int | None = None
    # When the contact happened (default: now); checked by the guard at this instant.
    at: AwareDateTime | None = None
    # Collectors present at a field visit (CN: at least two).
    collectors: int = Field(default=1, ge=1, le=20)
    promise: PromiseIn | None = None
    callback_at: AwareDateTime | None = None

    def values(self) -> rules.ContactValues:
        return rules.ContactValues(
            channel=self.channel,
            party=self.party,
            outcome=self.outcome,
            reason_code=self.reason_code,
            willingness=self.willingness,
            ability=self.ability,
            notes=self.notes,
            duration_seconds=self.duration_seconds,
            contact_point_id=self.contact_point_id,
            has_promise=self.promise is not None,
            has_callback=self.callback_at is not None,
        )


class VerdictOut(BaseModel):
    """The guard's answer for a contact: allowed, a warning (logged anyway) or a block."""

    allowed: bool
    mode: str  # allowed | warn | block
    rule_id: str | None = None
    reason_en: str = ""
    reason_zh: str = ""


class HintOut(BaseModel):
    code: str
    en: str
    zh: str


class AttachmentOut(Output):
    id: int
    interaction_id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: dt.datetime


class ContactOut(Output):
    id: int
    account_id: int | None
    channel: str
    direction: str
    at: dt.datetime
    party: str
    contact_point_id: int | None
    outcome: str | None
    reason_code: str | None
    willingness: int | None
    ability: int | None
    notes: str | None
    duration_seconds: int | None
    guard_warning: str | None
    created_by: str
    user_id: int | None
    created_at: dt.datetime
    attachments: list[AttachmentOut] = Field(default_factory=list)


class LoggedOut(BaseModel):
    contact: ContactOut
    warning: VerdictOut | None = None
    promise_id: int | None = None
    task_id: int | None = None
    hints: list[HintOut] = Field(default_factory=list)


class CodeOut(BaseModel):
    code: str
    zh: str
    en: str


class ContactCodesOut(BaseModel):
    channels: list[CodeOut]
    parties: list[CodeOut]
    outcomes: list[CodeOut]
    reasons: list[CodeOut]
    scale: list[CodeOut]
    third_parties: list[str]
    connected_outcomes: list[str]


Line = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), STORABLE]


class StepIn(Input):
    id: str
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    say: list[Line] = Field(default_factory=list)
    tips: list[Line] = Field(default_factory=list)


class ScriptIn(Input):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    steps: list[StepIn] = Field(min_length=1, max_length=20)


class ScriptOut(BaseModel):
    stage: str
    reason: str
    language: str
    title: str
    source: str  # shipped | saved
    version: int | None = None
    steps: list[dict[str, Any]]


class CatalogEntryOut(BaseModel):
    stage: str
    reason: str
    language: str
    title: str
    source: str
    version: int | None = None
