"""Sign-in and sign-out pages."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from recoup.access import service
from recoup.access.deps import SESSION_COOKIE, client_ip, require
from recoup.access.service import Principal
from recoup.core.db import utcnow
from recoup.core.settings import get_settings
from recoup.web.i18n import N_
from recoup.web.pages import register_labels, render

router = APIRouter(include_in_schema=False)
# Before sign-in there is no session to hold a CSRF token: the form and a cookie carry the same
# random value (double submit), so another site cannot sign a browser in to its own account.
LOGIN_CSRF_COOKIE = "recoup_login_csrf"


def home_for(role: str) -> str:
    return "/work" if role in ("collector", "agency") else "/"


def _safe_next(target: str | None) -> str | None:
    # Only a path on this site: never an absolute URL or a scheme-relative one (//evil.example).
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _login_page(request: Request, error: str | None, status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "access/login.html",
        {"error": error, "login_csrf": token, "next": _safe_next(request.query_params.get("next"))},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=get_settings().cookie_secure,
        path="/login",
    )
    return response


@router.get("/login", response_class=HTMLResponse, dependencies=[Depends(require("public"))])
def login_page(request: Request) -> Response:
    return _login_page(request, None)


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(require("public"))])
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=500)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf_token or not hmac.compare_digest(csrf_token.encode(), expected.encode()):
        return _login_page(request, "expired", status_code=403)
    with Session(request.app.state.engine, expire_on_commit=False) as session, session.begin():
        result = service.authenticate(session, username, password, utcnow(), client_ip(request))
        cookie = None
        if result.user is not None:
            cookie, _ = service.start_session(
                session, result.user, client_ip(request), request.headers.get("user-agent")
            )
            role = result.user.role
    if cookie is None:
        locked = result.why == service.LOCKED
        return _login_page(request, "locked" if locked else "wrong", status_code=401)
    response = RedirectResponse(_safe_next(next) or home_for(role), status_code=303)
    settings = get_settings()
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", dependencies=[Depends(require("self"))])
def logout(request: Request, user: Annotated[Principal, Depends(require("self"))]) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with Session(request.app.state.engine) as session, session.begin():
            service.end_session(session, cookie)
            service.audit(session, user, "logout", "app_user", user.user_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


register_labels(
    "role",
    {
        "admin": N_("Administrator"),
        "manager": N_("Manager"),
        "collector": N_("Collector"),
        "agency": N_("Agency"),
        "auditor": N_("Auditor"),
        "analyst": N_("Analyst"),
    },
)
