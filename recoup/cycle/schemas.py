"""Pydantic models at the edge of the daily-cycle API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from recoup.ledger.schemas import BusinessDate, Input, PageQuery


class CycleRunIn(Input):
    as_of: BusinessDate = Field(
        description="business date to run; dates cannot go backwards once a later one has run"
    )


class CycleRunOut(BaseModel):
    id: int
    as_of: dt.date
    status: str = Field(description="running | completed")
    partitions: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_seconds: float = Field(description="over all attempts of this date")
    counts: dict[str, int] = Field(
        description=(
            "accounts touched, delinquent, newly delinquent, cured, capped, summed over the "
            "partitions; amounts in minor units per currency as '<amount>:<currency>', e.g. "
            "'penalty_accrued:CNY', 'late_fees_charged:USD', 'interest_recognised:CNY', "
            "'fees_recognised:CNY'"
        )
    )

    @classmethod
    def of(cls, row: Any) -> CycleRunOut:
        return cls(
            id=row.id,
            as_of=row.as_of,
            status=row.status,
            partitions=row.partitions,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_seconds=row.duration_seconds or 0.0,
            counts={str(k): int(v) for k, v in (row.counts or {}).items()},
        )


class CycleRunResult(CycleRunOut):
    partitions_done: int = Field(description="partitions this request ran")
    partitions_skipped: int = Field(description="partitions already done by an earlier attempt")


class CycleRunQuery(PageQuery):
    pass
