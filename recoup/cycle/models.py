"""Tables of the daily cycle (日终批处理): one row per run date, one per completed partition."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from recoup.core.db import Base, UtcDateTime, utcnow


class CycleRun(Base):
    __tablename__ = "cycle_run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[dt.date] = mapped_column(Date, unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | completed
    partitions: Mapped[int] = mapped_column(Integer)
    # Account id range split into partitions, fixed when the run starts so a resumed run
    # processes exactly the same partitions.
    id_min: Mapped[int] = mapped_column(BigInteger, default=0)
    id_max: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Seconds spent over all attempts of this date (a resumed run adds to it).
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # When the case assignment followed this run (the worker's next step after the cycle);
    # NULL until then.
    assigned_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CyclePartition(Base):
    """A partition committed for a run; written in the same transaction as its work, so a run
    killed midway resumes with exactly the partitions that did not commit."""

    __tablename__ = "cycle_partition"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("cycle_run.id", ondelete="CASCADE"), index=True)
    partition: Mapped[int] = mapped_column(Integer)
    id_from: Mapped[int] = mapped_column(BigInteger)
    id_to: Mapped[int] = mapped_column(BigInteger)
    accounts: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    finished_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (UniqueConstraint("run_id", "partition", name="uq_cycle_partition_run_part"),)
