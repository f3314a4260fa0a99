"""Promises to pay (承诺还款, PTP)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from recoup.core.db import Base, UtcDateTime, utcnow


class Promise(Base):
    """A promise to pay (承诺还款, PTP): amount by a date, through a channel. The daily cycle
    checks it against the payments posted from `created_on` through `due_date` (plus grace
    days): kept, partly_kept or broken."""

    __tablename__ = "promise"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    interaction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_on: Mapped[dt.date] = mapped_column(Date)
    due_date: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(
        String(16), default="open"
    )  # open | kept | partly_kept | broken | cancelled
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    checked_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    team_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_promise_open_due", "status", "due_date"),
        Index("ix_promise_account", "account_id"),
        # The worklist reads the open promises of each collector's accounts.
        Index(
            "ix_promise_open_account",
            "account_id",
            "due_date",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )
