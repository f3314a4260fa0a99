"""JSON API of promises to pay (承诺还款): take, cancel and list them; the kept rate.

Thin handlers: validate with a schema, call a service function, return a schema. The lead
includes the router under /api/v1.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.access.service import Principal
from recoup.core.clock import business_today
from recoup.ledger.schemas import CONFLICT, INVALID, MAX_ID, NOT_FOUND, Page, problem_response
from recoup.promises import service
from recoup.promises.schemas import (
    AccountPromiseQuery,
    PromiseCancel,
    PromiseIn,
    PromiseOut,
    PromiseQuery,
    PromiseStatsOut,
    PromiseStatsQuery,
)
from recoup.web.deps import get_session

router = APIRouter(tags=["promises"], responses=INVALID)

# scope="function": commit before the response is sent (see recoup.ledger.api).
DB = Annotated[Session, Depends(get_session, scope="function")]
Reader = Annotated[Principal, Depends(require("workspace:read"))]
Writer = Annotated[Principal, Depends(require("workspace:write"))]
AccountId = Annotated[int, Path(ge=1, le=MAX_ID)]
PromiseId = Annotated[int, Path(ge=1, le=MAX_ID)]
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: problem_response("Not your account / 该账户未分配给您")
}


@router.post(
    "/accounts/{account_id}/promises",
    status_code=status.HTTP_201_CREATED,
    summary="Take a promise to pay / 登记承诺还款",
    description="Replaces the account's open promise, if any (it becomes cancelled).",
    responses={**NOT_FOUND, **FORBIDDEN},
)
def create_promise(account_id: AccountId, body: PromiseIn, user: Writer, db: DB) -> PromiseOut:
    promise = service.create_promise(
        db,
        user,
        account_id,
        body.amount_minor,
        body.due_date,
        body.channel,
        today=business_today(),
        interaction_id=body.interaction_id,
        note=body.note,
        currency=body.currency,
    )
    return PromiseOut.of(promise)


@router.get(
    "/accounts/{account_id}/promises",
    summary="The account's promises, newest first / 账户的承诺还款",
    responses={**NOT_FOUND, **FORBIDDEN},
)
def list_account_promises(
    account_id: AccountId, q: Annotated[AccountPromiseQuery, Query()], user: Reader, db: DB
) -> Page[PromiseOut]:
    page = service.list_promises(db, user, account_id, q.status, limit=q.limit, offset=q.offset)
    return Page.of(page, [PromiseOut.of(r) for r in page.items])


@router.get(
    "/promises",
    summary="Promises of the accounts you may see / 承诺还款列表",
    responses={**NOT_FOUND, **FORBIDDEN},
)
def list_promises(q: Annotated[PromiseQuery, Query()], user: Reader, db: DB) -> Page[PromiseOut]:
    page = service.list_promises(
        db, user, q.account_id, q.status, q.due_from, q.due_to, limit=q.limit, offset=q.offset
    )
    return Page.of(page, [PromiseOut.of(r) for r in page.items])


@router.get(
    "/promises/stats",
    summary="Kept rate per collector or team / 承诺兑现率",
    description="Promises due in the period (cancelled ones left out), a row per collector or "
    "team and currency.",
)
def promise_stats(
    q: Annotated[PromiseStatsQuery, Query()], user: Reader, db: DB
) -> list[PromiseStatsOut]:
    rows = service.promise_stats(db, q.group_by, q.date_from, q.date_to)
    if user.is_scoped:  # a collector or agency sees its own figures, not its colleagues'
        rows = [
            r
            for r in rows
            if (r.user_id is not None and r.user_id == user.user_id)
            or (r.user_id is None and r.team_id is not None and r.team_id == user.team_id)
        ]
    return [PromiseStatsOut.of(r) for r in rows]


@router.get(
    "/promises/{promise_id}",
    summary="One promise / 承诺还款",
    responses={**NOT_FOUND, **FORBIDDEN},
)
def get_promise(promise_id: PromiseId, user: Reader, db: DB) -> PromiseOut:
    return PromiseOut.of(service.get_promise(db, user, promise_id))


@router.post(
    "/promises/{promise_id}/cancel",
    summary="Cancel an open promise / 取消承诺还款",
    responses={**NOT_FOUND, **FORBIDDEN, **CONFLICT},
)
def cancel_promise(promise_id: PromiseId, body: PromiseCancel, user: Writer, db: DB) -> PromiseOut:
    return PromiseOut.of(service.cancel_promise(db, user, promise_id, body.reason))
