"""Arrangements (还款计划) and waivers (减免), with their instalments."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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


class Arrangement(Base):
    """A payment arrangement (还款计划) or waiver (减免): instalment plan, extension, settlement
    at a discount, or a waiver of penalty, fees or interest. Proposed, then approved by someone
    whose limit covers it, then active; a broken one returns the account to its strategy."""

    __tablename__ = "arrangement"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    kind: Mapped[str] = mapped_column(
        String(24)
    )  # instalment_plan | extension | settlement | waiver
    # proposed | approved | rejected | active | completed | broken | cancelled
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    currency: Mapped[str] = mapped_column(String(3))
    # Amounts forgiven, by component, in minor units.
    waive_late_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    waive_penalty: Mapped[int] = mapped_column(BigInteger, default=0)
    waive_interest: Mapped[int] = mapped_column(BigInteger, default=0)
    waive_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    waive_principal: Mapped[int] = mapped_column(BigInteger, default=0)
    # What the debtor pays under the arrangement, in total (the sum of its instalments).
    total_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # The account's balances when proposed, to check limits and detect a stale proposal.
    basis: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proposed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    ended_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)

    __table_args__ = (Index("ix_arrangement_status", "status"),)


class ArrangementInstalment(Base):
    """One instalment of an arrangement: an amount due on a date."""

    __tablename__ = "arrangement_instalment"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    arrangement_id: Mapped[int] = mapped_column(ForeignKey("arrangement.id"))
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (UniqueConstraint("arrangement_id", "seq", name="uq_arrangement_instalment"),)
