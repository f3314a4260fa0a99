"""JSON API of access control: tokens, the signed-in user, users and teams, the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from sqlalchemy.orm import Session

from recoup.access import rules, service
from recoup.access.deps import client_ip, require
from recoup.access.schemas import (
    AuditOut,
    AuditQuery,
    MeOut,
    NewToken,
    TeamIn,
    TeamOut,
    TokenIssued,
    TokenOut,
    TokenRequest,
    UserIn,
    UserOut,
    UserPatch,
)
from recoup.access.service import Principal
from recoup.core.db import utcnow
from recoup.core.errors import Unauthorized
from recoup.ledger.schemas import CONFLICT, INVALID, NOT_FOUND, Page, problem_response
from recoup.web.deps import get_session

router = APIRouter(responses=INVALID, tags=["access"])
DB = Annotated[Session, Depends(get_session)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: problem_response("Wrong credentials or locked / 认证失败")
}


@router.post(
    "/auth/token",
    status_code=status.HTTP_201_CREATED,
    summary="Sign in for an API token / 获取API令牌",
    responses=UNAUTHORIZED,
    dependencies=[Depends(require("public"))],
)
def sign_in(body: TokenRequest, request: Request) -> TokenIssued:
    # The failure count must be kept even though the answer is an error: own transaction.
    with Session(request.app.state.engine, expire_on_commit=False) as session, session.begin():
        result = service.authenticate(
            session, body.username, body.password, utcnow(), client_ip(request)
        )
        issued = None
        if result.user is not None:
            issued = service.issue_token(session, result.user, body.name, body.expires_days)
    if issued is None:
        raise Unauthorized(result.why or "sign-in failed")
    token, row = issued
    return TokenIssued(id=row.id, token=token, expires_at=row.expires_at)


@router.get("/auth/me", summary="The signed-in user / 当前用户")
def me(user: Annotated[Principal, Depends(require("self"))]) -> MeOut:
    return MeOut(
        id=user.user_id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        team_id=user.team_id,
        language=user.language,
        permissions=sorted(user.permissions),
    )


@router.get("/auth/tokens", summary="My API tokens / 我的令牌")
def my_tokens(user: Annotated[Principal, Depends(require("self"))], db: DB) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in service.list_tokens(db, user.user_id)]


@router.post("/auth/tokens", status_code=status.HTTP_201_CREATED, summary="New API token / 新令牌")
def new_token(
    body: NewToken, user: Annotated[Principal, Depends(require("self"))], db: DB
) -> TokenIssued:
    token, row = service.issue_token(
        db, service.get_user(db, user.user_id), body.name, body.expires_days
    )
    service.audit(db, user, "create", "api_token", row.id)
    return TokenIssued(id=row.id, token=token, expires_at=row.expires_at)


@router.delete("/auth/tokens/{token_id}", summary="Revoke a token / 吊销令牌", responses=NOT_FOUND)
def revoke_token(
    token_id: Id, user: Annotated[Principal, Depends(require("self"))], db: DB
) -> TokenOut:
    return TokenOut.model_validate(service.revoke_token(db, token_id, user))


@router.get("/teams", summary="Teams and agencies / 小组与委外机构")
def list_teams(
    db: DB, _: Annotated[Principal, Depends(require("workspace:read"))]
) -> list[TeamOut]:
    return [TeamOut.model_validate(t) for t in service.list_teams(db)]


@router.post(
    "/teams", status_code=status.HTTP_201_CREATED, summary="New team / 新建小组", responses=CONFLICT
)
def create_team(
    body: TeamIn, db: DB, user: Annotated[Principal, Depends(require("users:admin"))]
) -> TeamOut:
    team = service.create_team(db, body.code, body.name, body.kind)
    service.audit(db, user, "create", "team", team.id)
    return TeamOut.model_validate(team)


@router.get("/users", summary="Users / 用户")
def list_users(
    db: DB,
    _: Annotated[Principal, Depends(require("users:admin"))],
    role: Annotated[str | None, Query(max_length=16)] = None,
    team_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> list[UserOut]:
    if role is not None and role not in rules.ROLES:
        from recoup.core.errors import Invalid

        raise Invalid("role", role, f"one of {', '.join(rules.ROLES)}")
    return [UserOut.model_validate(u) for u in service.list_users(db, role, team_id)]


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, summary="New user / 新建用户", responses=CONFLICT
)
def create_user(
    body: UserIn, db: DB, user: Annotated[Principal, Depends(require("users:admin"))]
) -> UserOut:
    data = body.model_dump()
    created = service.create_user(
        db,
        data.pop("username"),
        data.pop("password"),
        data.pop("role"),
        **data,
    )
    service.audit(db, user, "create", "app_user", created.id, detail={"role": created.role})
    return UserOut.model_validate(created)


@router.patch("/users/{user_id}", summary="Change a user / 修改用户", responses=NOT_FOUND)
def update_user(
    user_id: Id,
    body: UserPatch,
    db: DB,
    user: Annotated[Principal, Depends(require("users:admin"))],
) -> UserOut:
    target = service.get_user(db, user_id)
    changes = body.model_dump(exclude_unset=True)
    return UserOut.model_validate(service.update_user(db, target, user, **changes))


@router.post(
    "/users/{user_id}/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="API token for a user (integrations) / 为用户签发令牌",
    responses=NOT_FOUND,
)
def issue_user_token(
    user_id: Id, body: NewToken, db: DB, user: Annotated[Principal, Depends(require("users:admin"))]
) -> TokenIssued:
    token, row = service.issue_token(
        db, service.get_user(db, user_id), body.name, body.expires_days
    )
    service.audit(db, user, "create", "api_token", row.id, detail={"for_user": user_id})
    return TokenIssued(id=row.id, token=token, expires_at=row.expires_at)


@router.get("/audit", summary="The audit log / 审计日志")
def audit_log(
    q: Annotated[AuditQuery, Query()],
    db: DB,
    _: Annotated[Principal, Depends(require("audit:read"))],
) -> Page[AuditOut]:
    total, rows = service.list_audit(
        db,
        user_id=q.user_id,
        action=q.action,
        entity=q.entity,
        account_id=q.account_id,
        since=q.since,
        until=q.until,
        limit=q.limit,
        offset=q.offset,
    )
    return Page(
        items=[AuditOut.model_validate(r) for r in rows],
        total=total,
        limit=q.limit,
        offset=q.offset,
    )
