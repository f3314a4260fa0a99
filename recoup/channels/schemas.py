"""API shapes of message templates, previews, sender details, the outbox, timelines and the
SMS gateway's webhooks."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints
from pydantic_core import PydanticCustomError

from recoup.channels import rules
from recoup.ledger.schemas import (
    STORABLE,
    BusinessDate,
    Code,
    Id,
    Input,
    Output,
    PageQuery,
    Ref,
    Str2000,
    Word,
)

Subject = Annotated[str, StringConstraints(max_length=rules.MAX_SUBJECT), STORABLE]
Body = Annotated[str, StringConstraints(min_length=1, max_length=rules.MAX_BODY), STORABLE]
SenderText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=rules.MAX_SENDER_VALUE), STORABLE
]
Language = Literal["zh", "en"]
LanguageIn = Literal["zh", "en", "zh-CN"]
Kind = Literal["message", "formal_notice", "lawyer_letter"]


class TemplateIn(Input):
    subject: Subject = Field("", description="one line; needed for emails and letters")
    body: Body = Field(description="Jinja2 text using the template variables")
    channels: list[Word] = Field(
        min_length=1, max_length=len(rules.CHANNELS), examples=[["sms", "email"]]
    )
    requires: list[Word] = Field(
        default_factory=list,
        max_length=len(rules.VARIABLES),
        description="variables the body must use",
        examples=[["amount", "dpd"]],
    )
    kind: Kind | None = Field(None, description="default: the kind of the active version")
    note: Str2000 | None = None
    by: Ref = "api"


class TemplateOut(Output):
    name: str
    language: str
    version: int = Field(description="0: the default shipped with Recoup")
    kind: str
    subject: str
    body: str
    channels: list[str]
    requires: list[str]
    is_active: bool
    source: Literal["catalog", "stored"]
    checksum: str
    created_by: str | None
    created_at: dt.datetime | None
    note: str | None


class PreviewIn(Input):
    account_id: Id
    as_of: BusinessDate
    channel: Word | None = Field(None, description="default: the template's first channel")
    language: LanguageIn | None = Field(None, description="default: the debtor's language")
    subject: Subject | None = Field(None, description="draft text to preview instead")
    body: Body | None = Field(None, description="draft text to preview instead")
    deadline_days: int = Field(rules.DEFAULT_DEADLINE_DAYS, ge=0, le=365)


class RenderedOut(Output):
    name: str
    language: str
    channel: str
    template_version: int | None = Field(description="None: a draft")
    subject: str
    body: str
    sha256: str
    placeholders: list[str] = Field(description="variables still holding a stand-in value")


class VariableOut(Output):
    name: str
    en: str
    zh: str
    example_en: str
    example_zh: str


class SenderProfileIn(Input):
    details: dict[Word, SenderText | dict[Language, SenderText]] = Field(
        examples=[{"service_phone": "400-820-0000", "law_firm": {"zh": "示例律师事务所"}}]
    )
    by: Ref = "api"


class SenderProfileOut(Output):
    creditor_id: int | None
    portfolio_id: int | None
    details: dict[str, str | dict[str, str]]
    updated_by: str
    updated_at: dt.datetime


# --------------------------------------------------------------------------- the outbox

MessageStatus = Literal[
    "pending", "sending", "sent", "delivered", "failed", "bounced", "blocked", "cancelled"
]
MessageChannel = Literal["sms", "email", "letter"]
TemplateName = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$"), Field(examples=["reminder_overdue"])
]
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def _instant(value: dt.datetime) -> dt.datetime:
    """An aware time as UTC, within the years the columns and the calendar rules handle."""
    try:
        utc = value.astimezone(dt.UTC)
    except (OverflowError, ValueError) as exc:
        raise PydanticCustomError("datetime_range", "out of range") from exc
    if not _EARLIEST <= utc < _LATEST:
        raise PydanticCustomError("datetime_range", "must be between 2000 and 2199")
    return utc


Instant = Annotated[AwareDatetime, AfterValidator(_instant)]


class OutboxQuery(PageQuery):
    status: MessageStatus | None = None
    account_id: Id | None = None


class OutboxMessageOut(Output):
    """One message of the outbox and what happened to it (see docs/channels.md, Outbox)."""

    id: int
    idempotency_key: str = Field(description="sent to the provider with every attempt")
    planned_action_id: int | None = Field(description="None: sent by hand")
    account_id: int
    debtor_id: int
    portfolio_id: int
    channel: str
    template: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime = Field(description="when it is due (pending), or was")
    locked_by: str | None = Field(description="the worker sending it now")
    locked_until: dt.datetime | None
    last_error: str | None
    rule_id: str | None = Field(description="the compliance rule that refused it")
    recipient: str | None
    language: str | None
    template_version: int | None
    subject: str | None
    body: str | None = Field(description="the text sent (set at the first attempt)")
    content_sha256: str | None
    provider_id: str | None = Field(description="the provider's id; letters: file#pages")
    batch_date: dt.date | None = Field(description="letters: the day of the print file")
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class OutboxStatsOut(Output):
    by_status: dict[str, int] = Field(description="every status, 0 when none")
    total: int


class MessageIn(Input):
    channel: MessageChannel
    template: TemplateName
    at: Instant | None = Field(
        None, description="when to send, with its zone (default: now); the guard decides then"
    )
    key: Code | None = Field(
        None, description="your idempotency key: the same key for the same account is one message"
    )


class TimelineQuery(Input):
    limit: int = Field(100, ge=1, le=500, description="entries, newest first")


class InteractionOut(Output):
    id: int
    account_id: int | None
    debtor_id: int | None
    channel: str
    direction: str = Field(description="out: we sent it; in: the debtor did")
    at: dt.datetime
    party: str
    contact_point_id: int | None
    address: str | None
    template: str | None
    subject: str | None
    content: str | None
    content_sha256: str | None
    provider_id: str | None
    delivery_status: str | None
    outbox_message_id: int | None
    created_by: str


# --------------------------------------------------------------------------- webhooks


class ReceiptOut(Output):
    message_id: int
    status: str = Field(description="the message's status after the receipt")


class InboundOut(Output):
    opt_out: bool = Field(description="the reply was an opt-out keyword (TD, 退订, STOP …)")
    opted_out: int = Field(description="contact points that became do-not-contact")
    recorded: int = Field(description="replies recorded on debtors' timelines")


class InboundSmsDoc(Input):
    """The inbound SMS webhook's body (documentation; the raw body is what is signed)."""

    from_: str = Field(alias="from", examples=["+8613800138000"])
    text: str = Field(examples=["TD"])
    at: str | int = Field(examples=["2026-07-02T10:05:00+08:00"])
    to: str | None = None
    id: str | None = Field(None, description="the gateway's id of the reply")


class ReceiptDoc(Input):
    """The delivery receipt webhook's body (documentation; the raw body is what is signed)."""

    id: str = Field(examples=["sms-00000001"], description="the id the gateway gave the message")
    status: Literal["delivered", "failed", "bounced", "sent"]
    at: str | int = Field(examples=["2026-07-02T10:00:05+08:00"])
    error: str | None = None
    idempotency_key: str | None = None
