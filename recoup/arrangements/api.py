"""JSON API of arrangements (还款计划) and waivers (减免): propose, list, the approval queue,
approve, reject, cancel. Thin handlers; permissions are declared on each route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.access.service import Principal
from recoup.arrangements import service
from recoup.arrangements.schemas import ArrangementIn, ArrangementOut, DecisionIn
from recoup.core.clock import business_today
from recoup.ledger.schemas import CONFLICT, INVALID, MAX_ID, NOT_FOUND
from recoup.web.deps import get_session

router = APIRouter(tags=["arrangements"], responses=INVALID)

DB = Annotated[Session, Depends(get_session, scope="function")]
AccountId = Annotated[int, Path(ge=1, le=MAX_ID)]
ArrangementId = Annotated[int, Path(ge=1, le=MAX_ID)]
Reader = Annotated[Principal, Depends(require("workspace:read"))]
Writer = Annotated[Principal, Depends(require("workspace:write"))]
Approver = Annotated[Principal, Depends(require("arrangement:approve"))]


def _out(db: Session, arr: service.Arrangement) -> ArrangementOut:
    return ArrangementOut.of(arr, service.instalments_of(db, arr.id))


@router.post(
    "/accounts/{account_id}/arrangements",
    status_code=status.HTTP_201_CREATED,
    summary="Propose an arrangement or a waiver / 提议还款计划或减免",
    responses={**NOT_FOUND, **CONFLICT},
)
def propose(account_id: AccountId, body: ArrangementIn, user: Writer, db: DB) -> ArrangementOut:
    arr = service.propose(db, user, account_id, today=business_today(), **body.to_service())
    return _out(db, arr)


@router.get(
    "/accounts/{account_id}/arrangements",
    summary="The account's arrangements, newest first / 账户的还款计划",
    responses=NOT_FOUND,
)
def list_for_account(account_id: AccountId, user: Reader, db: DB) -> list[ArrangementOut]:
    return [_out(db, a) for a in service.list_for_account(db, user, account_id)]


@router.get(
    "/arrangements/queue",
    summary="Proposals waiting for approval, oldest first / 待审批",
)
def approval_queue(user: Approver, db: DB) -> list[ArrangementOut]:
    return [_out(db, a) for a in service.queue(db, user)]


@router.get(
    "/arrangements/{arrangement_id}",
    summary="One arrangement / 还款计划详情",
    responses=NOT_FOUND,
)
def get_arrangement(arrangement_id: ArrangementId, user: Reader, db: DB) -> ArrangementOut:
    return _out(db, service.get(db, user, arrangement_id))


@router.post(
    "/arrangements/{arrangement_id}/approve",
    summary="Approve and activate / 审批通过",
    responses={**NOT_FOUND, **CONFLICT},
)
def approve(
    arrangement_id: ArrangementId, body: DecisionIn, user: Approver, db: DB
) -> ArrangementOut:
    arr = service.approve(db, user, arrangement_id, body.note, business_today())
    return _out(db, arr)


@router.post(
    "/arrangements/{arrangement_id}/reject",
    summary="Reject / 驳回",
    responses={**NOT_FOUND, **CONFLICT},
)
def reject(
    arrangement_id: ArrangementId, body: DecisionIn, user: Approver, db: DB
) -> ArrangementOut:
    return _out(db, service.reject(db, user, arrangement_id, body.note))


@router.post(
    "/arrangements/{arrangement_id}/cancel",
    summary="Withdraw a proposal or end an arrangement / 撤回或终止",
    responses={**NOT_FOUND, **CONFLICT},
)
def cancel(arrangement_id: ArrangementId, body: DecisionIn, user: Writer, db: DB) -> ArrangementOut:
    arr = service.cancel(db, user, arrangement_id, body.note, business_today())
    return _out(db, arr)
