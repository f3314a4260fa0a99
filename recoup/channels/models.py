"""Tables of the channels capability: stored versions of message templates (消息模板), and the
sender details of a creditor or a portfolio that messages and letters quote (customer service
phone, how to dispute, how to pay, the law firm acting for the creditor)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from recoup.core.db import Base, UtcDateTime, utcnow


class MessageTemplate(Base):
    """One saved version of a template in one language; never changed once stored (saving makes
    a new version, which becomes the active one for its name and language). A name without a
    stored version uses the shipped catalogue (channels/templates/catalog.yaml)."""

    __tablename__ = "message_template"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))  # zh | en
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="message")
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    channels: Mapped[list[str]] = mapped_column(JSON)
    requires: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    checksum: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("name", "language", "version", name="uq_message_template_version"),
        Index("ix_message_template_active", "name", "language", "is_active"),
    )


class SenderProfile(Base):
    """What messages and letters say about the sender, for a creditor (creditor_id) or for one
    portfolio (portfolio_id, which wins over its creditor's). `details` maps a variable
    (service_phone, dispute_contact, payment_instructions, law_firm, collector_name,
    creditor_address, self_service_base_url, unsubscribe_base_url) to one text or to
    {"zh": …, "en": …}."""

    __tablename__ = "sender_profile"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    creditor_id: Mapped[int | None] = mapped_column(
        ForeignKey("creditor.id"), unique=True, nullable=True
    )
    portfolio_id: Mapped[int | None] = mapped_column(
        ForeignKey("portfolio.id"), unique=True, nullable=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("(creditor_id IS NULL) <> (portfolio_id IS NULL)", name="one_owner"),
    )


class OutboxMessage(Base):
    """A message to send (发送队列): written in the same transaction as the decision that causes
    it (the daily cycle's planning, or a person), sent by a worker. The single source of truth
    for what must go out and what happened to it.

    status: pending -> sending -> sent -> delivered, or failed / bounced; blocked (the guard
    refused it at send time) and cancelled (its action was cancelled, or the account was paid)
    end it without sending. `idempotency_key` goes to the provider with every attempt."""

    __tablename__ = "outbox_message"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    planned_action_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    debtor_id: Mapped[int] = mapped_column(Integer)
    portfolio_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))  # sms | email | letter
    template: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    contact_point_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(300), nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    template_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    batch_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # letters
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        # Workers claim what is due, oldest first.
        Index("ix_outbox_message_status_next", "status", "next_attempt_at"),
        # Delivery receipts find their message by the provider's id.
        Index("ix_outbox_message_provider", "provider_id"),
    )


class Interaction(Base):
    """One entry of an account's timeline (互动记录): a message or letter sent, a reply
    received, and (workspace) a call or visit logged. What was said is kept with its SHA-256
    so that it can be shown later to be what went out (保留证据)."""

    __tablename__ = "interaction"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), nullable=True)
    debtor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8), default="out")  # out | in
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    party: Mapped[str] = mapped_column(String(16), default="self")
    contact_point_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    template: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    content: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delivery_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outbox_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    # A contact logged by a person (workspace): who, the outcome code, the reason for
    # delinquency, the willingness and ability to pay (还款意愿 / 还款能力, 1 low … 5 high), notes.
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    willingness: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ability: Mapped[int | None] = mapped_column(Integer, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    guard_warning: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_interaction_account_at", "account_id", "at"),)
