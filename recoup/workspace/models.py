"""Tables of the collector's workspace: case assignment (分案), its rules and history, and
follow-up tasks (callbacks, broken promises) that feed the worklist."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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


class Assignment(Base):
    """Who works an account now: one row per assigned account (the history is in
    assignment_history). `stage` is the account's stage when assigned: an account stays with
    its collector within a stage."""

    __tablename__ = "assignment"
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), nullable=True)
    stage: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    assigned_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    assigned_by: Mapped[str] = mapped_column(String(64), default="system")

    __table_args__ = (
        Index("ix_assignment_user", "user_id"),
        # A team's accounts, and among them those without a collector.
        Index("ix_assignment_team_user", "team_id", "user_id"),
    )


class AssignmentHistory(Base):
    """Append-only: every assignment and reassignment, with why."""

    __tablename__ = "assignment_history"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    team_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))  # rule | manual | stage_change | unassign
    rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    by: Mapped[str] = mapped_column(String(64), default="system")


class AssignmentRule(Base):
    """Which accounts go to which team or users, in priority order (lower first). Empty lists
    match anything. `skill` is required of the user; the account's debtor language and region
    must be among the user's when the rule says so."""

    __tablename__ = "assignment_rule"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    stages: Mapped[list[str]] = mapped_column(JSON, default=list)
    buckets: Mapped[list[str]] = mapped_column(JSON, default=list)
    portfolio_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_overdue: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    skill: Mapped[str | None] = mapped_column(String(32), nullable=True)
    match_language: Mapped[bool] = mapped_column(Boolean, default=False)
    match_region: Mapped[bool] = mapped_column(Boolean, default=False)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class WorkTask(Base):
    """A piece of human work that is not a strategy action: a callback the debtor asked for, the
    follow-up of a broken promise or arrangement, a manager's request."""

    __tablename__ = "work_task"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    kind: Mapped[str] = mapped_column(
        String(24)
    )  # callback | broken_promise | broken_arrangement | follow_up
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done | cancelled
    promise_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    arrangement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    interaction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (
        Index("ix_work_task_open", "status", "account_id"),
        # The worklist reads the open tasks of each collector's accounts.
        Index(
            "ix_work_task_open_account",
            "account_id",
            "due_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        # One follow-up per broken promise, however often the cycle runs.
        UniqueConstraint("kind", "promise_id", name="uq_work_task_promise"),
    )
