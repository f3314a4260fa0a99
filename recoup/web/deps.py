"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error.

    A request that changes something is written to the audit log in the same transaction,
    unless the use case wrote its own, more precise, entry."""
    with Session(request.app.state.engine, expire_on_commit=False) as session, session.begin():
        yield session
        if request.method not in ("GET", "HEAD", "OPTIONS") and not session.info.get("audited"):
            _audit_request(request, session)


def _audit_request(request: Request, session: Session) -> None:
    from recoup.access.service import audit

    principal = getattr(request.state, "principal", None)
    if principal is None:  # a signed webhook or the sign-in page: recorded by their own means
        return
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    params = {k: _printable(str(v))[:64] for k, v in request.path_params.items()}
    segments = [p for p in template.split("/") if p and not p.startswith("{") and p != "api"]
    entity = next((p for p in segments if p != "v1"), "request")[:32]
    account = params.get("account_id")
    audit(
        session,
        principal,
        request.method.lower(),
        entity,
        next(iter(params.values()), None),
        account_id=int(account) if account and account.isdigit() and int(account) < 2**31 else None,
        detail={"route": template, "path": _printable(request.url.path)[:300], "params": params},
    )


def _printable(text: str) -> str:
    """Without NUL or lone surrogates, which a database cannot store."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
