"""API shapes of message templates, previews and sender details."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from recoup.channels import rules
from recoup.ledger.schemas import STORABLE, BusinessDate, Id, Input, Output, Ref, Str2000, Word

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
