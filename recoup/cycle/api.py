"""JSON API of the daily cycle: runs and their counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.cycle import service
from recoup.cycle.schemas import CycleRunIn, CycleRunOut, CycleRunQuery, CycleRunResult
from recoup.ledger.schemas import CONFLICT, INVALID, NOT_FOUND, BusinessDate, Page
from recoup.web.deps import get_engine, get_session

router = APIRouter(tags=["cycle"], responses=INVALID)

# scope="function": commit before the response is sent (see recoup.ledger.api).
DB = Annotated[Session, Depends(get_session, scope="function")]
AsOf = Annotated[BusinessDate, Path(description="business date, YYYY-MM-DD")]


@router.get(
    "/cycle-runs",
    summary="Cycle runs, latest date first / 日终批处理记录",
    dependencies=[Depends(require("cycle:read"))],
)
def list_runs(q: Annotated[CycleRunQuery, Query()], db: DB) -> Page[CycleRunOut]:
    runs = service.list_runs(db, limit=q.limit, offset=q.offset)
    return Page(
        items=[CycleRunOut.of(r) for r in runs],
        total=service.count_runs(db),
        limit=q.limit,
        offset=q.offset,
    )


@router.get(
    "/cycle-runs/{as_of}",
    summary="The run of one date / 某日批处理",
    responses=NOT_FOUND,
    dependencies=[Depends(require("cycle:read"))],
)
def get_run(as_of: AsOf, db: DB) -> CycleRunOut:
    return CycleRunOut.of(service.get_run(db, as_of))


@router.post(
    "/cycle-runs",
    summary="Run (or resume) the cycle for a date, synchronously / 运行日终批处理",
    description="Idempotent: running a completed date again changes nothing; a run that "
    "stopped halfway resumes with the partitions that did not commit.",
    responses=CONFLICT,
    dependencies=[Depends(require("cycle:run"))],
)
def run_cycle(
    body: CycleRunIn, engine: Annotated[Engine, Depends(get_engine)], db: DB
) -> CycleRunResult:
    # The cycle commits partition by partition on its own connections; the request's session
    # only reads the finished run afterwards.
    result = service.run_cycle(engine, body.as_of)
    run = CycleRunOut.of(service.get_run(db, body.as_of))
    return CycleRunResult(
        **run.model_dump(),
        partitions_done=result.partitions_done,
        partitions_skipped=result.partitions_skipped,
    )
