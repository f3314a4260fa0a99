"""Who is asking, and may they: the permission every route and page declares.

    @router.get("/things", dependencies=[Depends(require("ledger:read"))])
    def things(...): ...

or, when the handler needs the user:

    def things(user: Annotated[Principal, Depends(require("workspace:read"))]): ...

A request proves who sent it with `Authorization: Bearer rcp_…` (API tokens) or with the
session cookie of a signed-in browser; a cookie-authenticated request that changes something
must also carry the session's CSRF token (`X-CSRF-Token` header, as HTMX sends it, or a
`csrf_token` form field). A route declared "public" proves its sender otherwise (a signed
webhook or link) or is the sign-in page.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from recoup.access import rules, service
from recoup.access.service import Principal
from recoup.core.db import utcnow
from recoup.core.errors import Forbidden, Unauthorized

SESSION_COOKIE = "recoup_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequired(Unauthorized):
    """No credentials, or credentials that no longer hold. Pages answer with the sign-in page."""

    code = "sign-in-required"
    title = "Sign-in required / 需要登录"


class CsrfFailed(Forbidden):
    code = "csrf"
    title = "Form expired / 表单已失效"


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def current_principal(request: Request) -> Principal | None:
    """The signed-in user of this request, or None; looked up once per request."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal: Principal | None = None
    engine = request.app.state.engine
    now = utcnow()
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        with engine.begin() as conn:
            principal = service.principal_for_token(conn, auth[7:].strip(), now)
        if principal is None:
            raise SignInRequired("the bearer token is unknown, revoked or expired")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            with engine.connect() as conn:
                principal = service.principal_for_session(conn, cookie, now)
    request.state.principal = principal
    return principal


async def _check_csrf(request: Request, principal: Principal) -> None:
    if principal.via != "session" or request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = principal.csrf_token or ""
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed("the form's security token is missing or stale; reload the page")


def require(permission: str) -> Callable[[Request], Awaitable[Principal | None]]:
    """A dependency that lets the request through only for a user whose role grants
    `permission`, and returns that user (None on a public route with nobody signed in)."""
    if permission not in rules.PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def dependency(request: Request) -> Any:
        if permission == "public":
            try:
                return await current_principal(request)
            except SignInRequired:
                return None
        principal = await current_principal(request)
        if principal is None:
            raise SignInRequired("sign in first / 请先登录")
        if not principal.can(permission):
            raise Forbidden(
                f"your role ({principal.role}) may not do this ({permission}) / 您的角色无此权限"
            )
        await _check_csrf(request, principal)
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


def declared_permission(route: Any) -> str | None:
    """The permission a route declares (None: it declares none, which the route test refuses)."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        perm = getattr(dep.call, "permission", None)
        if perm is not None:
            return str(perm)
        stack.extend(dep.dependencies)
    return None
