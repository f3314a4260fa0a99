"""Tables of the compliance guard: every blocked action with its rule and reason, every contact
attempt and conversation (the counters of the frequency rules), and per-portfolio overrides of
the rule set's numbers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from recoup.core.db import Base, UtcDateTime, utcnow


class ComplianceBlock(Base):
    """A contact the guard refused: never silently dropped (kept for the retention period).

    subject: planned_action | message | manual_contact; subject_id is that row's id."""

    __tablename__ = "compliance_block"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    checked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    subject: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    debtor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    portfolio_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    jurisdiction: Mapped[str] = mapped_column(String(8))
    rule_id: Mapped[str] = mapped_column(String(64))
    reason_en: Mapped[str] = mapped_column(Text)
    reason_zh: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_compliance_block_rule_checked", "rule_id", "checked_at"),
        Index("ix_compliance_block_account", "account_id"),
    )


class ContactEvent(Base):
    """One contact attempt with a debtor or a third party, by any channel, by the creditor or
    any of its agencies: what the frequency rules count. `connected` means someone answered;
    `conversation` that a conversation about the debt took place."""

    __tablename__ = "contact_event"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    debtor_id: Mapped[int] = mapped_column(Integer)
    contact_point_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    party: Mapped[str] = mapped_column(String(16), default="self")
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    automated: Mapped[bool] = mapped_column(Boolean, default=False)
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    conversation: Mapped[bool] = mapped_column(Boolean, default=False)
    agency: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: the creditor
    source: Mapped[str] = mapped_column(String(32), default="manual")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_contact_event_account_at", "account_id", "at"),
        Index("ix_contact_event_debtor_at", "debtor_id", "at"),
        Index("ix_contact_event_point_at", "contact_point_id", "at"),
    )


class ComplianceSetting(Base):
    """A compliance officer's changes to the numbers of a portfolio's rule set."""

    __tablename__ = "compliance_setting"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"), unique=True)
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
