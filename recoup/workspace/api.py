"""JSON API of the collector's workspace: the worklist and its next account, follow-up tasks,
assignment rules, the assignment run, manual assignment and its history.

Thin handlers: validate with a schema, call a service function, return a schema. Collectors
and agency users see only their own queue and the accounts assigned to them or their team.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.access.service import Principal, audit
from recoup.core.clock import business_today
from recoup.core.db import utcnow
from recoup.ledger.schemas import MAX_ID, MAX_MINOR, MAX_OFFSET, STORABLE
from recoup.web.deps import get_session
from recoup.workspace import service
from recoup.workspace.schemas import (
    HistoryOut,
    Page,
    ReassignIn,
    ReassignOut,
    RuleIn,
    RuleOut,
    RulePatch,
    RunIn,
    RunOut,
    TaskDoneIn,
    TaskIn,
    TaskOut,
    WorkItemOut,
    WorkKind,
    WorklistPage,
)

router = APIRouter(tags=["workspace"])

DB = Annotated[Session, Depends(get_session, scope="function")]
Reader = Annotated[Principal, Depends(require("workspace:read"))]
Writer = Annotated[Principal, Depends(require("workspace:write"))]
Manager = Annotated[Principal, Depends(require("assignment:manage"))]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


class WorklistFilters:
    """Query parameters shared by the worklist and its next account."""

    def __init__(
        self,
        user_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="managers")] = None,
        team_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="managers")] = None,
        kind: Annotated[list[WorkKind] | None, Query(description="only these kinds")] = None,
        stage: Annotated[str | None, Query(max_length=16), STORABLE] = None,
        bucket: Annotated[str | None, Query(max_length=8), STORABLE] = None,
        min_overdue: Annotated[int | None, Query(ge=0, le=MAX_MINOR)] = None,
        search: Annotated[str | None, Query(min_length=1, max_length=100), STORABLE] = None,
    ) -> None:
        self.values: dict[str, Any] = {
            "user_id": user_id,
            "team_id": team_id,
            "kinds": kind,
            "stage": stage,
            "bucket": bucket,
            "min_overdue": min_overdue,
            "search": search,
        }


Filters = Annotated[WorklistFilters, Depends()]


@router.get("/worklist", response_model=WorklistPage)
def get_worklist(
    db: DB,
    user: Reader,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> WorklistPage:
    """The caller's queue (工作列表), best expected value first."""
    total, items = service.worklist(
        db, user, utcnow(), limit=limit, offset=offset, **filters.values
    )
    return WorklistPage(
        items=[WorkItemOut.model_validate(i) for i in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/worklist/next", response_model=WorkItemOut | None)
def get_next(
    db: DB,
    user: Reader,
    filters: Filters,
    skip: Annotated[
        list[Annotated[int, Query(ge=1, le=MAX_ID)]] | None, Query(max_length=500)
    ] = None,
) -> WorkItemOut | None:
    """The next account to work, leaving out `skip` (null when the queue is empty)."""
    item = service.next_account(db, user, utcnow(), skip=skip or (), **filters.values)
    return None if item is None else WorkItemOut.model_validate(item)


@router.get("/tasks", response_model=Page[TaskOut])
def list_tasks(
    db: DB,
    user: Reader,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[TaskOut]:
    """Open tasks of the caller, soonest first."""
    total, tasks = service.open_tasks(db, user, user_id=user_id, limit=limit, offset=offset)
    return Page[TaskOut](
        items=[TaskOut.model_validate(t) for t in tasks], total=total, limit=limit, offset=offset
    )


@router.post("/tasks", response_model=TaskOut, status_code=status.HTTP_201_CREATED)
def create_task(db: DB, user: Writer, body: TaskIn) -> TaskOut:
    service.check_account_access(db, user, body.account_id)
    task = service.create_task(
        db,
        body.account_id,
        body.kind,
        body.due_at,
        by=user.username,
        user_id=body.user_id,
        note=body.note,
    )
    audit(db, user, "create", "work_task", task.id, account_id=task.account_id)
    return TaskOut.model_validate(task)


@router.post("/tasks/{task_id}/done", response_model=TaskOut)
def finish_task(db: DB, user: Writer, task_id: IdPath, body: TaskDoneIn | None = None) -> TaskOut:
    task = service.close_task(db, task_id, user, (body or TaskDoneIn()).status)
    audit(db, user, task.status, "work_task", task.id, account_id=task.account_id)
    return TaskOut.model_validate(task)


@router.get("/assignment-rules", response_model=list[RuleOut])
def list_rules(db: DB, user: Manager) -> list[RuleOut]:
    return [RuleOut.model_validate(r) for r in service.list_rules(db)]


@router.post("/assignment-rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
def create_rule(db: DB, user: Manager, body: RuleIn) -> RuleOut:
    return RuleOut.model_validate(service.create_rule(db, user, **body.model_dump()))


@router.put("/assignment-rules/{rule_id}", response_model=RuleOut)
def update_rule(db: DB, user: Manager, rule_id: IdPath, body: RulePatch) -> RuleOut:
    changes = body.model_dump(exclude_unset=True)
    return RuleOut.model_validate(service.update_rule(db, user, rule_id, **changes))


@router.post("/assignment/run", response_model=RunOut)
def run_assignment(db: DB, user: Manager, body: RunIn | None = None) -> RunOut:
    """Assign the worked accounts by the rules now (the worker does it after each cycle)."""
    as_of = (body.as_of if body else None) or business_today(utcnow())
    counts = service.run_assignment(db, as_of, by=user.username)
    audit(db, user, "run", "assignment", as_of.isoformat(), detail=counts)
    return RunOut(as_of=as_of, counts=counts)


@router.post("/assignments", response_model=ReassignOut)
def reassign(db: DB, user: Manager, body: ReassignIn) -> ReassignOut:
    """Give accounts to a collector or a team by hand (手工分案)."""
    moved = service.reassign(
        db, user, body.account_ids, user_id=body.user_id, team_id=body.team_id, note=body.note
    )
    return ReassignOut(moved=moved)


@router.get("/accounts/{account_id}/assignment-history", response_model=list[HistoryOut])
def history(db: DB, user: Reader, account_id: IdPath) -> list[HistoryOut]:
    service.check_account_access(db, user, account_id)
    return [HistoryOut.model_validate(h) for h in service.assignment_history(db, account_id)]
