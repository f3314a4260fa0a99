"""Tables of the strategy engine (催收策略): strategies, their versions, the active strategy of
each portfolio (with champion/challenger arms) and the actions the daily cycle plans."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from recoup.core.db import Base, UtcDateTime, utcnow

# Planned actions that are work for a person (the worklist's share of planned_action).
HUMAN_WORK = "status = 'planned' AND action_type IN ('call_task', 'field_visit')"


class Strategy(Base):
    __tablename__ = "strategy"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class StrategyVersion(Base):
    """One loaded strategy file, validated; never changed once stored (a change is a new
    version). `document` is the validated strategy as JSON; `source` the file as given."""

    __tablename__ = "strategy_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategy.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("strategy_id", "version", name="uq_strategy_version_strategy_id"),
    )


class StrategyAssignment(Base):
    """The strategy in force for a portfolio: one arm (the champion) or several weighted arms
    (champion/challenger). Accounts are split by a stable hash of account id and experiment."""

    __tablename__ = "strategy_assignment"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"), unique=True)
    experiment: Mapped[str] = mapped_column(String(64))
    # [{"arm": "champion", "version_id": 3, "weight": 80}, {"arm": "challenger", ...}]
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    activated_by: Mapped[str] = mapped_column(String(100))
    activated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class PlannedAction(Base):
    """One step of a treatment path due for an account (催收动作), written by the daily cycle.

    status: planned | blocked (by the compliance guard, rule_id and reason kept) | cancelled
    (paid, or the account left the segment) | done (carried out by a channel or a collector).
    Unique by account, step and planned date, so re-planning a date writes nothing new."""

    __tablename__ = "planned_action"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    debtor_id: Mapped[int] = mapped_column(Integer)
    portfolio_id: Mapped[int] = mapped_column(Integer)
    strategy_version_id: Mapped[int] = mapped_column(ForeignKey("strategy_version.id"))
    arm: Mapped[str] = mapped_column(String(32))
    segment: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64))
    action_type: Mapped[str] = mapped_column(String(32))
    template: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    planned_date: Mapped[dt.date] = mapped_column(Date)
    scheduled_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # overdue amount when planned
    status: Mapped[str] = mapped_column(String(16), default="planned")
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    cycle_date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("account_id", "step", "planned_date", name="uq_planned_action_account"),
        Index("ix_planned_action_status_scheduled", "status", "scheduled_at"),
        # Planning cancels pending actions per range of account ids.
        Index("ix_planned_action_status_account", "status", "account_id"),
        # The guard and the stage transitions read the day's actions per range of account ids.
        Index("ix_planned_action_cycle_account", "cycle_date", "account_id"),
        # The worklist reads each collector's calls and visits due, per account.
        Index(
            "ix_planned_action_human_due",
            "account_id",
            "scheduled_at",
            postgresql_where=text(HUMAN_WORK),
            sqlite_where=text(HUMAN_WORK),
        ),
    )
